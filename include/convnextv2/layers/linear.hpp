// SPDX-License-Identifier: MIT
// linear<T>: y = x·Wᵀ + b over the last axis of any-rank input ([N,H,W,C] sites or [N,C]
// vectors). Mirrors nn.Linear as used for pwconv1/pwconv2/head in ConvNeXt V2
// (facebookresearch/ConvNeXt-V2: models/convnextv2.py). W is [out, in] (PyTorch layout).
#pragma once
#include "../kernels/gemm.hpp"
#include "../core/profile.hpp"
#include "param.hpp"

namespace convnextv2 {

template <class T>
struct linear {
    using scalar_type = T;
    index_t out_features = 0;   // set before setup()
    bool with_bias = true;

    tensor<T> weight, bias, weight_grad, bias_grad;

    linear() = default;
    explicit linear(index_t out, bool bias_ = true) : out_features(out), with_bias(bias_) {}

    shape_t setup(const shape_t& in)
    {
        CONVNEXTV2_CHECK(!in.empty() && out_features > 0, "linear: needs out_features > 0 and a non-empty input shape, got ",
                         to_string(in));
        in_features_ = in.back();
        if (weight.shape() != shape_t{out_features, in_features_}) { weight.resize({out_features, in_features_}); weight.zero(); }
        if (with_bias && bias.shape() != shape_t{out_features}) { bias.resize({out_features}); bias.zero(); }
        shape_t out = in;
        out.back() = out_features;
        return out;
    }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        profile::scope prof_(profile::kind::linear, profile::pass::fwd);
        y.resize(bind_input(x, "linear"));
        kernels::linear_fwd(x.data(), x.size() / in_features_, in_features_, weight.data(), with_bias ? bias.data() : nullptr,
                            out_features, y.data());
    }

    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        profile::scope prof_(profile::kind::linear, profile::pass::bwd);
        const index_t M = dy.size() / out_features;
        kernels::linear_bwd_weight(dy.data(), x_->data(), M, in_features_, out_features, weight_grad.data(),
                                   with_bias ? bias_grad.data() : nullptr);
        if (dx) kernels::linear_bwd_data(dy.data(), M, out_features, weight.data(), in_features_, dx->data(), accumulate);
    }

    void collect_params(param_list<T>& out, const std::string& prefix)
    {
        add_param(out, join_name(prefix, "weight"), weight, weight_grad);
        if (with_bias) add_param(out, join_name(prefix, "bias"), bias, bias_grad);
    }

    index_t in_features() const { return in_features_; }

protected:
    // Checks x's last axis, keeps x for the backward and returns the output shape (shared with
    // linear_gelu; `layer` names the layer in the error).
    shape_t bind_input(const tensor<T>& x, const char* layer)
    {
        CONVNEXTV2_CHECK(x.rank() >= 1 && x.dim(-1) == in_features_, layer, ": expected last axis ", in_features_, ", got input ",
                         to_string(x.shape()));
        x_ = &x;
        shape_t s = x.shape();
        s.back() = out_features;
        return s;
    }

    index_t in_features_ = 0;
    const tensor<T>* x_ = nullptr;
};

} // namespace convnextv2
