// SPDX-License-Identifier: MIT
// gelu<T>: exact erf GELU on any-shaped input, no parameters (SPEC §1.3). Mirrors nn.GELU()
// (approximate='none') as used between pwconv1 and GRN in the official ConvNeXt V2 Block.
#pragma once
#include "../kernels/gelu.hpp"
#include "../core/profile.hpp"
#include "param.hpp"

namespace convnextv2 {

template <class T>
struct gelu {
    using scalar_type = T;

    shape_t setup(const shape_t& in) { return in; }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        profile::scope prof_(profile::kind::gelu, profile::pass::fwd);
        x_ = &x;
        y.resize(x.shape());
        kernels::gelu_fwd(x.data(), x.size(), y.data());
    }

    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        profile::scope prof_(profile::kind::gelu, profile::pass::bwd);
        if (dx) kernels::gelu_bwd(x_->data(), dy.data(), dy.size(), dx->data(), accumulate);
    }

    void collect_params(param_list<T>&, const std::string&) {}

private:
    const tensor<T>* x_ = nullptr;
};

} // namespace convnextv2
