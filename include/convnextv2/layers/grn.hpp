// SPDX-License-Identifier: MIT
// grn<T>: Global Response Normalization on NHWC (N, H, W, D) maps, per-sample statistics over
// H·W (SPEC §1.4). Mirrors the dense GRN of facebookresearch/ConvNeXt-V2 models/utils.py:
// parameters "gamma" and "beta", zero-initialised (identity at init), checkpoint shape (1,1,1,D),
// stored internally as (D).
// Mode sparse_sites: [rows, D] over the bound active sites; statistics per sample over its active
// sites (= the dense GRN of the zero-filled map, SPEC §3.5), or over all active sites of the
// batch with scope = grn_scope::batch (the official MinkowskiGRN, batch-coupled).
#pragma once
#include "../kernels/grn.hpp"
#include "../core/profile.hpp"
#include "param.hpp"
#include "site_mode.hpp"

namespace convnextv2 {

enum class grn_scope { per_sample, batch };

template <class T, class Mode = dense_sites>
struct grn : detail::site_binding<Mode> {
    static_assert(detail::check_site_mode<Mode>());
    using scalar_type = T;
    static constexpr bool sparse = is_sparse_mode_v<Mode>;
    grn_scope scope = grn_scope::per_sample;  // sparse mode only

    tensor<T> gamma, beta, gamma_grad, beta_grad;

    shape_t setup(const shape_t& in)
    {
        CONVNEXTV2_CHECK(in.size() == (sparse ? 2u : 4u) && in.back() > 0, "grn: expected ",
                         sparse ? "a sparse input [rows, D]" : "an NHWC input (N, H, W, D)", ", got ", to_string(in));
        channels_ = in.back();
        if (gamma.shape() != shape_t{channels_}) { gamma.resize({channels_}); gamma.zero(); }
        if (beta.shape() != shape_t{channels_}) { beta.resize({channels_}); beta.zero(); }
        return in;
    }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        profile::scope prof_(profile::kind::grn, profile::pass::fwd);
        CONVNEXTV2_CHECK(x.rank() == (sparse ? 2 : 4) && x.dim(-1) == channels_, "grn: expected input with ", channels_,
                         " channels, got ", to_string(x.shape()));
        x_ = &x;
        y.resize(x.shape());
        set_groups(x);
        kernels::grn_fwd_groups(x.data(), groups_.data(), num_groups(), channels_, gamma.data(), beta.data(), y.data(), stats_);
    }

    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        profile::scope prof_(profile::kind::grn, profile::pass::bwd);
        ensure_grads();
        const tensor<T>& x = *x_;
        kernels::grn_bwd_groups(dy.data(), x.data(), groups_.data(), num_groups(), channels_, gamma.data(), stats_,
                                dx ? dx->data() : nullptr, gamma_grad.data(), beta_grad.data(), accumulate);
    }

    // Zero gradients of gamma and beta when collect_params has not allocated them (a backward adds to them).
    void ensure_grads()
    {
        if (gamma_grad.shape() != gamma.shape()) { gamma_grad.resize(gamma.shape()); gamma_grad.zero(); }
        if (beta_grad.shape() != beta.shape()) { beta_grad.resize(beta.shape()); beta_grad.zero(); }
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
    // Row offsets of the statistic groups: samples (dense, sparse per_sample) or the whole batch.
    void set_groups(const tensor<T>& x)
    {
        if constexpr (sparse) {
            const active_sites& s = this->bound("grn", x.dim(0));
            if (scope == grn_scope::batch)
                groups_ = {0, s.rows()};
            else
                groups_ = s.offsets;
        } else {
            groups_ = kernels::grn_uniform_offsets(x.dim(0), x.dim(1) * x.dim(2));
        }
    }
    index_t num_groups() const { return static_cast<index_t>(groups_.size()) - 1; }

    std::vector<index_t> groups_;
    index_t channels_ = 0;
    const tensor<T>* x_ = nullptr;
    kernels::grn_stats stats_;
};

} // namespace convnextv2
