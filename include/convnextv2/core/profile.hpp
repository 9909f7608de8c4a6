// SPDX-License-Identifier: MIT
// Process-wide per-layer-kind timing (benchmarks/profile_model.cpp). Off by default: a timed scope
// then costs one relaxed atomic load and a not-taken branch, and changes no numerics. When on,
// each scope adds its wall time (steady_clock) to a total per (kind, pass). Scopes sit in leaf
// code only (the layers' forward/backward, the residual add, the gradient-buffer zeroing of
// sequential/repeat/residual), never nested, so the totals add up without double counting.
//   profile::enable(true); profile::reset();  ... steps ...  profile::total_ns(kind::linear, pass::fwd)
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>

namespace convnextv2::profile {

enum class kind : int { patch_conv, dwconv, layer_norm, linear, linear_gelu, gelu, grn, grn_linear, bottleneck, pool, drop_path, residual, grad_zero, count_ };
enum class pass : int { fwd, bwd };
constexpr int num_kinds = static_cast<int>(kind::count_);

inline const char* name(kind k)
{
    switch (k) {
    case kind::patch_conv: return "patch conv (stem/downsample)";
    case kind::dwconv: return "depthwise conv 7x7";
    case kind::layer_norm: return "LayerNorm";
    case kind::linear: return "linear (GEMM)";
    case kind::linear_gelu: return "pwconv1 + GELU (fused)";
    case kind::gelu: return "GELU";
    case kind::grn: return "GRN";
    case kind::grn_linear: return "GRN + pwconv2 (fused)";
    case kind::bottleneck: return "pwconv1 + GELU + GRN + pwconv2 (fused backward)";
    case kind::pool: return "global avg pool";
    case kind::drop_path: return "drop path (copy/scale)";
    case kind::residual: return "residual add";
    case kind::grad_zero: return "grad-buffer zeroing";
    default: return "?";
    }
}

namespace detail {
inline std::atomic<bool> enabled{false};
inline std::atomic<std::int64_t> ns[num_kinds][2];     // static storage: zero-initialised
inline std::atomic<std::int64_t> calls[num_kinds][2];
} // namespace detail

inline void enable(bool on) { detail::enabled.store(on, std::memory_order_relaxed); }
inline bool enabled() { return detail::enabled.load(std::memory_order_relaxed); }
inline void reset()
{
    for (int k = 0; k < num_kinds; ++k)
        for (int p = 0; p < 2; ++p) {
            detail::ns[k][p].store(0, std::memory_order_relaxed);
            detail::calls[k][p].store(0, std::memory_order_relaxed);
        }
}
inline std::int64_t total_ns(kind k, pass p) { return detail::ns[static_cast<int>(k)][static_cast<int>(p)].load(); }
inline std::int64_t num_calls(kind k, pass p) { return detail::calls[static_cast<int>(k)][static_cast<int>(p)].load(); }

// Times its own lifetime into (k, p) when profiling is on.
class scope {
public:
    scope(kind k, pass p) noexcept
    {
        if (!detail::enabled.load(std::memory_order_relaxed)) return;
        slot_ = static_cast<int>(k) * 2 + static_cast<int>(p);
        t0_ = std::chrono::steady_clock::now();
    }
    ~scope()
    {
        if (slot_ < 0) return;
        const auto dt = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_).count();
        detail::ns[slot_ / 2][slot_ % 2].fetch_add(static_cast<std::int64_t>(dt), std::memory_order_relaxed);
        detail::calls[slot_ / 2][slot_ % 2].fetch_add(1, std::memory_order_relaxed);
    }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

private:
    int slot_ = -1;
    std::chrono::steady_clock::time_point t0_{};
};

} // namespace convnextv2::profile
