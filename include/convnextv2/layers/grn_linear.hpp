// SPDX-License-Identifier: MIT
// grn_linear<T>: a dense block's GRN followed by its pwconv2, as one layer. With the bf16 products
// on (and at least grn_per_group_min samples) it runs kernels/grn_linear.hpp, which passes the
// 4C-wide tensor between the two through memory fewer times and keeps it for the backward as bf16
// (half the memory); otherwise it runs the two layers one after the other. Either way the numbers equal grn<T> then linear<T> bit for bit, and the
// parameters are theirs, under their names: prefix.grn.{gamma,beta}, prefix.pwconv2.{weight,bias}.
#pragma once
#include "concepts.hpp"
#include "../kernels/grn_linear.hpp"
#include "grn.hpp"
#include "linear.hpp"

#include <type_traits>

namespace convnextv2 {

template <class T>
struct grn_linear {
    using scalar_type = T;
    grn<T> norm;    // "grn"
    linear<T> proj; // "pwconv2"; set proj.out_features before setup()

    shape_t setup(const shape_t& in) { return proj.setup(norm.setup(in)); }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        fused_ = fusable(x);
        if (!fused_) {
            norm.forward(x, z_);
            proj.forward(z_, y);
            return;
        }
        profile::scope prof_(profile::kind::grn_linear, profile::pass::fwd);
#if CONVNEXTV2_BF16_GEMM
        if constexpr (std::is_same_v<T, float>) {
            x_ = &x;
            z_words_.resize(static_cast<std::size_t>(kernels::grn_linear_words(x.size() / x.dim(-1), x.dim(-1))));
            shape_t s = x.shape();
            s.back() = proj.out_features;
            y.resize(s);
            groups_ = kernels::grn_uniform_offsets(x.dim(0), x.dim(1) * x.dim(2));
            kernels::grn_linear_fwd(x.data(), groups_.data(), x.dim(0), x.dim(-1), norm.gamma.data(), norm.beta.data(),
                                    z_words_.data(), stats_, proj.weight.data(), proj.with_bias ? proj.bias.data() : nullptr, proj.out_features,
                                    y.data());
        }
#endif
    }

    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        if (!fused_) { backward_in_turn(norm, proj, z_.shape(), dy, dx, accumulate); return; }
        profile::scope prof_(profile::kind::grn_linear, profile::pass::bwd);
#if CONVNEXTV2_BF16_GEMM
        if constexpr (std::is_same_v<T, float>) {
            norm.ensure_grads();
            kernels::grn_linear_bwd(dy.data(), x_->data(), z_words_.data(), groups_.data(), x_->dim(0), x_->dim(-1), norm.gamma.data(),
                                    stats_, proj.weight.data(), proj.out_features, proj.weight_grad.data(),
                                    proj.with_bias ? proj.bias_grad.data() : nullptr, norm.gamma_grad.data(),
                                    norm.beta_grad.data(), dx ? dx->data() : nullptr, accumulate);
        }
#endif
    }

    void collect_params(param_list<T>& out, const std::string& prefix)
    {
        norm.collect_params(out, join_name(prefix, "grn"));
        proj.collect_params(out, join_name(prefix, "pwconv2"));
    }

    // Whether the last forward ran the fused kernels (else the two layers in turn), and what that
    // forward kept for the backward (inverted_bottleneck runs it itself).
    bool fused() const { return fused_; }
    const std::vector<std::uint32_t>& z_words() const { return z_words_; }
    const kernels::grn_stats& stats() const { return stats_; }
    const std::vector<index_t>& groups() const { return groups_; }

    template <class F>
    void visit(F& f)
    {
        visit_all(norm, f);
        visit_all(proj, f);
    }

private:
    bool fusable(const tensor<T>& x) const
    {
        if constexpr (!std::is_same_v<T, float>) return false;
        else {
            if (x.rank() != 4 || x.dim(-1) != norm.channels() || proj.in_features() != norm.channels()) return false;
            return kernels::grn_linear_fusable(x.size() / x.dim(-1), x.dim(1) * x.dim(2), x.dim(-1), proj.out_features, x.dim(0));
        }
    }

    bool fused_ = false;
    const tensor<T>* x_ = nullptr;
    tensor<T> z_;  // GRN's output, pwconv2's input (two layers in turn)
    std::vector<std::uint32_t> z_words_;  // the same as bf16 pair words (fused)
    std::vector<index_t> groups_;
    kernels::grn_stats stats_;
};

} // namespace convnextv2
