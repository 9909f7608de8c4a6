// SPDX-License-Identifier: MIT
// global_avg_pool<T>: (N,H,W,C) -> (N,C), the mean over the spatial axes that starts the head
// (x.mean([-2, -1]) in facebookresearch/ConvNeXt-V2: models/convnextv2.py; SPEC §1.5).
// No parameters.
#pragma once
#include "../kernels/pooling.hpp"
#include "../core/profile.hpp"
#include "param.hpp"

namespace convnextv2 {

template <class T>
struct global_avg_pool {
    using scalar_type = T;

    shape_t setup(const shape_t& in)
    {
        check_input(in);
        return {in[0], in[3]};
    }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        profile::scope prof_(profile::kind::pool, profile::pass::fwd);
        check_input(x.shape());
        in_shape_ = x.shape();
        y.resize({x.dim(0), x.dim(3)});
        kernels::global_avg_pool_fwd(x.data(), x.dim(0), x.dim(1) * x.dim(2), x.dim(3), y.data());
    }

    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        profile::scope prof_(profile::kind::pool, profile::pass::bwd);
        CONVNEXTV2_CHECK(in_shape_.size() == 4 && dy.shape() == (shape_t{in_shape_[0], in_shape_[3]}),
                         "global_avg_pool: backward expects dy of shape (N, C) matching the forward input ", to_string(in_shape_),
                         ", got ", to_string(dy.shape()));
        if (dx) kernels::global_avg_pool_bwd(dy.data(), in_shape_[0], in_shape_[1] * in_shape_[2], in_shape_[3], dx->data(), accumulate);
    }

    void collect_params(param_list<T>&, const std::string&) {}

private:
    static void check_input(const shape_t& in)
    {
        CONVNEXTV2_CHECK(in.size() == 4 && in[1] * in[2] > 0, "global_avg_pool: expected a rank-4 NHWC input with H*W > 0, got ",
                         to_string(in));
    }

    shape_t in_shape_;
};

} // namespace convnextv2
