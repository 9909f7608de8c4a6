// SPDX-License-Identifier: MIT
// drop_path<T>: stochastic depth on a residual branch (SPEC §1.6; timm drop_path with
// scale_by_keep=True). In training with rate > 0, sample n is kept with probability p = 1 − rate
// and then scaled by 1/p, otherwise zeroed (one decision per sample, shared over all its
// elements); in eval or with rate 0 it is the identity. The decision for sample n is a pure
// function of (seed, stream, step, n), so a repeated forward at the same step (e.g. gradient
// checks, recomputation) drops the same samples, independent of thread count.
// Mode sparse_sites: [rows, C] over the bound active sites; a sample's decision covers its rows.
#pragma once
#include "../core/grad_write.hpp"
#include "../core/parallel.hpp"
#include "../core/rng.hpp"
#include "../core/profile.hpp"
#include "param.hpp"
#include "site_mode.hpp"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace convnextv2 {

template <class T, class Mode = dense_sites>
struct drop_path : detail::site_binding<Mode> {
    static_assert(detail::check_site_mode<Mode>());
    using scalar_type = T;
    double rate = 0;
    bool training = false;  // eval by default, like convnextv2_model; training code calls set_training(true)

    drop_path() = default;
    explicit drop_path(double rate_) : rate(rate_) {}

    void set_training(bool t) { training = t; }
    // `stream` separates the layers sharing one run seed (e.g. the block index).
    void set_seed(std::uint64_t seed, std::uint64_t stream) { key_ = hash_combine(seed, stream); }
    // The training step (iteration); a new step draws new decisions.
    void set_step(std::uint64_t step) { step_ = step; }
    std::uint64_t step() const { return step_; }

    bool active() const { return training && rate > 0; }

    // Whether sample n is kept at the current step (always true when inactive).
    bool keeps(index_t n) const
    {
        if (!active()) return true;
        counter_rng rng(hash_combine(key_, step_));
        rng.set_counter(static_cast<std::uint64_t>(n));
        return rng.uniform() < 1.0 - rate;
    }

    shape_t setup(const shape_t& in)
    {
        CONVNEXTV2_CHECK(!in.empty(), "drop_path: needs a non-empty input shape");
        CONVNEXTV2_CHECK(rate >= 0 && rate <= 1, "drop_path: rate must be in [0, 1], got ", rate);
        return in;
    }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        profile::scope prof_(profile::kind::drop_path, profile::pass::fwd);
        y.resize(x.shape());
        if (!active() || x.empty()) {
            std::copy(x.begin(), x.end(), y.begin());
            scale_.clear();
            return;
        }
        set_offsets(x);
        apply(x.data(), y.data(), false);
    }

    // y = skip + forward(x) in one pass (residual's forward, without the intermediate tensor). Each
    // product x·scale is rounded before the add, so y equals forward followed by the add bit for bit.
    void forward_add(const tensor<T>& x, const tensor<T>& skip, tensor<T>& y)
    {
        profile::scope prof_(profile::kind::drop_path, profile::pass::fwd);
        CONVNEXTV2_CHECK(skip.shape() == x.shape(), "drop_path: skip input ", to_string(skip.shape()), " must match ",
                         to_string(x.shape()));
        y.resize(x.shape());
        if (!active() || x.empty()) {
            scale_.clear();
            const T* a = x.data();
            const T* b = skip.data();
            T* out = y.data();
            parallel_for(0, x.size(), index_t{1} << 15, [=](index_t lo, index_t hi) {
                for (index_t i = lo; i < hi; ++i) out[i] = b[i] + a[i];
            });
            return;
        }
        set_offsets(x);
        const index_t N = static_cast<index_t>(scale_.size());
        parallel_for(0, off_[static_cast<std::size_t>(N)], index_t{1} << 14, [&](index_t i0, index_t i1) {
            for_samples(i0, i1, [&](index_t lo, index_t hi, T s) { scaled_add(x.data(), s, skip.data(), lo, hi, y.data()); });
        });
    }

    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        profile::scope prof_(profile::kind::drop_path, profile::pass::bwd);
        if (!dx) return;
        if (scale_.empty()) {
            pass_grad(dy.data(), dy.size(), dx->data(), accumulate);
            return;
        }
        apply(dy.data(), dx->data(), accumulate);
    }

    void collect_params(param_list<T>&, const std::string&) {}

    // Per-sample factors of the last training forward (0 or 1/p); empty when it was the identity.
    const std::vector<T>& sample_scales() const { return scale_; }

private:
    std::uint64_t key_ = hash_combine(0, 0);
    std::uint64_t step_ = 0;
    std::vector<T> scale_;
    std::vector<index_t> off_;  // element offsets of the samples

    void compute_scales(index_t N)
    {
        const double p = 1.0 - rate;
        const T kept = p > 0 ? static_cast<T>(1.0 / p) : T(0);
        scale_.resize(static_cast<std::size_t>(N));
        for (index_t n = 0; n < N; ++n) scale_[static_cast<std::size_t>(n)] = keeps(n) ? kept : T(0);
    }

    // Scales of this step and the element offsets of the samples (dense: equal blocks; sparse:
    // each sample's active rows).
    void set_offsets(const tensor<T>& x)
    {
        if constexpr (is_sparse_mode_v<Mode>) {
            const active_sites& s = this->bound("drop_path", x.dim(0));
            compute_scales(s.N);
            off_.resize(s.offsets.size());
            for (std::size_t i = 0; i < off_.size(); ++i) off_[i] = s.offsets[i] * x.dim(-1);
        } else {
            compute_scales(x.dim(0));
            off_.resize(static_cast<std::size_t>(x.dim(0) + 1));
            for (std::size_t i = 0; i < off_.size(); ++i) off_[i] = static_cast<index_t>(i) * (x.size() / x.dim(0));
        }
    }

    // f(lo, hi, scale) over the pieces of [i0, i1) that lie within one sample.
    template <class F>
    void for_samples(index_t i0, index_t i1, F&& f) const
    {
        for (index_t i = i0; i < i1;) {
            const index_t n = static_cast<index_t>(std::upper_bound(off_.begin(), off_.end(), i) - off_.begin()) - 1;
            const index_t e = std::min(i1, off_[static_cast<std::size_t>(n + 1)]);
            f(i, e, scale_[static_cast<std::size_t>(n)]);
            i = e;
        }
    }

    // out = in·scale[n] per sample (accumulate: out += in·scale[n]).
    void apply(const T* in, T* out, bool accumulate) const
    {
        const index_t N = static_cast<index_t>(scale_.size());
        parallel_for(0, off_[static_cast<std::size_t>(N)], index_t{1} << 14, [&](index_t i0, index_t i1) {
            for_samples(i0, i1, [&](index_t lo, index_t hi, T s) {
                write_grad(out, lo, hi, accumulate, [&](index_t j) { return in[j] * s; });
            });
        });
    }

    // out[j] = skip[j] + round(in[j]·s): the empty asm keeps the compiler from fusing the product
    // into the add (-ffp-contract would otherwise make an FMA of it in the vector loop).
    static void scaled_add(const T* in, T s, const T* skip, index_t lo, index_t hi, T* out)
    {
        index_t j = lo;
#if defined(__AVX512F__)
        if constexpr (std::is_same_v<T, float>) {
            const __m512 vs = _mm512_set1_ps(s);
            for (; j + 16 <= hi; j += 16) {
                __m512 p = _mm512_mul_ps(_mm512_loadu_ps(in + j), vs);
                asm("" : "+v"(p));
                _mm512_storeu_ps(out + j, _mm512_add_ps(_mm512_loadu_ps(skip + j), p));
            }
        }
#endif
        for (; j < hi; ++j) {
            T p = in[j] * s;
            asm("" : "+m"(p));
            out[j] = skip[j] + p;
        }
    }
};

} // namespace convnextv2
