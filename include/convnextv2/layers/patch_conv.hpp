// SPDX-License-Identifier: MIT
// patch_conv<T>: nn.Conv2d(I, O, kernel_size=k, stride=k) with bias, no padding, on NHWC input —
// the stem (k = 4) and the downsample convs (k = 2) of facebookresearch/ConvNeXt-V2:
// models/convnextv2.py (SPEC §1.1). The weight is stored [O,k,k,I] so every output site is one row
// of a GEMM; it is registered with the checkpoint shape (O,I,k,k) and perm {0,2,3,1}.
#pragma once
#include "../kernels/patch_conv.hpp"
#include "param.hpp"

namespace convnextv2 {

template <class T>
struct patch_conv {
    using scalar_type = T;
    index_t out_channels = 0;  // set before setup()
    index_t kernel = 4;        // kernel size = stride

    tensor<T> weight, bias, weight_grad, bias_grad;

    patch_conv() = default;
    patch_conv(index_t out, index_t k) : out_channels(out), kernel(k) {}

    shape_t setup(const shape_t& in)
    {
        CONVNEXTV2_CHECK(out_channels > 0 && kernel > 0, "patch_conv: needs out_channels > 0 and kernel > 0, got ", out_channels,
                         " and ", kernel);
        check_input(in);
        in_channels_ = in[3];
        const shape_t ws{out_channels, kernel, kernel, in_channels_};
        if (weight.shape() != ws) { weight.resize(ws); weight.zero(); }
        if (bias.shape() != shape_t{out_channels}) { bias.resize({out_channels}); bias.zero(); }
        if (weight_grad.shape() != ws) { weight_grad.resize(ws); weight_grad.zero(); }
        if (bias_grad.shape() != shape_t{out_channels}) { bias_grad.resize({out_channels}); bias_grad.zero(); }
        return {in[0], in[1] / kernel, in[2] / kernel, out_channels};
    }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        check_input(x.shape());
        CONVNEXTV2_CHECK(x.dim(3) == in_channels_, "patch_conv: expected ", in_channels_, " input channels, got input ",
                         to_string(x.shape()));
        x_ = &x;
        const index_t N = x.dim(0), H = x.dim(1), W = x.dim(2), k = kernel;
        y.resize({N, H / k, W / k, out_channels});
        patches_.resize({N * (H / k) * (W / k), k * k * in_channels_});
        kernels::patch_conv_fwd(x.data(), N, H, W, in_channels_, k, weight.data(), bias.data(), out_channels, y.data(),
                                patches_.data());
        patches_hold_x_ = true;
    }

    void backward(const tensor<T>& dy, tensor<T>* dx)
    {
        CONVNEXTV2_CHECK(x_ != nullptr, "patch_conv: backward before forward");
        const index_t N = x_->dim(0), H = x_->dim(1), W = x_->dim(2), k = kernel;
        CONVNEXTV2_CHECK(dy.shape() == (shape_t{N, H / k, W / k, out_channels}), "patch_conv: backward expects dy of shape ",
                         to_string({N, H / k, W / k, out_channels}), ", got ", to_string(dy.shape()));
        if (!patches_hold_x_) kernels::patch_gather(x_->data(), N, H, W, in_channels_, k, patches_.data());
        kernels::patch_conv_bwd_weight(dy.data(), patches_.data(), N, H, W, in_channels_, k, out_channels, weight_grad.data(),
                                       bias_grad.data());
        if (dx) {
            // The gathered input is no longer needed: reuse its buffer as the data-gradient scratch.
            kernels::patch_conv_bwd_data(dy.data(), N, H, W, in_channels_, k, weight.data(), out_channels, dx->data(),
                                         patches_.data());
            patches_hold_x_ = false;
        }
    }

    void collect_params(param_list<T>& out, const std::string& prefix)
    {
        add_param(out, join_name(prefix, "weight"), weight, weight_grad, shape_t{out_channels, in_channels_, kernel, kernel},
                  {0, 2, 3, 1});
        add_param(out, join_name(prefix, "bias"), bias, bias_grad);
    }

    index_t in_channels() const { return in_channels_; }

private:
    void check_input(const shape_t& in) const
    {
        CONVNEXTV2_CHECK(in.size() == 4 && in[1] % kernel == 0 && in[2] % kernel == 0 && in[1] > 0 && in[2] > 0,
                         "patch_conv: expected a rank-4 NHWC input with H and W divisible by ", kernel, ", got ", to_string(in));
    }

    index_t in_channels_ = 0;
    const tensor<T>* x_ = nullptr;
    tensor<T> patches_;  // gathered input [M, k·k·I], reused as bwd_data scratch
    bool patches_hold_x_ = false;
};

} // namespace convnextv2
