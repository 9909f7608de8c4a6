// SPDX-License-Identifier: MIT
// inverted_bottleneck<T>: the MLP of a dense ConvNeXt V2 block, pwconv1 → GELU → GRN → pwconv2, as
// linear_gelu (4C) then grn_linear (C) in one layer. The forward is theirs. When grn_linear took its
// fused path and the samples line up with pwconv1's backward blocks, the backward makes dL/dz,
// GRN's and GELU's backward sample by sample inside pwconv1's (kernels::bottleneck_bwd), so the
// 4C-wide gradient between GRN and GELU never goes through memory; otherwise it runs the two
// layers' backwards in turn. Same parameters (pwconv1.*, grn.*, pwconv2.*) and the same numbers
// bit for bit either way.
#pragma once
#include "concepts.hpp"
#include "grn_linear.hpp"
#include "linear_gelu.hpp"

#include <type_traits>

namespace convnextv2 {

template <class T>
struct inverted_bottleneck {
    using scalar_type = T;
    linear_gelu<T> expand;  // "pwconv1"; set expand.out_features (4C) before setup()
    grn_linear<T> project;  // "grn", "pwconv2"; set project.proj.out_features (C) before setup()

    shape_t setup(const shape_t& in) { return project.setup(expand.setup(in)); }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        x_ = &x;
        expand.forward(x, h_);
        project.forward(h_, y);
    }

    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        if (!fusable()) { backward_in_turn(expand, project, h_.shape(), dy, dx, accumulate); return; }
        profile::scope prof_(profile::kind::bottleneck, profile::pass::bwd);
#if CONVNEXTV2_BF16_GEMM
        if constexpr (std::is_same_v<T, float>) {
            auto& gn = project.norm;
            auto& p2 = project.proj;
            gn.ensure_grads();
            const auto& off = project.groups();
            kernels::bottleneck_bwd(dy.data(), x_->data(), expand.in_features(), expand.pre_activation().data(), h_.data(),
                                    project.z_words().data(), off.data(), static_cast<index_t>(off.size()) - 1, h_.dim(-1),
                                    gn.gamma.data(), project.stats(), p2.weight.data(), p2.out_features, p2.weight_grad.data(),
                                    p2.with_bias ? p2.bias_grad.data() : nullptr, gn.gamma_grad.data(), gn.beta_grad.data(),
                                    expand.weight.data(), expand.weight_grad.data(),
                                    expand.with_bias ? expand.bias_grad.data() : nullptr, dx ? dx->data() : nullptr, accumulate);
        }
#endif
    }

    void collect_params(param_list<T>& out, const std::string& prefix)
    {
        expand.collect_params(out, join_name(prefix, "pwconv1"));
        project.collect_params(out, prefix);
    }

    template <class F>
    void visit(F& f)
    {
        visit_all(expand, f);
        visit_all(project, f);
    }

    // Whether the last backward can take the fused path (see the top of this file).
    bool fusable() const
    {
        if constexpr (!std::is_same_v<T, float>) return false;
        else
            return project.fused() && kernels::bottleneck_fusable(h_.size() / h_.dim(-1), h_.dim(1) * h_.dim(2), h_.dim(-1));
    }

private:
    const tensor<T>* x_ = nullptr;
    tensor<T> h_;  // gelu(pwconv1(x)), GRN's input
};

} // namespace convnextv2
