// SPDX-License-Identifier: MIT
// Programs (not the library) call keep_freed_memory() once at start-up: glibc otherwise returns
// every large block to the kernel on free and page-faults it back on the next malloc, which
// costs more than the arithmetic in a training step (Eigen's GEMM workspaces, per-call partials).
#pragma once
#include <malloc.h>

namespace convnextv2 {

inline void keep_freed_memory()
{
    mallopt(M_MMAP_MAX, 0);                   // large blocks come from the heap, not fresh mmaps
    mallopt(M_TRIM_THRESHOLD, 1 << 30);       // and stay mapped after free
    mallopt(M_TOP_PAD, 64 << 20);
}

} // namespace convnextv2
