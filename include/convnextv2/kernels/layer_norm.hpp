// SPDX-License-Identifier: MIT
// LayerNorm kernels over the contiguous last axis: M rows ("sites") of C channels, row-major.
//   fwd:  μ = mean(x), σ² = mean((x−μ)²) (biased), y = (x−μ)/sqrt(σ²+eps)·w + b     (SPEC §1.2)
//   bwd:  x̂ = (x−μ)·rstd, ĝ = dy·w,
//         dx (+)= rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)),  dw += Σ_rows dy·x̂,  db += Σ_rows dy
// Mirrors nn.LayerNorm / the official channels_first LN (same math per site). Statistics are
// two-pass and cached in double, so offsets of 1e6 in float inputs lose nothing beyond the input's
// own rounding. Float rows compute in float, 16 lanes, on x − x[0] (exact by Sterbenz's lemma
// when the row sits on a large offset), which keeps that accuracy at twice the double path's
// speed; a row whose float squares overflow (|x| beyond ~1e19) takes the double path. The
// weight/bias reduction runs in fixed row chunks combined in order (bit-identical for any thread
// count).
#pragma once
#include "../core/parallel.hpp"
#include "lane_sum.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cmath>
#include <type_traits>
#include <vector>

namespace convnextv2::kernels {

#if defined(__AVX512F__)
namespace detail {
inline __mmask16 ln_mask(index_t c, index_t C) { return C - c >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (C - c)) - 1u); }
} // namespace detail
#endif

// Rows per parallel task (~16K elements).
inline index_t ln_row_grain(index_t C) { return std::max<index_t>(1, (index_t{1} << 14) / std::max<index_t>(C, 1)); }

// Row-chunk length for deterministic reductions over M rows (depends on M only; <= 64 chunks).
inline index_t ln_reduce_chunk(index_t M) { return std::max<index_t>(64, (M + 63) / 64); }

// Per-row statistics of one row (two-pass, double).
template <class T>
inline void layer_norm_row_stats(const T* x, index_t C, double eps, double& mean, double& rstd)
{
    const double mu = lane_sum(C, [x](index_t c) { return static_cast<double>(x[c]); }) / static_cast<double>(C);
    const double v = lane_sum(C, [x, mu](index_t c) {
        const double d = static_cast<double>(x[c]) - mu;
        return d * d;
    });
    mean = mu;
    rstd = 1.0 / std::sqrt(v / static_cast<double>(C) + eps);
}

namespace detail {
#if defined(__AVX512F__)
// Sixteen-lane float sums in registers: at ConvNeXt's small C (32 in the main job's stage 0) the
// per-row fixed cost, not the arithmetic, set the speed of the loop form.
inline __m512 ln_load(const float* p, index_t c, index_t C) { return _mm512_maskz_loadu_ps(ln_mask(c, C), p + c); }
#endif

// Float row forward on shifted values d = x − x[0]; false (nothing written) when the float
// variance overflows, for the caller's double path.
inline bool layer_norm_row_f32(const float* xr, index_t C, const float* w, const float* b, double eps, float* yr,
                               double& mean, double& rstd)
{
    const float x0 = xr[0];
#if defined(__AVX512F__)
    const __m512 vx0 = _mm512_set1_ps(x0);
    __m512 s = _mm512_setzero_ps();
    for (index_t c = 0; c < C; c += 16) s = _mm512_add_ps(s, _mm512_maskz_sub_ps(ln_mask(c, C), ln_load(xr, c, C), vx0));
    const float md = _mm512_reduce_add_ps(s) / static_cast<float>(C);
    const __m512 shift = vx0, vmd = _mm512_set1_ps(md);
    __m512 q = _mm512_setzero_ps();
    for (index_t c = 0; c < C; c += 16) {
        const __m512 d = _mm512_maskz_sub_ps(ln_mask(c, C), _mm512_sub_ps(ln_load(xr, c, C), shift), vmd);
        q = _mm512_fmadd_ps(d, d, q);
    }
    const float v = _mm512_reduce_add_ps(q);
#else
    const float md = lane_sum<float, 16>(C, [=](index_t c) { return xr[c] - x0; }) / static_cast<float>(C);
    const float v = lane_sum<float, 16>(C, [=](index_t c) {
        const float d = xr[c] - x0 - md;
        return d * d;
    });
#endif
    if (!std::isfinite(v)) return false;
    const float rs = 1.0f / std::sqrt(v / static_cast<float>(C) + static_cast<float>(eps));
    mean = static_cast<double>(x0) + static_cast<double>(md);
    rstd = rs;
#if defined(__AVX512F__)
    const __m512 vrs = _mm512_set1_ps(rs);
    for (index_t c = 0; c < C; c += 16) {
        const __mmask16 m = ln_mask(c, C);
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(ln_load(xr, c, C), shift), vmd), vrs);
        _mm512_mask_storeu_ps(yr + c, m, _mm512_fmadd_ps(xh, ln_load(w, c, C), ln_load(b, c, C)));
    }
#else
    for (index_t c = 0; c < C; ++c) yr[c] = (xr[c] - x0 - md) * rs * w[c] + b[c];
#endif
    return true;
}

// Float row backward: dr (= | +=) rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), x̂ = (x − x0 − md)·rstd as the forward.
inline void layer_norm_row_bwd_f32(const float* gr, const float* xr, index_t C, const float* w, float x0, float md, float rf,
                                   float* dr, bool accumulate)
{
#if defined(__AVX512F__)
    const __m512 shift = _mm512_set1_ps(x0), vmd = _mm512_set1_ps(md), vrs = _mm512_set1_ps(rf);
    // Every multiply feeding an add is an explicit FMA (or none): left to -ffp-contract, GCC fused
    // differently in different inlined copies, and the thread count picked the copy.
    __m512 sg = _mm512_setzero_ps(), sgx = _mm512_setzero_ps();
    for (index_t c = 0; c < C; c += 16) {
        const __m512 gv = ln_load(gr, c, C), wv = ln_load(w, c, C);
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(ln_load(xr, c, C), shift), vmd), vrs);
        sg = _mm512_fmadd_ps(gv, wv, sg);
        sgx = _mm512_fmadd_ps(_mm512_mul_ps(gv, wv), xh, sgx);
    }
    const __m512 a = _mm512_set1_ps(_mm512_reduce_add_ps(sg) / static_cast<float>(C));
    const __m512 bb = _mm512_set1_ps(_mm512_reduce_add_ps(sgx) / static_cast<float>(C));
    for (index_t c = 0; c < C; c += 16) {
        const __mmask16 m = ln_mask(c, C);
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(ln_load(xr, c, C), shift), vmd), vrs);
        const __m512 t = _mm512_fnmadd_ps(xh, bb, _mm512_fmsub_ps(ln_load(gr, c, C), ln_load(w, c, C), a));  // ĝ − a − x̂·b
        const __m512 v = accumulate ? _mm512_fmadd_ps(vrs, t, ln_load(dr, c, C)) : _mm512_mul_ps(vrs, t);
        _mm512_mask_storeu_ps(dr + c, m, v);
    }
#else
    const float sg = lane_sum<float, 16>(C, [=](index_t c) { return gr[c] * w[c]; });
    const float sgx = lane_sum<float, 16>(C, [=](index_t c) { return gr[c] * w[c] * ((xr[c] - x0 - md) * rf); });
    const float a = sg / static_cast<float>(C), bb = sgx / static_cast<float>(C);
    for (index_t c = 0; c < C; ++c) {
        const float v = rf * (gr[c] * w[c] - a - (xr[c] - x0 - md) * rf * bb);
        dr[c] = accumulate ? dr[c] + v : v;
    }
#endif
}

#if defined(__AVX512F__)
// Rows [m0, m1) of the float backward for C <= 16·NB, the same operations as
// layer_norm_row_bwd_f32 plus the parameter sums (aw[c] = fma(g, x̂, aw[c]), ab[c] += g, row by
// row), but with those sums in registers across the rows: the per-row loop loaded and stored
// 4·C doubles per row, which at the main job's C = 32 cost more than the row itself.
template <int NB>
inline void layer_norm_rows_bwd_f32(const float* dy, const float* x, index_t m0, index_t m1, index_t C, const float* w,
                                    const double* mean, const double* rstd, float* dx, bool accumulate, double* aw, double* ab)
{
    __mmask16 mk[NB];
    __m512 wv[NB];
    __m512d sw[2 * NB], sb[2 * NB];
    for (int b = 0; b < NB; ++b) {
        mk[b] = ln_mask(16 * b, C);
        wv[b] = ln_load(w, 16 * b, C);
        const auto lo = static_cast<__mmask8>(mk[b]), hi = static_cast<__mmask8>(mk[b] >> 8);
        sw[2 * b] = aw ? _mm512_maskz_loadu_pd(lo, aw + 16 * b) : _mm512_setzero_pd();
        sw[2 * b + 1] = aw ? _mm512_maskz_loadu_pd(hi, aw + 16 * b + 8) : _mm512_setzero_pd();
        sb[2 * b] = ab ? _mm512_maskz_loadu_pd(lo, ab + 16 * b) : _mm512_setzero_pd();
        sb[2 * b + 1] = ab ? _mm512_maskz_loadu_pd(hi, ab + 16 * b + 8) : _mm512_setzero_pd();
    }
    const bool params = aw != nullptr;
    for (index_t m = m0; m < m1; ++m) {
        const float* xr = x + m * C;
        const float* gr = dy + m * C;
        const float x0 = xr[0], md = static_cast<float>(mean[m] - static_cast<double>(x0)), rf = static_cast<float>(rstd[m]);
        const __m512 shift = _mm512_set1_ps(x0), vmd = _mm512_set1_ps(md), vrs = _mm512_set1_ps(rf);
        __m512 gv[NB], xh[NB];
        __m512 sg = _mm512_setzero_ps(), sgx = _mm512_setzero_ps();
        for (int b = 0; b < NB; ++b) {
            gv[b] = _mm512_maskz_loadu_ps(mk[b], gr + 16 * b);
            xh[b] = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk[b], xr + 16 * b), shift), vmd), vrs);
            sg = _mm512_fmadd_ps(gv[b], wv[b], sg);
            sgx = _mm512_fmadd_ps(_mm512_mul_ps(gv[b], wv[b]), xh[b], sgx);
        }
        if (dx) {
            const __m512 a = _mm512_set1_ps(_mm512_reduce_add_ps(sg) / static_cast<float>(C));
            const __m512 bb = _mm512_set1_ps(_mm512_reduce_add_ps(sgx) / static_cast<float>(C));
            float* dr = dx + m * C;
            for (int b = 0; b < NB; ++b) {
                const __m512 t = _mm512_fnmadd_ps(xh[b], bb, _mm512_fmsub_ps(gv[b], wv[b], a));  // ĝ − a − x̂·b
                const __m512 v = accumulate ? _mm512_fmadd_ps(vrs, t, _mm512_maskz_loadu_ps(mk[b], dr + 16 * b)) : _mm512_mul_ps(vrs, t);
                _mm512_mask_storeu_ps(dr + 16 * b, mk[b], v);
            }
        }
        if (params)
            for (int b = 0; b < NB; ++b) {
                const __m512d glo = _mm512_cvtps_pd(_mm512_castps512_ps256(gv[b]));
                const __m512d ghi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(gv[b]), 1)));
                const __m512d xlo = _mm512_cvtps_pd(_mm512_castps512_ps256(xh[b]));
                const __m512d xhi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xh[b]), 1)));
                sw[2 * b] = _mm512_fmadd_pd(glo, xlo, sw[2 * b]);
                sw[2 * b + 1] = _mm512_fmadd_pd(ghi, xhi, sw[2 * b + 1]);
                sb[2 * b] = _mm512_add_pd(sb[2 * b], glo);
                sb[2 * b + 1] = _mm512_add_pd(sb[2 * b + 1], ghi);
            }
    }
    if (!params) return;
    for (int b = 0; b < NB; ++b) {
        const auto lo = static_cast<__mmask8>(mk[b]), hi = static_cast<__mmask8>(mk[b] >> 8);
        _mm512_mask_storeu_pd(aw + 16 * b, lo, sw[2 * b]);
        _mm512_mask_storeu_pd(aw + 16 * b + 8, hi, sw[2 * b + 1]);
        _mm512_mask_storeu_pd(ab + 16 * b, lo, sb[2 * b]);
        _mm512_mask_storeu_pd(ab + 16 * b + 8, hi, sb[2 * b + 1]);
    }
}

// The rows' backward through layer_norm_rows_bwd_f32 when C fits in 64 channels; false otherwise.
inline bool layer_norm_rows_bwd_small_f32(const float* dy, const float* x, index_t m0, index_t m1, index_t C, const float* w,
                                          const double* mean, const double* rstd, float* dx, bool accumulate, double* aw,
                                          double* ab)
{
    switch ((C + 15) / 16) {
    case 1: layer_norm_rows_bwd_f32<1>(dy, x, m0, m1, C, w, mean, rstd, dx, accumulate, aw, ab); return true;
    case 2: layer_norm_rows_bwd_f32<2>(dy, x, m0, m1, C, w, mean, rstd, dx, accumulate, aw, ab); return true;
    case 3: layer_norm_rows_bwd_f32<3>(dy, x, m0, m1, C, w, mean, rstd, dx, accumulate, aw, ab); return true;
    case 4: layer_norm_rows_bwd_f32<4>(dy, x, m0, m1, C, w, mean, rstd, dx, accumulate, aw, ab); return true;
    default: return false;
    }
}
#endif
} // namespace detail

// y[M,C] = LN(x); mean/rstd [M] are written for the backward (they may not be null).
template <class T>
void layer_norm_fwd(const T* x, index_t M, index_t C, const T* w, const T* b, double eps, T* y, double* mean, double* rstd)
{
    parallel_for(0, M, ln_row_grain(C), [&](index_t m0, index_t m1) {
        for (index_t m = m0; m < m1; ++m) {
            const T* xr = x + m * C;
            T* yr = y + m * C;
            if constexpr (std::is_same_v<T, float>)
                if (detail::layer_norm_row_f32(xr, C, w, b, eps, yr, mean[m], rstd[m])) continue;
            double mu, rs;
            layer_norm_row_stats(xr, C, eps, mu, rs);
            mean[m] = mu;
            rstd[m] = rs;
            for (index_t c = 0; c < C; ++c)
                yr[c] = static_cast<T>((static_cast<double>(xr[c]) - mu) * rs * static_cast<double>(w[c]) + static_cast<double>(b[c]));
        }
    });
}

// dx[M,C] += dL/dx (skipped when dx is null; accumulate = false: dx = dL/dx, its old contents
// unread); dw[C] += Σ dy·x̂; db[C] += Σ dy. One pass over the rows: each row's dx and its share
// of the weight/bias sums are computed while it is in L1.
template <class T>
void layer_norm_bwd(const T* dy, const T* x, index_t M, index_t C, const T* w, const double* mean, const double* rstd, T* dx,
                    T* dw, T* db, bool accumulate = true)
{
    const bool params = dw || db;
    if (!dx && !params) return;
    const index_t chunk = ln_reduce_chunk(M);
    const index_t nc = num_chunks(M, chunk);
    const std::size_t np = params ? static_cast<std::size_t>(nc * C) : 0;
    std::vector<double> pw(np, 0.0), pb(np, 0.0);
    parallel_chunks(M, chunk, [&](index_t ci, index_t m0, index_t m1) {
        double* aw = params ? pw.data() + ci * C : nullptr;
        double* ab = params ? pb.data() + ci * C : nullptr;
#if defined(__AVX512F__)
        if constexpr (std::is_same_v<T, float>)
            if (detail::layer_norm_rows_bwd_small_f32(dy, x, m0, m1, C, w, mean, rstd, dx, accumulate, aw, ab)) return;
#endif
        for (index_t m = m0; m < m1; ++m) {
            const T* xr = x + m * C;
            const T* gr = dy + m * C;
            const double mu = mean[m], rs = rstd[m];
            if constexpr (std::is_same_v<T, float>) {
                // float, on x − x[0] as the forward: x̂ = (x − x0 − (μ − x0))·rstd
                const float x0 = xr[0], md = static_cast<float>(mu - static_cast<double>(x0)), rf = static_cast<float>(rs);
                if (dx) detail::layer_norm_row_bwd_f32(gr, xr, C, w, x0, md, rf, dx + m * C, accumulate);
                if (params)
                    for (index_t c = 0; c < C; ++c) {
                        const double g = static_cast<double>(gr[c]);
                        aw[c] = std::fma(g, static_cast<double>((xr[c] - x0 - md) * rf), aw[c]);  // explicit, as above
                        ab[c] += g;
                    }
                continue;
            }
            if (dx) {
                T* dr = dx + m * C;
                const double sg = lane_sum(C, [gr, w](index_t c) { return static_cast<double>(gr[c]) * static_cast<double>(w[c]); });
                const double sgx = lane_sum(C, [gr, w, xr, mu, rs](index_t c) {
                    return static_cast<double>(gr[c]) * static_cast<double>(w[c]) * ((static_cast<double>(xr[c]) - mu) * rs);
                });
                const double a = sg / static_cast<double>(C), bb = sgx / static_cast<double>(C);
                for (index_t c = 0; c < C; ++c) {
                    const double g = static_cast<double>(gr[c]) * static_cast<double>(w[c]);
                    const double xh = (static_cast<double>(xr[c]) - mu) * rs;
                    const T v = static_cast<T>(rs * (g - a - xh * bb));
                    dr[c] = accumulate ? dr[c] + v : v;
                }
            }
            if (params)
                for (index_t c = 0; c < C; ++c) {
                    const double g = static_cast<double>(gr[c]);
                    aw[c] += g * (static_cast<double>(xr[c]) - mu) * rs;
                    ab[c] += g;
                }
        }
    });
    if (!params) return;
    for (index_t c = 0; c < C; ++c) {
        double sw = 0, sb = 0;
        for (index_t ci = 0; ci < nc; ++ci) {
            sw += pw[static_cast<std::size_t>(ci * C + c)];
            sb += pb[static_cast<std::size_t>(ci * C + c)];
        }
        if (dw) dw[c] += static_cast<T>(sw);
        if (db) db[c] += static_cast<T>(sb);
    }
}

// ---- naive twins, used only by tests (textbook formulas, all in double) ----

template <class T>
void layer_norm_fwd_ref(const T* x, index_t M, index_t C, const T* w, const T* b, double eps, T* y)
{
    for (index_t m = 0; m < M; ++m) {
        double mu = 0;
        for (index_t c = 0; c < C; ++c) mu += x[m * C + c];
        mu /= static_cast<double>(C);
        double var = 0;
        for (index_t c = 0; c < C; ++c) var += (x[m * C + c] - mu) * (x[m * C + c] - mu);
        var /= static_cast<double>(C);
        for (index_t c = 0; c < C; ++c)
            y[m * C + c] = static_cast<T>((x[m * C + c] - mu) / std::sqrt(var + eps) * w[c] + b[c]);
    }
}

// Explicit Jacobian-vector form: dx_i = Σ_j ĝ_j ∂x̂_j/∂x_i with ∂x̂_j/∂x_i = rstd(δij − 1/C − x̂_i x̂_j / C).
template <class T>
void layer_norm_bwd_ref(const T* dy, const T* x, index_t M, index_t C, const T* w, double eps, T* dx, T* dw, T* db)
{
    std::vector<double> xh(static_cast<std::size_t>(C));
    for (index_t m = 0; m < M; ++m) {
        double mu = 0;
        for (index_t c = 0; c < C; ++c) mu += x[m * C + c];
        mu /= static_cast<double>(C);
        double var = 0;
        for (index_t c = 0; c < C; ++c) var += (x[m * C + c] - mu) * (x[m * C + c] - mu);
        var /= static_cast<double>(C);
        const double rs = 1.0 / std::sqrt(var + eps);
        for (index_t c = 0; c < C; ++c) xh[static_cast<std::size_t>(c)] = (x[m * C + c] - mu) * rs;
        for (index_t i = 0; i < C; ++i) {
            double s = 0;
            for (index_t j = 0; j < C; ++j) {
                const double jac = rs * ((i == j ? 1.0 : 0.0) - 1.0 / static_cast<double>(C) -
                                         xh[static_cast<std::size_t>(i)] * xh[static_cast<std::size_t>(j)] / static_cast<double>(C));
                s += static_cast<double>(dy[m * C + j]) * w[j] * jac;
            }
            if (dx) dx[m * C + i] += static_cast<T>(s);
        }
    }
    for (index_t c = 0; c < C; ++c) {
        double sw = 0, sb = 0;
        for (index_t m = 0; m < M; ++m) {
            double mu = 0, var = 0;
            for (index_t k = 0; k < C; ++k) mu += x[m * C + k];
            mu /= static_cast<double>(C);
            for (index_t k = 0; k < C; ++k) var += (x[m * C + k] - mu) * (x[m * C + k] - mu);
            var /= static_cast<double>(C);
            sw += static_cast<double>(dy[m * C + c]) * (x[m * C + c] - mu) / std::sqrt(var + eps);
            sb += dy[m * C + c];
        }
        if (dw) dw[c] += static_cast<T>(sw);
        if (db) db[c] += static_cast<T>(sb);
    }
}

} // namespace convnextv2::kernels
