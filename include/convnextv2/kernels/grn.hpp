// SPDX-License-Identifier: MIT
// GRN (Global Response Normalization) kernels, SPEC §1.4; mirrors models/utils.py GRN of
// facebookresearch/ConvNeXt-V2 (torch.norm over H,W per sample, mean over channels, eps 1e-6).
// Per sample (a "group" of S sites, each a contiguous row of D channels):
//   G[d] = sqrt(Σ_s x[s,d]²) (sum in double), M = mean_d G, Nx[d] = G[d]/(M + 1e-6)
//   y = gamma·(x·Nx) + beta + x = x·(1 + gamma·Nx) + beta
// Backward, with g = dy, Sgx[d] = Σ_s g·x, Sg[d] = Σ_s g, A[d] = gamma[d]·Sgx[d]:
//   dG[d] = A[d]/(M+ε) − Σ_k A[k]·G[k] / (D·(M+ε)²)
//   dx += g·(1 + gamma·Nx) + (dG[d]/G[d])·x        (the second term is 0 where G[d] = 0, as in
//                                                    torch.norm's backward; never 0·∞ = NaN)
//   dgamma[d] += Σ_groups Nx[d]·Sgx[d],  dbeta[d] += Σ_groups Sg[d]
// The per-group building blocks (grn_sumsq_rows, grn_stats_from_sumsq, grn_scale, grn_apply_rows,
// grn_bwd_sums_rows, grn_bwd_coef, grn_bwd_data_rows) take plain row blocks so a masked/sparse
// GRN can feed them its active rows; grn_fwd / grn_bwd are the dense drivers. With many groups
// each group is one task (its rows summed in order); with few, fixed site chunks are combined in
// index order. The choice depends on the shape only: bit-identical for any thread count.
#pragma once
#include "../core/grad_write.hpp"
#include "../core/parallel.hpp"
#include "lane_sum.hpp"

#include <Eigen/Core>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace convnextv2::kernels {

inline constexpr double grn_eps = 1e-6;

// ---- per-group building blocks ----

#if defined(__AVX512F__)
// Float rows, double sums: channel blocks of B×16 whose sums stay in registers over all rows
// (the plain loop loaded and stored 2D doubles per row and ran at half the DRAM rate). Each
// channel still sums its rows in order, one FMA per row; a short block is masked, so every
// channel takes the same instructions whatever D is.
namespace detail {
inline __mmask16 grn_mask(index_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }
inline __m512d grn_lo(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
inline __m512d grn_hi(__m512 v) { return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))); }

// Channels [d, d + n) of ss (n <= 16·B): ss += Σ_r x².
template <int B>
inline void grn_sumsq_block(const float* x, index_t rows, index_t D, index_t d, index_t n, double* ss)
{
    __mmask16 m[B];
    __m512d a[2 * B];
    for (int b = 0; b < B; ++b) {
        m[b] = grn_mask(std::max<index_t>(0, n - 16 * b));
        a[2 * b] = _mm512_maskz_loadu_pd(static_cast<__mmask8>(m[b]), ss + d + 16 * b);
        a[2 * b + 1] = _mm512_maskz_loadu_pd(static_cast<__mmask8>(m[b] >> 8), ss + d + 16 * b + 8);
    }
    for (index_t r = 0; r < rows; ++r) {
        const float* xr = x + r * D + d;
        for (int b = 0; b < B; ++b) {
            const __m512 v = _mm512_maskz_loadu_ps(m[b], xr + 16 * b);
            const __m512d lo = grn_lo(v), hi = grn_hi(v);
            a[2 * b] = _mm512_fmadd_pd(lo, lo, a[2 * b]);
            a[2 * b + 1] = _mm512_fmadd_pd(hi, hi, a[2 * b + 1]);
        }
    }
    for (int b = 0; b < B; ++b) {
        _mm512_mask_storeu_pd(ss + d + 16 * b, static_cast<__mmask8>(m[b]), a[2 * b]);
        _mm512_mask_storeu_pd(ss + d + 16 * b + 8, static_cast<__mmask8>(m[b] >> 8), a[2 * b + 1]);
    }
}

// Channels [d, d + n): sgx += Σ_r dy·x, sg += Σ_r dy.
template <int B>
inline void grn_bwd_sums_block(const float* dy, const float* x, index_t rows, index_t D, index_t d, index_t n, double* sgx,
                               double* sg)
{
    __mmask16 m[B];
    __m512d a[2 * B], s[2 * B];
    for (int b = 0; b < B; ++b) {
        m[b] = grn_mask(std::max<index_t>(0, n - 16 * b));
        const auto ml = static_cast<__mmask8>(m[b]), mh = static_cast<__mmask8>(m[b] >> 8);
        a[2 * b] = _mm512_maskz_loadu_pd(ml, sgx + d + 16 * b);
        a[2 * b + 1] = _mm512_maskz_loadu_pd(mh, sgx + d + 16 * b + 8);
        s[2 * b] = _mm512_maskz_loadu_pd(ml, sg + d + 16 * b);
        s[2 * b + 1] = _mm512_maskz_loadu_pd(mh, sg + d + 16 * b + 8);
    }
    for (index_t r = 0; r < rows; ++r) {
        const float* gr = dy + r * D + d;
        const float* xr = x + r * D + d;
        for (int b = 0; b < B; ++b) {
            const __m512 g = _mm512_maskz_loadu_ps(m[b], gr + 16 * b), v = _mm512_maskz_loadu_ps(m[b], xr + 16 * b);
            const __m512d glo = grn_lo(g), ghi = grn_hi(g);
            a[2 * b] = _mm512_fmadd_pd(glo, grn_lo(v), a[2 * b]);
            a[2 * b + 1] = _mm512_fmadd_pd(ghi, grn_hi(v), a[2 * b + 1]);
            s[2 * b] = _mm512_add_pd(s[2 * b], glo);
            s[2 * b + 1] = _mm512_add_pd(s[2 * b + 1], ghi);
        }
    }
    for (int b = 0; b < B; ++b) {
        const auto ml = static_cast<__mmask8>(m[b]), mh = static_cast<__mmask8>(m[b] >> 8);
        _mm512_mask_storeu_pd(sgx + d + 16 * b, ml, a[2 * b]);
        _mm512_mask_storeu_pd(sgx + d + 16 * b + 8, mh, a[2 * b + 1]);
        _mm512_mask_storeu_pd(sg + d + 16 * b, ml, s[2 * b]);
        _mm512_mask_storeu_pd(sg + d + 16 * b + 8, mh, s[2 * b + 1]);
    }
}
} // namespace detail
#endif

// ss[d] += Σ_{r<rows} x[r,d]² (rows contiguous, width D).
template <class T>
inline void grn_sumsq_rows(const T* x, index_t rows, index_t D, double* ss)
{
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
        index_t d = 0;
        for (; d + 64 <= D; d += 64) detail::grn_sumsq_block<4>(x, rows, D, d, 64, ss);
        for (; d < D; d += 16) detail::grn_sumsq_block<1>(x, rows, D, d, D - d, ss);
        return;
    }
#endif
    for (index_t r = 0; r < rows; ++r) {
        const T* xr = x + r * D;
        for (index_t d = 0; d < D; ++d) {
            const double v = static_cast<double>(xr[d]);
            ss[d] += v * v;
        }
    }
}

// From one group's sums of squares: G[d], Nx[d]; returns M (the mean of G). The square roots go
// through Eigen's packet sqrt: a std::sqrt loop stays scalar (errno handling), and at D = 1024
// with 4 sites per sample it took most of the GRN forward.
inline double grn_stats_from_sumsq(const double* ss, index_t D, double* G, double* nx)
{
    Eigen::Map<Eigen::ArrayXd>(G, D) = Eigen::Map<const Eigen::ArrayXd>(ss, D).sqrt();
    const double M = lane_sum(D, [G](index_t d) { return G[d]; }) / static_cast<double>(D);
    const double inv = 1.0 / (M + grn_eps);
    for (index_t d = 0; d < D; ++d) nx[d] = G[d] * inv;
    return M;
}

// scale[d] = 1 + gamma[d]·Nx[d]: the per-channel factor of y and of the direct part of dx.
template <class T>
inline void grn_scale(const T* gamma, const double* nx, index_t D, T* scale)
{
    for (index_t d = 0; d < D; ++d) scale[d] = static_cast<T>(1.0 + static_cast<double>(gamma[d]) * nx[d]);
}

// y[r,d] = x[r,d]·scale[d] + beta[d] (x == y allowed).
template <class T>
inline void grn_apply_rows(const T* x, index_t rows, index_t D, const T* scale, const T* beta, T* y)
{
    for (index_t r = 0; r < rows; ++r) {
        const T* xr = x + r * D;
        T* yr = y + r * D;
        for (index_t d = 0; d < D; ++d) yr[d] = xr[d] * scale[d] + beta[d];
    }
}

// sgx[d] += Σ_r dy·x, sg[d] += Σ_r dy (double accumulators).
template <class T>
inline void grn_bwd_sums_rows(const T* dy, const T* x, index_t rows, index_t D, double* sgx, double* sg)
{
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
        index_t d = 0;
        for (; d + 32 <= D; d += 32) detail::grn_bwd_sums_block<2>(dy, x, rows, D, d, 32, sgx, sg);
        for (; d < D; d += 16) detail::grn_bwd_sums_block<1>(dy, x, rows, D, d, D - d, sgx, sg);
        return;
    }
#endif
    for (index_t r = 0; r < rows; ++r) {
        const T* gr = dy + r * D;
        const T* xr = x + r * D;
        for (index_t d = 0; d < D; ++d) {
            const double g = static_cast<double>(gr[d]);
            sgx[d] += g * static_cast<double>(xr[d]);
            sg[d] += g;
        }
    }
}

// coef[d] = (∂L/∂G[d]) / G[d], 0 where G[d] = 0 — the factor of x in dx for one group.
// Kept in double: with float inputs G can be denormal-small (GELU of very negative values) and
// dG/G would overflow float, while the product with x (|x| <= G) stays bounded. The division
// runs on a safe denominator and the zero case is a factor 0, so the loop vectorises (a branch
// around the division kept it scalar: two divisions per channel dominated the backward at D = 1024).
template <class T>
inline void grn_bwd_coef(const T* gamma, const double* G, double M, const double* sgx, index_t D, double* coef)
{
    const double me = M + grn_eps, inv_me = 1.0 / me;
    const double b = lane_sum(D, [=](index_t d) { return static_cast<double>(gamma[d]) * sgx[d] * G[d]; });
    const double shared = b / (static_cast<double>(D) * me * me);
    for (index_t d = 0; d < D; ++d) {
        const double dG = static_cast<double>(gamma[d]) * sgx[d] * inv_me - shared;
        const bool live = G[d] > 0;
        coef[d] = (live ? 1.0 : 0.0) * (dG / (live ? G[d] : 1.0));
    }
}

// dx[r,d] += dy[r,d]·scale[d] + coef[d]·x[r,d]  (accumulate = false: dx[r,d] = ...).
template <class T>
inline void grn_bwd_data_rows(const T* dy, const T* x, index_t rows, index_t D, const T* scale, const double* coef, T* dx,
                              bool accumulate = true)
{
    for (index_t r = 0; r < rows; ++r) {
        const T* gr = dy + r * D;
        const T* xr = x + r * D;
        write_grad(dx + r * D, 0, D, accumulate,
                   [&](index_t d) { return gr[d] * scale[d] + static_cast<T>(coef[d] * static_cast<double>(xr[d])); });
    }
}

// ---- drivers: groups of contiguous rows, group g = rows [off[g], off[g+1]) ----
// The dense GRN has N groups of S = H·W sites; the sparse GRN one group per sample's active
// rows (or a single batch-wide group, the official MinkowskiGRN). Same code for all three.

// Site-chunk length for the per-group reductions: a function of (S, D) only (~64K elements).
inline index_t grn_site_chunk(index_t S, index_t D)
{
    return std::clamp<index_t>((index_t{1} << 16) / std::max<index_t>(D, 1), 1, std::max<index_t>(S, 1));
}

// Statistics cached by the forward for the backward: G, Nx [groups, D]; M [groups].
struct grn_stats {
    std::vector<double> G, nx, M;
    void resize(index_t N, index_t D)
    {
        G.resize(static_cast<std::size_t>(N * D));
        nx.resize(static_cast<std::size_t>(N * D));
        M.resize(static_cast<std::size_t>(N));
    }
};

namespace detail {
// Fixed reduction tasks: (group, first row, end row), chunk length from the largest group.
struct grn_tasks {
    std::vector<index_t> group, lo, hi;
    std::vector<index_t> first;  // first task of each group, + total at the end
    grn_tasks(const index_t* off, index_t G, index_t D)
    {
        index_t longest = 1;
        for (index_t g = 0; g < G; ++g) longest = std::max(longest, off[g + 1] - off[g]);
        const index_t chunk = grn_site_chunk(longest, D);
        for (index_t g = 0; g < G; ++g) {
            first.push_back(static_cast<index_t>(group.size()));
            for (index_t r = off[g]; r < off[g + 1]; r += chunk) {
                group.push_back(g);
                lo.push_back(r);
                hi.push_back(std::min(off[g + 1], r + chunk));
            }
        }
        first.push_back(static_cast<index_t>(group.size()));
    }
    index_t size() const { return static_cast<index_t>(group.size()); }
};

// Runs f(g, r0, r1) over the rows of every group, in parallel, each piece within one group.
template <class F>
void grn_for_rows(const index_t* off, index_t G, index_t D, F&& f)
{
    const index_t total = off[G] - off[0];
    const index_t grain = std::max<index_t>(1, (index_t{1} << 14) / std::max<index_t>(D, 1));
    parallel_for(off[0], off[0] + total, grain, [&](index_t r0, index_t r1) {
        index_t g = static_cast<index_t>(std::upper_bound(off, off + G + 1, r0) - off) - 1;
        for (index_t r = r0; r < r1; ++g) {
            const index_t re = std::min(r1, off[g + 1]);
            if (re > r) f(g, r, re);
            r = std::max(r, re);
        }
    });
}

// dgamma[d] += Σ_g Nx[g,d]·Sgx[g,d], dbeta[d] += Σ_g Sg[g,d], summed over g in order (row-wise,
// so the [G, D] arrays are read contiguously).
template <class T>
void grn_param_grads(const grn_stats& st, const std::vector<double>& sgx, const std::vector<double>& sg, index_t G, index_t D,
                     T* dgamma, T* dbeta)
{
    std::vector<double> sgam(static_cast<std::size_t>(D), 0.0), sbet(static_cast<std::size_t>(D), 0.0);
    for (index_t g = 0; g < G; ++g) {
        const double* nx = st.nx.data() + g * D;
        const double* a = sgx.data() + g * D;
        const double* b = sg.data() + g * D;
        for (index_t d = 0; d < D; ++d) {
            sgam[static_cast<std::size_t>(d)] += nx[d] * a[d];
            sbet[static_cast<std::size_t>(d)] += b[d];
        }
    }
    for (index_t d = 0; d < D; ++d) {
        if (dgamma) dgamma[d] += static_cast<T>(sgam[static_cast<std::size_t>(d)]);
        if (dbeta) dbeta[d] += static_cast<T>(sbet[static_cast<std::size_t>(d)]);
    }
}
} // namespace detail

// With at least this many groups (a shape-only rule, so results never depend on the thread
// count) each group is one task: its statistics and its apply pass run back to back while the
// group is still in cache, instead of two sweeps over the whole tensor.
inline constexpr index_t grn_per_group_min = 8;

// One group's forward: its statistics into row g of st, then y = x·scale + beta over its rows
// (ss, scale: D-long scratch).
template <class T>
inline void grn_fwd_group(const T* x, index_t rows, index_t D, const T* gamma, const T* beta, T* y, grn_stats& st, index_t g,
                          double* ss, T* scale)
{
    std::fill(ss, ss + D, 0.0);
    grn_sumsq_rows(x, rows, D, ss);
    st.M[static_cast<std::size_t>(g)] = grn_stats_from_sumsq(ss, D, st.G.data() + g * D, st.nx.data() + g * D);
    grn_scale(gamma, st.nx.data() + g * D, D, scale);
    grn_apply_rows(x, rows, D, scale, beta, y);
}

// The per-group forward (G >= grn_per_group_min): each group is one task. out_of(r0, r1) says
// where the group's rows of y go (y's own rows, or a cache-sized block of the fused GRN + pwconv2),
// and after(r0, r1, rows) runs on them right after they are written, while they are in cache.
template <class T, class OutOf, class After>
void grn_fwd_per_group(const T* x, const index_t* off, index_t G, index_t D, const T* gamma, const T* beta, grn_stats& st,
                       OutOf&& out_of, After&& after)
{
    st.resize(G, D);
    parallel_for(0, G, 1, [&](index_t g0, index_t g1) {
        std::vector<double> ss(static_cast<std::size_t>(D));
        std::vector<T> scale(static_cast<std::size_t>(D));
        for (index_t g = g0; g < g1; ++g) {
            const index_t r0 = off[g], r1 = off[g + 1];
            T* y = out_of(r0, r1);
            grn_fwd_group(x + r0 * D, r1 - r0, D, gamma, beta, y, st, g, ss.data(), scale.data());
            after(r0, r1, static_cast<const T*>(y));
        }
    });
}

template <class T>
void grn_fwd_groups(const T* x, const index_t* off, index_t G, index_t D, const T* gamma, const T* beta, T* y, grn_stats& st)
{
    if (G >= grn_per_group_min) {
        grn_fwd_per_group(
            x, off, G, D, gamma, beta, st, [y, D](index_t r0, index_t) { return y + r0 * D; }, [](index_t, index_t, const T*) {});
        return;
    }
    st.resize(G, D);
    detail::grn_tasks tasks(off, G, D);
    std::vector<double> part(static_cast<std::size_t>(tasks.size() * D), 0.0);
    parallel_for(0, tasks.size(), 1, [&](index_t t0, index_t t1) {
        for (index_t t = t0; t < t1; ++t) {
            const index_t r0 = tasks.lo[static_cast<std::size_t>(t)], r1 = tasks.hi[static_cast<std::size_t>(t)];
            grn_sumsq_rows(x + r0 * D, r1 - r0, D, part.data() + t * D);
        }
    });
    std::vector<T> scale(static_cast<std::size_t>(G * D));
    parallel_for(0, G, 1, [&](index_t g0, index_t g1) {
        std::vector<double> ss(static_cast<std::size_t>(D));
        for (index_t g = g0; g < g1; ++g) {
            std::fill(ss.begin(), ss.end(), 0.0);
            for (index_t t = tasks.first[static_cast<std::size_t>(g)]; t < tasks.first[static_cast<std::size_t>(g + 1)]; ++t) {
                const double* p = part.data() + t * D;
                for (index_t d = 0; d < D; ++d) ss[static_cast<std::size_t>(d)] += p[d];
            }
            st.M[static_cast<std::size_t>(g)] = grn_stats_from_sumsq(ss.data(), D, st.G.data() + g * D, st.nx.data() + g * D);
            grn_scale(gamma, st.nx.data() + g * D, D, scale.data() + g * D);
        }
    });
    detail::grn_for_rows(off, G, D, [&](index_t g, index_t r0, index_t r1) {
        grn_apply_rows(x + r0 * D, r1 - r0, D, scale.data() + g * D, beta, y + r0 * D);
    });
}

// One group's backward: its sums into sgx, sg (D each, zeroed), then dx (+)= its rows of dL/dx
// when dx is set (scale, coef: D-long scratch).
template <class T>
inline void grn_bwd_group(const T* dy, const T* x, index_t rows, index_t D, const T* gamma, const grn_stats& st, index_t g,
                          double* sgx, double* sg, T* dx, bool accumulate, T* scale, double* coef)
{
    grn_bwd_sums_rows(dy, x, rows, D, sgx, sg);
    if (!dx) return;
    grn_scale(gamma, st.nx.data() + g * D, D, scale);
    grn_bwd_coef(gamma, st.G.data() + g * D, st.M[static_cast<std::size_t>(g)], sgx, D, coef);
    grn_bwd_data_rows(dy, x, rows, D, scale, coef, dx, accumulate);
}

// The per-group backward (G >= grn_per_group_min): each group is one task, sums then data pass
// while it is in cache. dy_of(r0, r1) gives the group's rows of dL/dy: the tensor's own rows, or
// (fused GRN + pwconv2) a block the caller makes right then.
template <class T, class DyOf>
void grn_bwd_per_group(DyOf&& dy_of, const T* x, const index_t* off, index_t G, index_t D, const T* gamma, const grn_stats& st,
                       T* dx, T* dgamma, T* dbeta, bool accumulate)
{
    std::vector<double> sgx(static_cast<std::size_t>(G * D), 0.0), sg(static_cast<std::size_t>(G * D), 0.0);
    parallel_for(0, G, 1, [&](index_t g0, index_t g1) {
        std::vector<T> scale(static_cast<std::size_t>(D));
        std::vector<double> coef(static_cast<std::size_t>(D));
        for (index_t g = g0; g < g1; ++g) {
            const index_t r0 = off[g];
            grn_bwd_group(dy_of(r0, off[g + 1]), x + r0 * D, off[g + 1] - r0, D, gamma, st, g, sgx.data() + g * D,
                          sg.data() + g * D, dx ? dx + r0 * D : nullptr, accumulate, scale.data(), coef.data());
        }
    });
    detail::grn_param_grads(st, sgx, sg, G, D, dgamma, dbeta);
}

// dx [rows, D] += dL/dx (skipped when null; accumulate = false: dx = dL/dx); dgamma[D], dbeta[D]
// += their gradients (may be null).
template <class T>
void grn_bwd_groups(const T* dy, const T* x, const index_t* off, index_t G, index_t D, const T* gamma, const grn_stats& st, T* dx,
                    T* dgamma, T* dbeta, bool accumulate = true)
{
    if (G >= grn_per_group_min) {
        grn_bwd_per_group([dy, D](index_t r0, index_t) { return dy + r0 * D; }, x, off, G, D, gamma, st, dx, dgamma, dbeta,
                          accumulate);
        return;
    }
    std::vector<double> sgx(static_cast<std::size_t>(G * D), 0.0), sg(static_cast<std::size_t>(G * D), 0.0);
    detail::grn_tasks tasks(off, G, D);
    std::vector<double> pgx(static_cast<std::size_t>(tasks.size() * D), 0.0), pg(static_cast<std::size_t>(tasks.size() * D), 0.0);
    parallel_for(0, tasks.size(), 1, [&](index_t t0, index_t t1) {
        for (index_t t = t0; t < t1; ++t) {
            const index_t r0 = tasks.lo[static_cast<std::size_t>(t)], r1 = tasks.hi[static_cast<std::size_t>(t)];
            grn_bwd_sums_rows(dy + r0 * D, x + r0 * D, r1 - r0, D, pgx.data() + t * D, pg.data() + t * D);
        }
    });
    // Per-group totals, then coefficients for dx.
    std::vector<T> scale(static_cast<std::size_t>(G * D));
    std::vector<double> coef(static_cast<std::size_t>(G * D));
    parallel_for(0, G, 1, [&](index_t g0, index_t g1) {
        for (index_t g = g0; g < g1; ++g) {
            double* a = sgx.data() + g * D;
            double* b = sg.data() + g * D;
            for (index_t t = tasks.first[static_cast<std::size_t>(g)]; t < tasks.first[static_cast<std::size_t>(g + 1)]; ++t) {
                const double* p = pgx.data() + t * D;
                const double* q = pg.data() + t * D;
                for (index_t d = 0; d < D; ++d) { a[d] += p[d]; b[d] += q[d]; }
            }
            grn_scale(gamma, st.nx.data() + g * D, D, scale.data() + g * D);
            grn_bwd_coef(gamma, st.G.data() + g * D, st.M[static_cast<std::size_t>(g)], a, D, coef.data() + g * D);
        }
    });
    detail::grn_param_grads(st, sgx, sg, G, D, dgamma, dbeta);
    if (!dx) return;
    detail::grn_for_rows(off, G, D, [&](index_t g, index_t r0, index_t r1) {
        grn_bwd_data_rows(dy + r0 * D, x + r0 * D, r1 - r0, D, scale.data() + g * D, coef.data() + g * D, dx + r0 * D,
                          accumulate);
    });
}

// Dense maps: x is [N, S, D] (S = H·W sites per sample), one group per sample.
inline std::vector<index_t> grn_uniform_offsets(index_t N, index_t S)
{
    std::vector<index_t> off(static_cast<std::size_t>(N + 1));
    for (index_t n = 0; n <= N; ++n) off[static_cast<std::size_t>(n)] = n * S;
    return off;
}

template <class T>
void grn_fwd(const T* x, index_t N, index_t S, index_t D, const T* gamma, const T* beta, T* y, grn_stats& st)
{
    grn_fwd_groups(x, grn_uniform_offsets(N, S).data(), N, D, gamma, beta, y, st);
}

template <class T>
void grn_bwd(const T* dy, const T* x, index_t N, index_t S, index_t D, const T* gamma, const grn_stats& st, T* dx, T* dgamma,
             T* dbeta)
{
    grn_bwd_groups(dy, x, grn_uniform_offsets(N, S).data(), N, D, gamma, st, dx, dgamma, dbeta);
}

// ---- naive twins, used only by tests: SPEC §1.4 formulas verbatim, all in double ----

template <class T>
void grn_fwd_ref(const T* x, index_t N, index_t S, index_t D, const T* gamma, const T* beta, T* y)
{
    std::vector<double> G(static_cast<std::size_t>(D));
    for (index_t n = 0; n < N; ++n) {
        const T* xs = x + n * S * D;
        double M = 0;
        for (index_t d = 0; d < D; ++d) {
            double s = 0;
            for (index_t i = 0; i < S; ++i) s += static_cast<double>(xs[i * D + d]) * xs[i * D + d];
            G[static_cast<std::size_t>(d)] = std::sqrt(s);
            M += std::sqrt(s);
        }
        M /= static_cast<double>(D);
        for (index_t i = 0; i < S; ++i)
            for (index_t d = 0; d < D; ++d) {
                const double v = xs[i * D + d];
                const double nxd = G[static_cast<std::size_t>(d)] / (M + 1e-6);
                y[(n * S + i) * D + d] = static_cast<T>(static_cast<double>(gamma[d]) * (v * nxd) + beta[d] + v);
            }
    }
}

template <class T>
void grn_bwd_ref(const T* dy, const T* x, index_t N, index_t S, index_t D, const T* gamma, T* dx, T* dgamma, T* dbeta)
{
    const double eps = 1e-6;
    std::vector<double> G(static_cast<std::size_t>(D)), A(static_cast<std::size_t>(D));
    std::vector<double> dgam(static_cast<std::size_t>(D), 0.0), dbet(static_cast<std::size_t>(D), 0.0);
    for (index_t n = 0; n < N; ++n) {
        const T* xs = x + n * S * D;
        const T* gs = dy + n * S * D;
        double M = 0;
        for (index_t d = 0; d < D; ++d) {
            double s = 0;
            for (index_t i = 0; i < S; ++i) s += static_cast<double>(xs[i * D + d]) * xs[i * D + d];
            G[static_cast<std::size_t>(d)] = std::sqrt(s);
            M += std::sqrt(s);
        }
        M /= static_cast<double>(D);
        double sumAG = 0;
        for (index_t d = 0; d < D; ++d) {
            double a = 0;
            for (index_t i = 0; i < S; ++i) a += static_cast<double>(gs[i * D + d]) * gamma[d] * xs[i * D + d];
            A[static_cast<std::size_t>(d)] = a;
            sumAG += a * G[static_cast<std::size_t>(d)];
        }
        for (index_t d = 0; d < D; ++d) {
            const double Gd = G[static_cast<std::size_t>(d)];
            const double nxd = Gd / (M + eps);
            const double dG = A[static_cast<std::size_t>(d)] / (M + eps) - sumAG / (static_cast<double>(D) * (M + eps) * (M + eps));
            for (index_t i = 0; i < S; ++i) {
                const double g = gs[i * D + d], v = xs[i * D + d];
                const double via_norm = Gd == 0 ? 0.0 : dG * v / Gd;
                if (dx) dx[(n * S + i) * D + d] += static_cast<T>(g * (1 + static_cast<double>(gamma[d]) * nxd) + via_norm);
                dgam[static_cast<std::size_t>(d)] += g * v * nxd;
                dbet[static_cast<std::size_t>(d)] += g;
            }
        }
    }
    for (index_t d = 0; d < D; ++d) {
        if (dgamma) dgamma[d] += static_cast<T>(dgam[static_cast<std::size_t>(d)]);
        if (dbeta) dbeta[d] += static_cast<T>(dbet[static_cast<std::size_t>(d)]);
    }
}

} // namespace convnextv2::kernels
