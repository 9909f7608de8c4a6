// SPDX-License-Identifier: MIT
// patch_conv<T>: nn.Conv2d(I, O, kernel_size=k, stride=k) with bias, no padding, on NHWC input —
// the stem (k = 4) and the downsample convs (k = 2) of facebookresearch/ConvNeXt-V2:
// models/convnextv2.py (SPEC §1.1). H and W need not be multiples of k: the output is [H/k, W/k]
// rounded down, as in PyTorch (28x28 with a 2x2 stem: 14, 7, 3, 1). The weight is stored [O,k,k,I] so every output site is one row
// of a GEMM; it is registered with the checkpoint shape (O,I,k,k) and perm {0,2,3,1}.
// Mode sparse_sites (downsample of FCMAE's sparse encoder): [rows_in, I] -> [rows_out, O], where
// the bound table is the OUTPUT map made by downsample_sites() (its parent table names the input
// rows of each window); same GEMM, the gather follows the table.
#pragma once
#include "../kernels/patch_conv.hpp"
#include "../core/profile.hpp"
#include "param.hpp"
#include "site_mode.hpp"

namespace convnextv2 {

template <class T, class Mode = dense_sites>
struct patch_conv : detail::site_binding<Mode> {
    static_assert(detail::check_site_mode<Mode>());
    using scalar_type = T;
    static constexpr bool sparse = is_sparse_mode_v<Mode>;
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
        in_channels_ = in.back();
        const shape_t ws{out_channels, kernel, kernel, in_channels_};
        if (weight.shape() != ws) { weight.resize(ws); weight.zero(); }
        if (bias.shape() != shape_t{out_channels}) { bias.resize({out_channels}); bias.zero(); }
        if (weight_grad.shape() != ws) { weight_grad.resize(ws); weight_grad.zero(); }
        if (bias_grad.shape() != shape_t{out_channels}) { bias_grad.resize({out_channels}); bias_grad.zero(); }
        if constexpr (sparse) return {in[0], out_channels};
        return {in[0], in[1] / kernel, in[2] / kernel, out_channels};
    }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        profile::scope prof_(profile::kind::patch_conv, profile::pass::fwd);
        check_input(x.shape());
        if constexpr (sparse) {
            CONVNEXTV2_CHECK(x.dim(1) == in_channels_, "patch_conv: expected ", in_channels_, " input channels, got input ",
                             to_string(x.shape()));
            const active_sites& s = out_sites();
            CONVNEXTV2_CHECK(s.parent_kernel == kernel && s.N * s.H * s.W * kernel * kernel >= x.dim(0),
                             "patch_conv: the bound site table was not made by downsample_sites(..., ", kernel, ")");
            x_ = &x;
            const index_t M = s.rows(), K = kernel * kernel * in_channels_;
            y.resize({M, out_channels});
            patches_.resize({M, K});
            kernels::sparse_patch_gather(x.data(), s, in_channels_, patches_.data());
            kernels::linear_fwd(patches_.data(), M, K, weight.data(), bias.data(), out_channels, y.data());
            patches_hold_x_ = true;
            return;
        }
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
        profile::scope prof_(profile::kind::patch_conv, profile::pass::bwd);
        CONVNEXTV2_CHECK(x_ != nullptr, "patch_conv: backward before forward");
        if constexpr (sparse) {
            const active_sites& s = out_sites();
            const index_t M = s.rows(), K = kernel * kernel * in_channels_;
            CONVNEXTV2_CHECK(dy.shape() == (shape_t{M, out_channels}), "patch_conv: backward expects dy of shape ",
                             to_string({M, out_channels}), ", got ", to_string(dy.shape()));
            if (!patches_hold_x_) kernels::sparse_patch_gather(x_->data(), s, in_channels_, patches_.data());
            kernels::linear_bwd_weight(dy.data(), patches_.data(), M, K, out_channels, weight_grad.data(), bias_grad.data());
            if (dx) {
                tensor<T>& scratch = patches_;  // the gathered input is no longer needed
                kernels::linear_bwd_data(dy.data(), M, out_channels, weight.data(), K, scratch.data(), /*accumulate=*/false);
                kernels::sparse_patch_scatter_add(scratch.data(), s, in_channels_, dx->data());
                patches_hold_x_ = false;
            }
            return;
        }
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
    const active_sites& out_sites() const
    {
        CONVNEXTV2_CHECK(this->sites != nullptr, "patch_conv: sparse layer used before bind_sites()");
        return *this->sites;
    }

    void check_input(const shape_t& in) const
    {
        if constexpr (sparse) {
            CONVNEXTV2_CHECK(in.size() == 2 && in[1] > 0, "patch_conv: expected a [rows, C] sparse input, got ", to_string(in));
            return;
        }
        CONVNEXTV2_CHECK(in.size() == 4 && in[1] >= kernel && in[2] >= kernel,
                         "patch_conv: expected a rank-4 NHWC input with H and W at least ", kernel, ", got ", to_string(in));
    }

    index_t in_channels_ = 0;
    const tensor<T>* x_ = nullptr;
    tensor<T> patches_;  // gathered input [M, k·k·I], reused as bwd_data scratch
    bool patches_hold_x_ = false;
};

} // namespace convnextv2
