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
// gelu stays below 1e-6 there, as in PyTorch's vectorised CPU kernel.
namespace detail {
using farray = Eigen::Array<float, Eigen::Dynamic, 1>;
inline void gelu_fwd_f32(const float* x, index_t n, float* y)
{
    Eigen::Map<const farray> xs(x, n);
    Eigen::Map<farray> ys(y, n);
    ys = 0.5f * xs * (1.0f + (xs * 0.70710678118654752440f).erf()).max(0.0f);
}
inline void gelu_bwd_f32(const float* x, const float* dy, index_t n, float* dx, bool accumulate)
{
    Eigen::Map<const farray> xs(x, n), g(dy, n);
    Eigen::Map<farray> d(dx, n);
    const auto v = g * (0.5f * (1.0f + (xs * 0.70710678118654752440f).erf()).max(0.0f) +
                        xs * 0.39894228040143267794f * (-0.5f * xs * xs).exp());
    if (accumulate) d += v;
    else d = v;
}
} // namespace detail

// y[i] = gelu(x[i]) for i < n (x == y allowed).
template <class T>
void gelu_fwd(const T* x, index_t n, T* y)
{
    parallel_for(0, n, gelu_grain, [&](index_t i0, index_t i1) {
        if constexpr (std::is_same_v<T, float>) detail::gelu_fwd_f32(x + i0, i1 - i0, y + i0);
        else
            for (index_t i = i0; i < i1; ++i) y[i] = gelu_value(x[i]);
    });
}

// dx[i] += dy[i]·gelu'(x[i])  (accumulate = false: dx[i] = dy[i]·gelu'(x[i])).
template <class T>
void gelu_bwd(const T* x, const T* dy, index_t n, T* dx, bool accumulate = true)
{
    parallel_for(0, n, gelu_grain, [&](index_t i0, index_t i1) {
        if constexpr (std::is_same_v<T, float>) detail::gelu_bwd_f32(x + i0, dy + i0, i1 - i0, dx + i0, accumulate);
        else
            for (index_t i = i0; i < i1; ++i) dx[i] = (accumulate ? dx[i] : T(0)) + dy[i] * gelu_derivative(x[i]);
    });
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
