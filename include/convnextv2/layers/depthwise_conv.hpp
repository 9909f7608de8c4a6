// SPDX-License-Identifier: MIT
// depthwise_conv7x7<T>: the block's "dwconv", nn.Conv2d(C, C, kernel_size=7, padding=3, groups=C)
// with bias (facebookresearch/ConvNeXt-V2: models/convnextv2.py; SPEC §1.3), on NHWC input.
// The weight is stored [7,7,1,C] so the kernel vectorises over channels; it is registered with the
// checkpoint shape (C,1,7,7) and perm {2,3,1,0}.
// Mode sparse_sites: input and output are [rows, C] over the bound active sites; submanifold
// semantics (outputs only at active sites, inactive neighbours count as zero; SPEC §3.4).
#pragma once
#include "../kernels/dwconv7x7.hpp"
#include "../core/profile.hpp"
#include "param.hpp"
#include "site_mode.hpp"

namespace convnextv2 {

template <class T, class Mode = dense_sites>
struct depthwise_conv7x7 : detail::site_binding<Mode> {
    static_assert(detail::check_site_mode<Mode>());
    using scalar_type = T;
    static constexpr bool sparse = is_sparse_mode_v<Mode>;

    tensor<T> weight, bias, weight_grad, bias_grad;

    shape_t setup(const shape_t& in)
    {
        CONVNEXTV2_CHECK(in.size() == (sparse ? 2u : 4u) && in.back() > 0, "depthwise_conv7x7: expected ",
                         sparse ? "a [rows, C] sparse" : "a rank-4 NHWC", " input shape, got ", to_string(in));
        channels_ = in.back();
        const shape_t ws{7, 7, 1, channels_};
        if (weight.shape() != ws) { weight.resize(ws); weight.zero(); }
        if (bias.shape() != shape_t{channels_}) { bias.resize({channels_}); bias.zero(); }
        if (weight_grad.shape() != ws) { weight_grad.resize(ws); weight_grad.zero(); }
        if (bias_grad.shape() != shape_t{channels_}) { bias_grad.resize({channels_}); bias_grad.zero(); }
        return in;
    }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        profile::scope prof_(profile::kind::dwconv, profile::pass::fwd);
        CONVNEXTV2_CHECK(x.rank() == (sparse ? 2 : 4) && x.dim(-1) == channels_, "depthwise_conv7x7: expected ",
                         sparse ? "[rows, C]" : "NHWC", " input with ", channels_, " channels, got ", to_string(x.shape()));
        x_ = &x;
        y.resize(x.shape());
        if constexpr (sparse)
            kernels::dwconv7x7_sparse_fwd(x.data(), this->bound("depthwise_conv7x7", x.dim(0)), channels_, weight.data(),
                                          bias.data(), y.data());
        else
            kernels::dwconv7x7_fwd(x.data(), x.dim(0), x.dim(1), x.dim(2), channels_, weight.data(), bias.data(), y.data());
    }

    void backward(const tensor<T>& dy, tensor<T>* dx)
    {
        profile::scope prof_(profile::kind::dwconv, profile::pass::bwd);
        CONVNEXTV2_CHECK(x_ && dy.shape() == x_->shape(), "depthwise_conv7x7: backward expects dy of shape ",
                         x_ ? to_string(x_->shape()) : std::string("(no forward)"), ", got ", to_string(dy.shape()));
        if constexpr (sparse) {
            const active_sites& s = this->bound("depthwise_conv7x7", dy.dim(0));
            kernels::dwconv7x7_sparse_bwd_weight(dy.data(), x_->data(), s, channels_, weight_grad.data(), bias_grad.data());
            if (dx) kernels::dwconv7x7_sparse_bwd_data(dy.data(), s, channels_, weight.data(), dx->data());
        } else {
            const index_t N = dy.dim(0), H = dy.dim(1), W = dy.dim(2);
            kernels::dwconv7x7_bwd_weight(dy.data(), x_->data(), N, H, W, channels_, weight_grad.data(), bias_grad.data());
            if (dx) kernels::dwconv7x7_bwd_data(dy.data(), N, H, W, channels_, weight.data(), dx->data());
        }
    }

    void collect_params(param_list<T>& out, const std::string& prefix)
    {
        add_param(out, join_name(prefix, "weight"), weight, weight_grad, shape_t{channels_, 1, 7, 7}, {2, 3, 1, 0});
        add_param(out, join_name(prefix, "bias"), bias, bias_grad);
    }

    index_t channels() const { return channels_; }

private:
    index_t channels_ = 0;
    const tensor<T>* x_ = nullptr;
};

} // namespace convnextv2
