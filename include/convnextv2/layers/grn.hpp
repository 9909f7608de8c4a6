// SPDX-License-Identifier: MIT
// grn<T>: Global Response Normalization on NHWC (N, H, W, D) maps, per-sample statistics over
// H·W (SPEC §1.4). Mirrors the dense GRN of facebookresearch/ConvNeXt-V2 models/utils.py:
// parameters "gamma" and "beta", zero-initialised (identity at init), checkpoint shape (1,1,1,D),
// stored internally as (D).
#pragma once
#include "../kernels/grn.hpp"
#include "param.hpp"

namespace convnextv2 {

template <class T>
struct grn {
    using scalar_type = T;

    tensor<T> gamma, beta, gamma_grad, beta_grad;

    shape_t setup(const shape_t& in)
    {
        CONVNEXTV2_CHECK(in.size() == 4 && in[3] > 0, "grn: expected an NHWC input (N, H, W, D), got ", to_string(in));
        channels_ = in[3];
        if (gamma.shape() != shape_t{channels_}) { gamma.resize({channels_}); gamma.zero(); }
        if (beta.shape() != shape_t{channels_}) { beta.resize({channels_}); beta.zero(); }
        return in;
    }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        CONVNEXTV2_CHECK(x.rank() == 4 && x.dim(3) == channels_, "grn: expected input (N, H, W, ", channels_, "), got ",
                         to_string(x.shape()));
        x_ = &x;
        y.resize(x.shape());
        kernels::grn_fwd(x.data(), x.dim(0), x.dim(1) * x.dim(2), channels_, gamma.data(), beta.data(), y.data(), stats_);
    }

    void backward(const tensor<T>& dy, tensor<T>* dx)
    {
        if (gamma_grad.shape() != gamma.shape()) { gamma_grad.resize(gamma.shape()); gamma_grad.zero(); }
        if (beta_grad.shape() != beta.shape()) { beta_grad.resize(beta.shape()); beta_grad.zero(); }
        const tensor<T>& x = *x_;
        kernels::grn_bwd(dy.data(), x.data(), x.dim(0), x.dim(1) * x.dim(2), channels_, gamma.data(), stats_,
                         dx ? dx->data() : nullptr, gamma_grad.data(), beta_grad.data());
    }

    void collect_params(param_list<T>& out, const std::string& prefix)
    {
        add_param(out, join_name(prefix, "gamma"), gamma, gamma_grad, {1, 1, 1, gamma.size()});
        add_param(out, join_name(prefix, "beta"), beta, beta_grad, {1, 1, 1, beta.size()});
    }

    index_t channels() const { return channels_; }
    // Statistics of the last forward (G, Nx per [N, D]; M per sample).
    const kernels::grn_stats& stats() const { return stats_; }

private:
    index_t channels_ = 0;
    const tensor<T>* x_ = nullptr;
    kernels::grn_stats stats_;
};

} // namespace convnextv2
