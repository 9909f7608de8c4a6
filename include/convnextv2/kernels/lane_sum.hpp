// SPDX-License-Identifier: MIT
// Σ_c f(c) over L interleaved partial sums of type Acc (default: eight doubles), combined in a
// fixed order. The compiler vectorises it, where one running sum would be a serial chain of
// dependent adds (LayerNorm's forward moved 9 GB/s that way; GRN's per-channel means over D = 1024
// cost more than the data pass). The order depends on the length only, so results do not depend
// on the thread count.
#pragma once
#include "../core/parallel.hpp"

namespace convnextv2::kernels {

template <class Acc = double, int L = 8, class F>
inline Acc lane_sum(index_t C, F&& f)
{
    static_assert(L >= 2 && (L & (L - 1)) == 0, "lane_sum: a power-of-two number of lanes");
    Acc acc[L] = {};
    index_t c = 0;
    for (; c + L <= C; c += L)
        for (int j = 0; j < L; ++j) acc[j] += f(c + j);
    for (int j = 0; c < C; ++c, ++j) acc[j] += f(c);
    for (int w = L / 2; w >= 1; w /= 2)  // pairwise: ((a0 + a1) + (a2 + a3)) + ... as before for L = 8
        for (int j = 0; j < w; ++j) acc[j] = acc[2 * j] + acc[2 * j + 1];
    return acc[0];
}

} // namespace convnextv2::kernels
