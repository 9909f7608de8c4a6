// SPDX-License-Identifier: MIT
// Non-overlapping k x k, stride k convolution without padding (the stem, k = 4, and the downsample
// convs, k = 2; SPEC §1.1), on NHWC x[N,H,W,I] -> y[N, H/k, W/k, O] (rounded down, as nn.Conv2d:
// the rows and columns past the last whole window are not read, and get no gradient):
//   y[n,i,j,o] = b[o] + Σ_{kh,kw,ci} w[o,kh,kw,ci] · x[n, k·i+kh, k·j+kw, ci]
// Because the patches do not overlap this is a reshape plus one GEMM: gather every patch into a
// row of P[M = N·(H/k)·(W/k), K = k·k·I] ((kh, kw, ci) order, ci fastest), then y = P·Wᵀ + b with the
// weight stored [O][k][k][I] (= row-major [O, K]); the backward passes are the GEMM's, with the
// data gradient scattered back into dx.
#pragma once
#include "../sparse/active_sites.hpp"
#include "gemm.hpp"

#include <algorithm>

namespace convnextv2::kernels {

// P[M, k·k·I] from x (overwrites P).
template <class T>
void patch_gather(const T* x, index_t N, index_t H, index_t W, index_t I, index_t k, T* patches)
{
    const index_t Ho = H / k, Wo = W / k, seg = k * I, K = k * seg;
    parallel_for(0, N * Ho, std::max<index_t>(1, 16384 / std::max<index_t>(W * I * k, 1)), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {  // r = n·Ho + i
            const index_t n = r / Ho, i = r % Ho;
            for (index_t kh = 0; kh < k; ++kh) {
                const T* src = x + ((n * H + k * i + kh) * W) * I;
                T* dst = patches + r * Wo * K + kh * seg;
                for (index_t j = 0; j < Wo; ++j) std::copy(src + j * seg, src + (j + 1) * seg, dst + j * K);
            }
        }
    });
}

// dx += the patches of P put back in place (the adjoint of patch_gather).
template <class T>
void patch_scatter_add(const T* patches, index_t N, index_t H, index_t W, index_t I, index_t k, T* dx)
{
    const index_t Ho = H / k, Wo = W / k, seg = k * I, K = k * seg;
    parallel_for(0, N * Ho, std::max<index_t>(1, 16384 / std::max<index_t>(W * I * k, 1)), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const index_t n = r / Ho, i = r % Ho;
            for (index_t kh = 0; kh < k; ++kh) {
                T* dst = dx + ((n * H + k * i + kh) * W) * I;
                const T* src = patches + r * Wo * K + kh * seg;
                for (index_t j = 0; j < Wo; ++j) {
                    const T* __restrict s = src + j * K;
                    T* __restrict d = dst + j * seg;
                    for (index_t e = 0; e < seg; ++e) d[e] += s[e];
                }
            }
        }
    });
}

// Sparse twins of the two above (FCMAE's sparse downsample, SPEC §3.4): output row r of `out`
// (a map made by downsample_sites) gathers the rows parent[r·k² + t] of the finer map into
// P[r, t·I : (t+1)·I]; an inactive parent contributes zeros. Windows do not overlap, so the
// scatter is race-free.
template <class T>
void sparse_patch_gather(const T* x, const active_sites& out, index_t I, T* patches)
{
    const index_t kk = out.parent_kernel * out.parent_kernel;
    parallel_for(0, out.rows(), std::max<index_t>(1, 4096 / std::max<index_t>(kk * I, 1)), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r)
            for (index_t t = 0; t < kk; ++t) {
                const std::int32_t p = out.parent[static_cast<std::size_t>(r * kk + t)];
                T* dst = patches + (r * kk + t) * I;
                if (p >= 0)
                    std::copy(x + p * I, x + (p + 1) * I, dst);
                else
                    std::fill(dst, dst + I, T(0));
            }
    });
}

template <class T>
void sparse_patch_scatter_add(const T* patches, const active_sites& out, index_t I, T* dx)
{
    const index_t kk = out.parent_kernel * out.parent_kernel;
    parallel_for(0, out.rows(), std::max<index_t>(1, 4096 / std::max<index_t>(kk * I, 1)), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r)
            for (index_t t = 0; t < kk; ++t) {
                const std::int32_t p = out.parent[static_cast<std::size_t>(r * kk + t)];
                if (p < 0) continue;
                const T* __restrict s = patches + (r * kk + t) * I;
                T* __restrict d = dx + p * I;
                for (index_t e = 0; e < I; ++e) d[e] += s[e];
            }
    });
}

// y[N,H/k,W/k,O]. `patches` is scratch of M·K elements; it is left holding the gathered input,
// which is what patch_conv_bwd_weight takes.
template <class T>
void patch_conv_fwd(const T* x, index_t N, index_t H, index_t W, index_t I, index_t k, const T* w, const T* b, index_t O, T* y,
                    T* patches)
{
    const index_t M = N * (H / k) * (W / k), K = k * k * I;
    patch_gather(x, N, H, W, I, k, patches);
    linear_fwd(patches, M, K, w, b, O, y);
}

// dx += ∂L/∂x. `scratch` holds M·K elements (may be the patches buffer once bwd_weight is done).
template <class T>
void patch_conv_bwd_data(const T* dy, index_t N, index_t H, index_t W, index_t I, index_t k, const T* w, index_t O, T* dx,
                         T* scratch)
{
    const index_t M = N * (H / k) * (W / k), K = k * k * I;
    linear_bwd_data(dy, M, O, w, K, scratch, /*accumulate=*/false);
    patch_scatter_add(scratch, N, H, W, I, k, dx);
}

// dw[O,k,k,I] += dyᵀ·P, db[O] += Σ dy, with P = patch_gather(x) (as left by patch_conv_fwd).
// Deterministic for any thread count (linear_bwd_weight reduces fixed chunks in order).
template <class T>
void patch_conv_bwd_weight(const T* dy, const T* patches, index_t N, index_t H, index_t W, index_t I, index_t k, index_t O,
                           T* dw, T* db)
{
    const index_t M = N * (H / k) * (W / k), K = k * k * I;
    linear_bwd_weight(dy, patches, M, K, O, dw, db);
}

// ---- naive twins, used only by tests ----

template <class T>
void patch_conv_fwd_ref(const T* x, index_t N, index_t H, index_t W, index_t I, index_t k, const T* w, const T* b, index_t O,
                        T* y)
{
    const index_t Ho = H / k, Wo = W / k;
    for (index_t n = 0; n < N; ++n)
        for (index_t i = 0; i < Ho; ++i)
            for (index_t j = 0; j < Wo; ++j)
                for (index_t o = 0; o < O; ++o) {
                    double s = b ? static_cast<double>(b[o]) : 0.0;
                    for (index_t kh = 0; kh < k; ++kh)
                        for (index_t kw = 0; kw < k; ++kw)
                            for (index_t c = 0; c < I; ++c)
                                s += static_cast<double>(w[((o * k + kh) * k + kw) * I + c]) *
                                     x[((n * H + k * i + kh) * W + k * j + kw) * I + c];
                    y[((n * Ho + i) * Wo + j) * O + o] = static_cast<T>(s);
                }
}

template <class T>
void patch_conv_bwd_data_ref(const T* dy, index_t N, index_t H, index_t W, index_t I, index_t k, const T* w, index_t O, T* dx)
{
    const index_t Ho = H / k, Wo = W / k;
    for (index_t n = 0; n < N; ++n)
        for (index_t h = 0; h < Ho * k; ++h)
            for (index_t wc = 0; wc < Wo * k; ++wc)
                for (index_t c = 0; c < I; ++c) {
                    const index_t i = h / k, j = wc / k, kh = h % k, kw = wc % k;
                    double s = 0;
                    for (index_t o = 0; o < O; ++o)
                        s += static_cast<double>(dy[((n * Ho + i) * Wo + j) * O + o]) * w[((o * k + kh) * k + kw) * I + c];
                    dx[((n * H + h) * W + wc) * I + c] += static_cast<T>(s);
                }
}

template <class T>
void patch_conv_bwd_weight_ref(const T* dy, const T* x, index_t N, index_t H, index_t W, index_t I, index_t k, index_t O, T* dw,
                               T* db)
{
    const index_t Ho = H / k, Wo = W / k;
    for (index_t o = 0; o < O; ++o) {
        for (index_t kh = 0; kh < k; ++kh)
            for (index_t kw = 0; kw < k; ++kw)
                for (index_t c = 0; c < I; ++c) {
                    double s = 0;
                    for (index_t n = 0; n < N; ++n)
                        for (index_t i = 0; i < Ho; ++i)
                            for (index_t j = 0; j < Wo; ++j)
                                s += static_cast<double>(dy[((n * Ho + i) * Wo + j) * O + o]) *
                                     x[((n * H + k * i + kh) * W + k * j + kw) * I + c];
                    dw[((o * k + kh) * k + kw) * I + c] += static_cast<T>(s);
                }
        if (db) {
            double s = 0;
            for (index_t m = 0; m < N * Ho * Wo; ++m) s += dy[m * O + o];
            db[o] += static_cast<T>(s);
        }
    }
}

} // namespace convnextv2::kernels
