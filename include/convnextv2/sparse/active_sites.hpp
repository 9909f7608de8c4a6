// SPDX-License-Identifier: MIT
// active_sites: the index tables of a sparse (submanifold) feature map, SPEC §3.4. A sparse map
// over an (N, H, W) grid stores only its active sites, as rows of a [rows, C] feature matrix in
// (n, h, w) order, so the rows of sample n are [offsets[n], offsets[n+1]). The tables:
//   site[r]          flat grid index (n·H + h)·W + w of row r
//   row_of[i]        row of grid index i, or -1 when the site is inactive
//   nbr[r·49 + t]    row of the 7×7 neighbour at tap t = kh·7 + kw (offset (kh−3, kw−3)), or -1
//                    when it is inactive or outside the image (submanifold: counts as zero)
//   parent[r·k² + t] for a map made by downsample(): row of the finer map's site
//                    (2h + kh, 2w + kw), t = kh·k + kw, or -1
// Built once per batch from the mask and shared by every layer of a stage.
#pragma once
#include "../core/parallel.hpp"

#include <cstdint>
#include <vector>

namespace convnextv2 {

struct active_sites {
    index_t N = 0, H = 0, W = 0;
    std::vector<index_t> offsets;       // N + 1
    std::vector<std::int32_t> site;     // rows
    std::vector<std::int32_t> row_of;   // N·H·W
    std::vector<std::int32_t> nbr;      // rows · 49
    std::vector<std::int32_t> parent;   // rows · k² (maps made by downsample only)
    index_t parent_kernel = 0;

    index_t rows() const { return static_cast<index_t>(site.size()); }
    index_t rows_of(index_t n) const { return offsets[static_cast<std::size_t>(n + 1)] - offsets[static_cast<std::size_t>(n)]; }
};

// The sites of an (N, H, W) grid where keep(n, h, w) is true, with their 7×7 neighbour table.
template <class Keep>
active_sites make_active_sites(index_t N, index_t H, index_t W, Keep&& keep)
{
    CONVNEXTV2_CHECK(N >= 1 && H >= 1 && W >= 1, "active_sites: grid must be non-empty, got ", N, "x", H, "x", W);
    CONVNEXTV2_CHECK(N * H * W < (index_t{1} << 31), "active_sites: grid too large for 32-bit site indices");
    active_sites s;
    s.N = N;
    s.H = H;
    s.W = W;
    s.row_of.assign(static_cast<std::size_t>(N * H * W), -1);
    s.offsets.assign(static_cast<std::size_t>(N + 1), 0);
    for (index_t n = 0; n < N; ++n) {
        for (index_t h = 0; h < H; ++h)
            for (index_t w = 0; w < W; ++w)
                if (keep(n, h, w)) {
                    const index_t i = (n * H + h) * W + w;
                    s.row_of[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(s.site.size());
                    s.site.push_back(static_cast<std::int32_t>(i));
                }
        s.offsets[static_cast<std::size_t>(n + 1)] = static_cast<index_t>(s.site.size());
    }
    const index_t R = s.rows();
    s.nbr.assign(static_cast<std::size_t>(R * 49), -1);
    parallel_for(0, R, 256, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const index_t i = s.site[static_cast<std::size_t>(r)];
            const index_t n = i / (H * W), h = (i / W) % H, w = i % W;
            for (index_t kh = 0; kh < 7; ++kh)
                for (index_t kw = 0; kw < 7; ++kw) {
                    const index_t y = h + kh - 3, x = w + kw - 3;
                    if (y < 0 || y >= H || x < 0 || x >= W) continue;
                    s.nbr[static_cast<std::size_t>(r * 49 + kh * 7 + kw)] = s.row_of[static_cast<std::size_t>((n * H + y) * W + x)];
                }
        }
    });
    return s;
}

// The coarser map of a k×k / stride-k convolution over `fine` (MinkowskiEngine's strided conv):
// an output site is active iff any of its k² inputs is; `parent` lists those inputs.
inline active_sites downsample_sites(const active_sites& fine, index_t k)
{
    CONVNEXTV2_CHECK(k >= 1 && fine.H % k == 0 && fine.W % k == 0, "downsample_sites: grid ", fine.H, "x", fine.W,
                     " is not divisible by ", k);
    const index_t H = fine.H / k, W = fine.W / k;
    auto fine_row = [&](index_t n, index_t h, index_t w) {
        return fine.row_of[static_cast<std::size_t>((n * fine.H + h) * fine.W + w)];
    };
    active_sites s = make_active_sites(fine.N, H, W, [&](index_t n, index_t h, index_t w) {
        for (index_t a = 0; a < k; ++a)
            for (index_t b = 0; b < k; ++b)
                if (fine_row(n, k * h + a, k * w + b) >= 0) return true;
        return false;
    });
    s.parent_kernel = k;
    s.parent.resize(static_cast<std::size_t>(s.rows() * k * k));
    for (index_t r = 0; r < s.rows(); ++r) {
        const index_t i = s.site[static_cast<std::size_t>(r)];
        const index_t n = i / (H * W), h = (i / W) % H, w = i % W;
        for (index_t a = 0; a < k; ++a)
            for (index_t b = 0; b < k; ++b) s.parent[static_cast<std::size_t>((r * k + a) * k + b)] = fine_row(n, k * h + a, k * w + b);
    }
    return s;
}

// rows[r, :] = dense[site[r], :] for a dense (N, H, W, C) map (the stem → sparse conversion).
template <class T>
void gather_sites(const T* dense, const active_sites& s, index_t C, T* rows)
{
    parallel_for(0, s.rows(), std::max<index_t>(1, 8192 / std::max<index_t>(C, 1)), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* src = dense + static_cast<index_t>(s.site[static_cast<std::size_t>(r)]) * C;
            std::copy(src, src + C, rows + r * C);
        }
    });
}

// dense[site[r], :] += rows[r, :] (adjoint of gather_sites; inactive sites untouched).
template <class T>
void scatter_add_sites(const T* rows, const active_sites& s, index_t C, T* dense)
{
    parallel_for(0, s.rows(), std::max<index_t>(1, 8192 / std::max<index_t>(C, 1)), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            T* dst = dense + static_cast<index_t>(s.site[static_cast<std::size_t>(r)]) * C;
            const T* src = rows + r * C;
            for (index_t c = 0; c < C; ++c) dst[c] += src[c];
        }
    });
}

} // namespace convnextv2
