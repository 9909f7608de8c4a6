// SPDX-License-Identifier: MIT
// The two ways a backward writes a gradient (layers/concepts.hpp): add into dx (accumulate) or
// overwrite it without reading what was there. The mode is chosen once per range, so each
// branch stays a plain loop the compiler vectorises; callers give only the per-element value.
#pragma once
#include "parallel.hpp"

namespace convnextv2 {

// out[i] += value(i) (accumulate) or out[i] = value(i), for lo <= i < hi.
template <class T, class Value>
inline void write_grad(T* out, index_t lo, index_t hi, bool accumulate, Value&& value)
{
    if (accumulate)
        for (index_t i = lo; i < hi; ++i) out[i] += value(i);
    else
        for (index_t i = lo; i < hi; ++i) out[i] = value(i);
}

// dx (+)= dy over n elements, in parallel: a gradient passed through unchanged (a skip path,
// an identity layer, an empty repeat).
template <class T>
inline void pass_grad(const T* dy, index_t n, T* dx, bool accumulate)
{
    parallel_for(0, n, index_t{1} << 15,
                 [=](index_t lo, index_t hi) { write_grad(dx, lo, hi, accumulate, [=](index_t i) { return dy[i]; }); });
}

} // namespace convnextv2
