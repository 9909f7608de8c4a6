// SPDX-License-Identifier: MIT
// Σ_c f(c) in double over eight interleaved partial sums, combined in a fixed order. The compiler
// vectorises it, where one running sum would be a serial chain of dependent adds (LayerNorm's
// forward moved 9 GB/s that way; GRN's per-channel means over D = 1024 cost more than the data
// pass). The order depends on the length only, so results do not depend on the thread count.
#pragma once
#include "../core/parallel.hpp"

namespace convnextv2::kernels {

template <class F>
inline double lane_sum(index_t C, F&& f)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    index_t c = 0;
    for (; c + 8 <= C; c += 8)
        for (int j = 0; j < 8; ++j) acc[j] += f(c + j);
    for (int j = 0; c < C; ++c, ++j) acc[j] += f(c);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

} // namespace convnextv2::kernels
