// SPDX-License-Identifier: MIT
// linear_gelu<T>: y = gelu(x·Wᵀ + b), the block's pwconv1 followed by its GELU as one layer, so
// the GELU runs on each block of GEMM output rows while it is still in cache (forward), and the
// GELU backward makes the GEMM's incoming gradient block by block, never as a whole tensor
// (backward). Same parameters and names as linear<T> (pwconv1.weight / pwconv1.bias) and the
// same numbers as linear<T> followed by gelu<T>; it keeps the pre-activation for the backward.
#pragma once
#include "../kernels/gelu.hpp"
#include "linear.hpp"

namespace convnextv2 {

template <class T>
struct linear_gelu : linear<T> {
    using linear<T>::linear;

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        profile::scope prof_(profile::kind::linear_gelu, profile::pass::fwd);
        const index_t K = this->in_features(), N = this->out_features;
        const shape_t s = this->bind_input(x, "linear_gelu");
        pre_.resize(s);
        y.resize(s);
        T* h = pre_.data();
        T* out = y.data();
        kernels::linear_fwd_then(x.data(), x.size() / K, K, this->weight.data(), this->with_bias ? this->bias.data() : nullptr, N, h,
                                 [=](index_t m0, index_t m1) { kernels::gelu_fwd_range(h + m0 * N, (m1 - m0) * N, out + m0 * N); });
    }

    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        profile::scope prof_(profile::kind::linear_gelu, profile::pass::bwd);
        const index_t K = this->in_features(), N = this->out_features;
        const T* h = pre_.data();
        const T* g = dy.data();
        auto make_dh = [=](index_t m0, index_t m1, T* dh) { kernels::gelu_bwd_range(h + m0 * N, g + m0 * N, (m1 - m0) * N, dh, false); };
        kernels::linear_bwd_from(make_dh, this->x_->data(), dy.size() / N, K, N, this->weight.data(), this->weight_grad.data(),
                                 this->with_bias ? this->bias_grad.data() : nullptr, dx ? dx->data() : nullptr, accumulate);
    }

    // The pre-activation x·Wᵀ + b of the last forward.
    const tensor<T>& pre_activation() const { return pre_; }

private:
    tensor<T> pre_;
};

} // namespace convnextv2
