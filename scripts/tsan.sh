#!/usr/bin/env bash
# ThreadSanitizer run of the parallel code: the kernel tests (oneTBB parallel_for / deterministic
# chunked reductions), the tensor/parallel tests and the data loader tests (prefetch thread,
# parallel decoding), built with the CMakePresets.json preset "tsan" in build-tsan/.
# Not part of CI (a TSan build plus run takes longer than CI's budget on 2 cores).
# oneTBB: Debian's libtbb is not instrumented, so the happens-before edges inside its
# scheduler (task spawn, and the wait at the end of parallel_for / task_arena::execute) are
# invisible to TSan, which then reports a write in a worker followed by a read in the caller
# as a race (seen in kernels/grn). core/parallel.hpp, the one wrapper over oneTBB, therefore
# spells the fork and join out with release/acquire atomics when compiled with -fsanitize=thread
# (CONVNEXTV2_TSAN; other builds are unchanged). The preset also defines TBB_USE_THREADING_TOOLS,
# and scripts/tsan.supp suppresses reports whose top frame is inside oneTBB (see there).
# Usage: scripts/tsan.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(test_core_tensor test_kernels_cross_entropy test_kernels_dwconv7x7 test_kernels_gelu test_kernels_gemm
         test_kernels_grn test_kernels_layer_norm test_kernels_patch_conv test_data_pipeline_loader)
cmake --preset tsan >/dev/null
cmake --build build-tsan -j"$(nproc)" --target "${targets[@]}"
export TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
# Self-check: the suppressions must not hide a race in a parallel_for body.
g++ -std=c++17 -O1 -g1 -fsanitize=thread -DTBB_USE_THREADING_TOOLS -Iinclude scripts/tsan_selfcheck.cpp -ltbb \
  -o build-tsan/tsan_selfcheck
if ! build-tsan/tsan_selfcheck >/dev/null 2>&1; then echo "tsan.sh: self-check: false report on a race-free loop" >&2; exit 1; fi
if build-tsan/tsan_selfcheck race >/dev/null 2>&1; then echo "tsan.sh: self-check: a deliberate race was not reported" >&2; exit 1; fi
echo "tsan.sh: self-check passed (a deliberate race is reported, the race-free loop is clean)"
cd build-tsan
ctest --output-on-failure -j1 -R '^(core/tensor|kernels/|data_pipeline/loader)' "$@"
