// SPDX-License-Identifier: MIT
// Global average pooling over the spatial axes of NHWC x[N,H,W,C] (the head's x.mean([-2, -1])
// in facebookresearch/ConvNeXt-V2: models/convnextv2.py; SPEC §1.5), with S = H·W sites:
//   fwd: y[n,c] = (1/S) Σ_s x[n,s,c]        bwd: dx[n,s,c] += dy[n,c] / S
// Sums are accumulated in double per channel block; samples run in parallel.
#pragma once
#include "../core/grad_write.hpp"
#include "../core/parallel.hpp"

#include <algorithm>

namespace convnextv2::kernels {

template <class T>
void global_avg_pool_fwd(const T* x, index_t N, index_t S, index_t C, T* y)
{
    constexpr index_t B = 64;
    parallel_for(0, N, 1, [&](index_t n0, index_t n1) {
        for (index_t n = n0; n < n1; ++n) {
            const T* xn = x + n * S * C;
            for (index_t c0 = 0; c0 < C; c0 += B) {
                const index_t width = std::min(B, C - c0);
                double acc[B] = {};
                for (index_t s = 0; s < S; ++s) {
                    const T* __restrict xp = xn + s * C + c0;
                    for (index_t j = 0; j < width; ++j) acc[j] += static_cast<double>(xp[j]);
                }
                const double inv = 1.0 / static_cast<double>(S);
                for (index_t j = 0; j < width; ++j) y[n * C + c0 + j] = static_cast<T>(acc[j] * inv);
            }
        }
    });
}

// dx[n, s, c] += dy[n, c] / S  (accumulate = false: dx = dy / S).
template <class T>
void global_avg_pool_bwd(const T* dy, index_t N, index_t S, index_t C, T* dx, bool accumulate = true)
{
    const T inv = static_cast<T>(1.0 / static_cast<double>(S));
    parallel_for(0, N * S, std::max<index_t>(1, 16384 / std::max<index_t>(C, 1)), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* __restrict g = dy + (r / S) * C;
            write_grad(dx + r * C, 0, C, accumulate, [&](index_t c) { return g[c] * inv; });
        }
    });
}

// ---- naive twins, used only by tests ----

template <class T>
void global_avg_pool_fwd_ref(const T* x, index_t N, index_t S, index_t C, T* y)
{
    for (index_t n = 0; n < N; ++n)
        for (index_t c = 0; c < C; ++c) {
            double s = 0;
            for (index_t i = 0; i < S; ++i) s += x[(n * S + i) * C + c];
            y[n * C + c] = static_cast<T>(s / static_cast<double>(S));
        }
}

template <class T>
void global_avg_pool_bwd_ref(const T* dy, index_t N, index_t S, index_t C, T* dx)
{
    for (index_t n = 0; n < N; ++n)
        for (index_t i = 0; i < S; ++i)
            for (index_t c = 0; c < C; ++c)
                dx[(n * S + i) * C + c] += static_cast<T>(static_cast<double>(dy[n * C + c]) / static_cast<double>(S));
}

} // namespace convnextv2::kernels
