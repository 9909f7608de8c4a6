// SPDX-License-Identifier: MIT
// FCMAE patch masks (SPEC §3.2–3.3). A mask covers the g×g grid of patches whose side is the
// encoder's total stride (32 for the official models), so every stage's 2×2 downsample window is
// all-visible or all-masked. Per sample exactly floor(L·(1 − ratio)) of the L = g² patches stay
// visible: the ones with the lowest i.i.d. noise (a uniformly random subset, as in the official
// argsort). The noise comes from the counter-based RNG keyed by (seed, key, sample), so a mask
// is a pure function of those numbers.
#pragma once
#include "../core/rng.hpp"
#include "../sparse/active_sites.hpp"

#include <algorithm>
#include <numeric>
#include <vector>

namespace convnextv2 {

struct fcmae_mask {
    index_t N = 0, g = 0;
    std::vector<std::uint8_t> masked;  // [N, g, g] row-major, 1 = masked, 0 = visible

    index_t cells() const { return g * g; }
    bool is_masked(index_t n, index_t i, index_t j) const { return masked[static_cast<std::size_t>((n * g + i) * g + j)] != 0; }
    index_t visible_count(index_t n) const
    {
        index_t v = 0;
        for (index_t l = 0; l < g * g; ++l) v += masked[static_cast<std::size_t>(n * g * g + l)] == 0;
        return v;
    }
    index_t masked_total() const { return static_cast<index_t>(std::count(masked.begin(), masked.end(), std::uint8_t{1})); }
};

// Visible patches per sample for L cells at `ratio` (SPEC §3.2: 19 of 49 at ratio 0.6).
inline index_t fcmae_len_keep(index_t L, double ratio)
{
    CONVNEXTV2_CHECK(ratio >= 0 && ratio < 1, "mask_ratio must be in [0, 1), got ", ratio);
    // The small nudge keeps exact products (e.g. 0.4·10) from flooring one too low.
    return static_cast<index_t>(std::floor(static_cast<double>(L) * (1.0 - ratio) + 1e-9));
}

inline fcmae_mask random_fcmae_mask(index_t N, index_t g, double ratio, std::uint64_t seed, std::uint64_t key)
{
    CONVNEXTV2_CHECK(N >= 1 && g >= 1, "fcmae mask: need N >= 1 and g >= 1, got ", N, " and ", g);
    const index_t L = g * g, keep = fcmae_len_keep(L, ratio);
    CONVNEXTV2_CHECK(keep >= 1, "fcmae mask: ratio ", ratio, " leaves no visible patch of ", L,
                     " (use a larger image or a smaller mask_ratio)");
    fcmae_mask m;
    m.N = N;
    m.g = g;
    m.masked.assign(static_cast<std::size_t>(N * L), 1);
    std::vector<double> noise(static_cast<std::size_t>(L));
    std::vector<index_t> order(static_cast<std::size_t>(L));
    for (index_t n = 0; n < N; ++n) {
        counter_rng rng(hash_combine(seed, key), static_cast<std::uint64_t>(n));
        for (auto& v : noise) v = rng.uniform();
        std::iota(order.begin(), order.end(), index_t{0});
        std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
            return noise[static_cast<std::size_t>(a)] < noise[static_cast<std::size_t>(b)];
        });
        for (index_t k = 0; k < keep; ++k) m.masked[static_cast<std::size_t>(n * L + order[static_cast<std::size_t>(k)])] = 0;
    }
    return m;
}

// The visible sites of the mask at a stage grid of side g·factor (nearest-neighbour upsampling).
inline active_sites visible_sites(const fcmae_mask& m, index_t factor)
{
    CONVNEXTV2_CHECK(factor >= 1, "visible_sites: factor must be >= 1");
    const index_t side = m.g * factor;
    return make_active_sites(m.N, side, side, [&](index_t n, index_t h, index_t w) { return !m.is_masked(n, h / factor, w / factor); });
}

// keep[n, h, w] = 1 at visible sites of the stage grid of side g·factor, else 0 (dense emulation).
template <class T>
std::vector<T> visible_weights(const fcmae_mask& m, index_t factor)
{
    const index_t side = m.g * factor;
    std::vector<T> v(static_cast<std::size_t>(m.N * side * side));
    for (index_t n = 0; n < m.N; ++n)
        for (index_t h = 0; h < side; ++h)
            for (index_t w = 0; w < side; ++w)
                v[static_cast<std::size_t>((n * side + h) * side + w)] = m.is_masked(n, h / factor, w / factor) ? T(0) : T(1);
    return v;
}

} // namespace convnextv2
