// SPDX-License-Identifier: MIT
// Tensor shapes: a rank-1..4 extent list, row-major (the last axis is contiguous). Activations are
// NHWC, so the channel axis is the contiguous one.
#pragma once
#include "config.hpp"

#include <initializer_list>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

namespace convnextv2 {

using shape_t = std::vector<index_t>;

inline index_t numel(const shape_t& s)
{
    return std::accumulate(s.begin(), s.end(), index_t{1}, [](index_t a, index_t b) { return a * b; });
}

inline std::string to_string(const shape_t& s)
{
    std::string r = "(";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + (s.size() == 1 ? ",)" : ")");
}

inline std::ostream& operator<<(std::ostream& os, const shape_t& s) { return os << to_string(s); }

// Row-major strides in elements.
inline shape_t strides_of(const shape_t& s)
{
    shape_t st(s.size(), 1);
    for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
    return st;
}

} // namespace convnextv2
