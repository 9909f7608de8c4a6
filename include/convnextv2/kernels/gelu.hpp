// SPDX-License-Identifier: MIT
// Exact (erf) GELU, elementwise (SPEC §1.3; nn.GELU() default, timm F.gelu, HF "gelu"):
//   fwd:  y = 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(−x/√2)
//   bwd:  dx += dy·(Φ(x) + x·φ(x)),  Φ(x) = 0.5·erfc(−x/√2),  φ(x) = exp(−x²/2)/√(2π)
// The erfc spelling avoids the cancellation 1 + erf(x/√2) suffers for negative x in float
// (at x = −4 it would keep only ~3 digits).
#pragma once
#include "../core/parallel.hpp"

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>
#include <cmath>
#include <type_traits>

namespace convnextv2::kernels {

inline constexpr index_t gelu_grain = index_t{1} << 14;

template <class T>
inline T gelu_value(T x)
{
    constexpr T inv_sqrt2 = T(0.70710678118654752440);
    return T(0.5) * x * std::erfc(-x * inv_sqrt2);
}

template <class T>
inline T gelu_derivative(T x)
{
    constexpr T inv_sqrt2 = T(0.70710678118654752440);
    constexpr T inv_sqrt_2pi = T(0.39894228040143267794);
    return T(0.5) * std::erfc(-x * inv_sqrt2) + x * inv_sqrt_2pi * std::exp(T(-0.5) * x * x);
}

// The float path uses Eigen's vectorised erf/exp (libm's scalar erfcf was 10% of a training
// step). 1 + erf loses relative accuracy in the far negative tail, but the absolute error of
// gelu stays below 1e-6 there, as in PyTorch's vectorised CPU kernel. Every element goes
// through the same 16-lane packet code (a short tail is padded), so a value does not depend on
// the alignment of its buffer or on where a range starts (the fused pwconv1 + GELU writes into
// scratch blocks and must match the plain layer bit for bit).
namespace detail {
using packet16 = Eigen::Array<float, 16, 1>;

template <class F>
inline void for_packets(index_t n, F&& f)  // f(i, lanes): 16 lanes at i, or the last `lanes` < 16
{
    index_t i = 0;
    for (; i + 16 <= n; i += 16) f(i, index_t{16});
    if (i < n) f(i, n - i);
}
inline packet16 load16(const float* p, index_t lanes)
{
    if (lanes == 16) return Eigen::Map<const packet16>(p);
    packet16 v = packet16::Zero();
    for (index_t j = 0; j < lanes; ++j) v[j] = p[j];
    return v;
}
inline void store16(const packet16& v, float* p, index_t lanes)
{
    if (lanes == 16) { Eigen::Map<packet16> out(p); out = v; return; }
    for (index_t j = 0; j < lanes; ++j) p[j] = v[j];
}
inline void gelu_fwd_f32(const float* x, index_t n, float* y)
{
    for_packets(n, [&](index_t i, index_t lanes) {
        const packet16 v = load16(x + i, lanes);
        store16(0.5f * v * (1.0f + (v * 0.70710678118654752440f).erf()).max(0.0f), y + i, lanes);
    });
}
inline void gelu_bwd_f32(const float* x, const float* dy, index_t n, float* dx, bool accumulate)
{
    for_packets(n, [&](index_t i, index_t lanes) {
        const packet16 v = load16(x + i, lanes), g = load16(dy + i, lanes);
        packet16 d = g * (0.5f * (1.0f + (v * 0.70710678118654752440f).erf()).max(0.0f) +
                          v * 0.39894228040143267794f * (-0.5f * v * v).exp());
        if (accumulate) d += load16(dx + i, lanes);
        store16(d, dx + i, lanes);
    });
}
} // namespace detail

// Serial forms on one range: the parallel drivers below and the fused pwconv1 + GELU
// (kernels/gemm.hpp linear_fwd_then / linear_bwd_from) share them.
// y[i] = gelu(x[i]) for i < n (x == y allowed).
template <class T>
void gelu_fwd_range(const T* x, index_t n, T* y)
{
    if constexpr (std::is_same_v<T, float>) detail::gelu_fwd_f32(x, n, y);
    else
        for (index_t i = 0; i < n; ++i) y[i] = gelu_value(x[i]);
}

// dx[i] += dy[i]·gelu'(x[i])  (accumulate = false: dx[i] = dy[i]·gelu'(x[i])).
template <class T>
void gelu_bwd_range(const T* x, const T* dy, index_t n, T* dx, bool accumulate)
{
    if constexpr (std::is_same_v<T, float>) detail::gelu_bwd_f32(x, dy, n, dx, accumulate);
    else
        for (index_t i = 0; i < n; ++i) dx[i] = (accumulate ? dx[i] : T(0)) + dy[i] * gelu_derivative(x[i]);
}

template <class T>
void gelu_fwd(const T* x, index_t n, T* y)
{
    parallel_for(0, n, gelu_grain, [&](index_t i0, index_t i1) { gelu_fwd_range(x + i0, i1 - i0, y + i0); });
}

template <class T>
void gelu_bwd(const T* x, const T* dy, index_t n, T* dx, bool accumulate = true)
{
    parallel_for(0, n, gelu_grain,
                 [&](index_t i0, index_t i1) { gelu_bwd_range(x + i0, dy + i0, i1 - i0, dx + i0, accumulate); });
}

// ---- naive twins, used only by tests: the textbook erf form in double ----

template <class T>
void gelu_fwd_ref(const T* x, index_t n, T* y)
{
    for (index_t i = 0; i < n; ++i) {
        const double v = x[i];
        y[i] = static_cast<T>(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
    }
}

template <class T>
void gelu_bwd_ref(const T* x, const T* dy, index_t n, T* dx)
{
    const double pi = 3.14159265358979323846;
    for (index_t i = 0; i < n; ++i) {
        const double v = x[i];
        const double d = 0.5 * (1.0 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * pi);
        dx[i] += static_cast<T>(static_cast<double>(dy[i]) * d);
    }
}

} // namespace convnextv2::kernels
