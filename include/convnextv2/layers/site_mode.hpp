// SPDX-License-Identifier: MIT
// Site modes: the template policy of the layers whose math looks at neighbouring or sibling
// sites (depthwise conv, GRN, drop path, downsample conv). `dense_sites` is the NHWC model and
// compiles to exactly the plain dense code; `sparse_sites` runs the same per-site math on the
// [rows, C] feature matrix of the active sites of an active_sites table (FCMAE's sparse encoder,
// SPEC §3.4), bound before each forward with bind_sites(). Every other layer (LayerNorm,
// Linear, GELU) is per-site and mode-free.
#pragma once
#include "../sparse/active_sites.hpp"

#include <type_traits>

namespace convnextv2 {

struct dense_sites {};
struct sparse_sites {};

template <class Mode>
inline constexpr bool is_sparse_mode_v = std::is_same_v<Mode, sparse_sites>;

namespace detail {
template <class Mode>
constexpr bool check_site_mode()
{
    static_assert(std::is_same_v<Mode, dense_sites> || std::is_same_v<Mode, sparse_sites>,
                  "site mode must be convnextv2::dense_sites or convnextv2::sparse_sites");
    return true;
}

// Holder of the bound table for sparse layers (empty for dense ones).
template <class Mode>
struct site_binding {
    void bind_sites(const active_sites*) {}
};
template <>
struct site_binding<sparse_sites> {
    const active_sites* sites = nullptr;
    void bind_sites(const active_sites* s) { sites = s; }
    const active_sites& bound(const char* layer, index_t rows) const
    {
        CONVNEXTV2_CHECK(sites != nullptr, layer, ": sparse layer used before bind_sites()");
        CONVNEXTV2_CHECK(rows == sites->rows(), layer, ": input has ", rows, " rows but the bound site table has ", sites->rows(),
                         " active sites");
        return *sites;
    }
};
} // namespace detail

} // namespace convnextv2
