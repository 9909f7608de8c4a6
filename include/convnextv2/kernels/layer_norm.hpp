// SPDX-License-Identifier: MIT
// LayerNorm kernels over the contiguous last axis: M rows ("sites") of C channels, row-major.
//   fwd:  μ = mean(x), σ² = mean((x−μ)²) (biased), y = (x−μ)/sqrt(σ²+eps)·w + b     (SPEC §1.2)
//   bwd:  x̂ = (x−μ)·rstd, ĝ = dy·w,
//         dx (+)= rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)),  dw += Σ_rows dy·x̂,  db += Σ_rows dy
// Mirrors nn.LayerNorm / the official channels_first LN (same math per site). Statistics are
// two-pass in double and cached in double, so offsets of 1e6 in float inputs lose nothing beyond
// the input's own rounding. The weight/bias reduction runs in fixed row chunks combined in order
// (bit-identical for any thread count).
#pragma once
#include "../core/parallel.hpp"
#include "lane_sum.hpp"

#include <cmath>
#include <vector>

namespace convnextv2::kernels {

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

// y[M,C] = LN(x); mean/rstd [M] are written for the backward (they may not be null).
template <class T>
void layer_norm_fwd(const T* x, index_t M, index_t C, const T* w, const T* b, double eps, T* y, double* mean, double* rstd)
{
    parallel_for(0, M, ln_row_grain(C), [&](index_t m0, index_t m1) {
        for (index_t m = m0; m < m1; ++m) {
            const T* xr = x + m * C;
            T* yr = y + m * C;
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
        for (index_t m = m0; m < m1; ++m) {
            const T* xr = x + m * C;
            const T* gr = dy + m * C;
            const double mu = mean[m], rs = rstd[m];
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
