// SPDX-License-Identifier: MIT
// FCMAE targets and loss (SPEC §3.7), on channels-last images.
//   patchify:   image (N, g·p, g·p, C) -> rows [N·g·g, P = p·p·C], patch l = i·g + j, element
//               (py·p + px)·C + c (pixel row slowest, channel fastest: the official layout, which
//               is also the NHWC order inside a patch)
//   norm_pix:   per patch t = (t − mean)/sqrt(var + 1e-6), var unbiased (divide by P − 1)
//   masked_mse: loss = Σ_l mask_l · mean_k (pred − target)² / Σ_l mask_l, and its gradient
// Sums run in double over fixed row chunks combined in order (deterministic for any thread count).
#pragma once
#include "../core/parallel.hpp"

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace convnextv2::kernels {

inline constexpr double norm_pix_eps = 1e-6;

namespace detail {
// Copies every patch between the image (N, g·p, g·p, C) and its row; one pixel row at a time.
template <bool ToRows, class T>
void patch_rows_copy(std::conditional_t<ToRows, const T*, T*> img, std::conditional_t<ToRows, T*, const T*> rows, index_t N,
                     index_t g, index_t p, index_t C)
{
    const index_t side = g * p, P = p * p * C;
    parallel_for(0, N * g * g, 1, [&](index_t l0, index_t l1) {
        for (index_t l = l0; l < l1; ++l) {
            const index_t n = l / (g * g), i = (l / g) % g, j = l % g;
            for (index_t py = 0; py < p; ++py) {
                auto* im = img + ((n * side + i * p + py) * side + j * p) * C;
                auto* row = rows + l * P + py * p * C;
                if constexpr (ToRows)
                    std::copy(im, im + p * C, row);
                else
                    std::copy(row, row + p * C, im);
            }
        }
    });
}
} // namespace detail

template <class T>
void patchify(const T* img, index_t N, index_t g, index_t p, index_t C, T* rows)
{
    detail::patch_rows_copy<true, T>(img, rows, N, g, p, C);
}

// The inverse of patchify.
template <class T>
void unpatchify(const T* rows, index_t N, index_t g, index_t p, index_t C, T* img)
{
    detail::patch_rows_copy<false, T>(img, rows, N, g, p, C);
}

// In place over rows [L, P]; mean[l] and scale[l] = sqrt(var + eps) are returned so a prediction
// can be mapped back to pixels (pred · scale + mean).
template <class T>
void norm_pix(T* rows, index_t L, index_t P, double* mean, double* scale)
{
    parallel_for(0, L, 1, [&](index_t l0, index_t l1) {
        for (index_t l = l0; l < l1; ++l) {
            T* r = rows + l * P;
            double s = 0;
            for (index_t k = 0; k < P; ++k) s += static_cast<double>(r[k]);
            const double m = s / static_cast<double>(P);
            double v = 0;
            for (index_t k = 0; k < P; ++k) {
                const double d = static_cast<double>(r[k]) - m;
                v += d * d;
            }
            v /= static_cast<double>(std::max<index_t>(P - 1, 1));
            const double sc = std::sqrt(v + norm_pix_eps);
            for (index_t k = 0; k < P; ++k) r[k] = static_cast<T>((static_cast<double>(r[k]) - m) / sc);
            mean[l] = m;
            scale[l] = sc;
        }
    });
}

// Returns the loss; dpred (may be null) receives ∂loss/∂pred (overwritten, 0 at visible patches).
template <class T>
double masked_mse(const T* pred, const T* target, const std::uint8_t* mask, index_t L, index_t P, T* dpred)
{
    double count = 0;
    for (index_t l = 0; l < L; ++l) count += mask[l] ? 1.0 : 0.0;
    std::vector<double> err(static_cast<std::size_t>(L), 0.0);
    const double inv = count > 0 ? 1.0 / count : 0.0;
    parallel_for(0, L, 1, [&](index_t l0, index_t l1) {
        for (index_t l = l0; l < l1; ++l) {
            const T* a = pred + l * P;
            const T* b = target + l * P;
            T* d = dpred ? dpred + l * P : nullptr;
            if (!mask[l]) {
                if (d) std::fill(d, d + P, T(0));
                continue;
            }
            double e = 0;
            const double f = 2.0 * inv / static_cast<double>(P);
            for (index_t k = 0; k < P; ++k) {
                const double diff = static_cast<double>(a[k]) - static_cast<double>(b[k]);
                e += diff * diff;
                if (d) d[k] = static_cast<T>(f * diff);
            }
            err[static_cast<std::size_t>(l)] = e / static_cast<double>(P);
        }
    });
    double loss = 0;
    for (double e : err) loss += e;
    return loss * inv;
}

} // namespace convnextv2::kernels
