// SPDX-License-Identifier: MIT
// Error type and check macros. Checks throw at setup/load time with a message naming what and
// where; kernels use assert only (no checks in hot loops).
#pragma once
#include <cassert>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace convnextv2 {

using index_t = std::int64_t;
constexpr std::size_t tensor_alignment = 64;

// Thrown for every user-facing error: bad shapes, bad files, bad configs.
struct error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
[[noreturn]] inline void throw_error(const char* where, Args&&... args)
{
    std::ostringstream os;
    if (where && *where) os << where << ": ";
    (os << ... << args);
    throw error(os.str());
}
} // namespace detail

} // namespace convnextv2

// CONVNEXTV2_CHECK(cond, "message parts", ...) -> throws convnextv2::error("message").
#define CONVNEXTV2_CHECK(cond, ...)                                              \
    do {                                                                         \
        if (!(cond)) ::convnextv2::detail::throw_error("", __VA_ARGS__);         \
    } while (0)
