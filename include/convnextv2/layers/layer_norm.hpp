// SPDX-License-Identifier: MIT
// layer_norm<T>: LayerNorm over the last (contiguous channel) axis of any-rank input — NHWC maps
// (the official channels_last Block norm and the channels_first stem/downsample LN are the same
// math per site) and [N, C] vectors (head norm). Biased variance, eps inside the sqrt (SPEC §1.2).
// Mirrors nn.LayerNorm / models/utils.py LayerNorm in facebookresearch/ConvNeXt-V2.
#pragma once
#include "../kernels/layer_norm.hpp"
#include "../core/profile.hpp"
#include "param.hpp"

#include <vector>

namespace convnextv2 {

template <class T>
struct layer_norm {
    using scalar_type = T;
    double eps = 1e-6;

    tensor<T> weight, bias, weight_grad, bias_grad;

    layer_norm() = default;
    explicit layer_norm(double eps_) : eps(eps_) {}

    shape_t setup(const shape_t& in)
    {
        CONVNEXTV2_CHECK(!in.empty() && in.back() > 0, "layer_norm: needs a non-empty input shape, got ", to_string(in));
        channels_ = in.back();
        if (weight.shape() != shape_t{channels_}) { weight.resize({channels_}); weight.fill(T(1)); }
        if (bias.shape() != shape_t{channels_}) { bias.resize({channels_}); bias.zero(); }
        return in;
    }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        profile::scope prof_(profile::kind::layer_norm, profile::pass::fwd);
        CONVNEXTV2_CHECK(x.rank() >= 1 && x.dim(-1) == channels_, "layer_norm: expected last axis ", channels_, ", got input ",
                         to_string(x.shape()));
        x_ = &x;
        const index_t M = x.size() / channels_;
        mean_.resize(static_cast<std::size_t>(M));
        rstd_.resize(static_cast<std::size_t>(M));
        y.resize(x.shape());
        kernels::layer_norm_fwd(x.data(), M, channels_, weight.data(), bias.data(), eps, y.data(), mean_.data(), rstd_.data());
    }

    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        profile::scope prof_(profile::kind::layer_norm, profile::pass::bwd);
        const index_t M = dy.size() / channels_;
        if (weight_grad.shape() != weight.shape()) { weight_grad.resize(weight.shape()); weight_grad.zero(); }
        if (bias_grad.shape() != bias.shape()) { bias_grad.resize(bias.shape()); bias_grad.zero(); }
        kernels::layer_norm_bwd(dy.data(), x_->data(), M, channels_, weight.data(), mean_.data(), rstd_.data(),
                                dx ? dx->data() : nullptr, weight_grad.data(), bias_grad.data(), accumulate);
    }

    void collect_params(param_list<T>& out, const std::string& prefix)
    {
        add_param(out, join_name(prefix, "weight"), weight, weight_grad);
        add_param(out, join_name(prefix, "bias"), bias, bias_grad);
    }

    index_t channels() const { return channels_; }

private:
    index_t channels_ = 0;
    const tensor<T>* x_ = nullptr;
    std::vector<double> mean_, rstd_;
};

} // namespace convnextv2
