#!/usr/bin/env bash
# ThreadSanitizer run of the parallel code: the kernel tests (oneTBB parallel_for / deterministic
# chunked reductions), the tensor/parallel tests and the data loader tests (prefetch thread,
# parallel decoding), built with the CMakePresets.json preset "tsan" in build-tsan/.
# Not part of CI (a TSan build plus run takes longer than CI's budget on 2 cores).
# oneTBB: Debian's libtbb is not instrumented, so the happens-before edges inside its scheduler
# are invisible to TSan. The preset defines TBB_USE_THREADING_TOOLS (oneTBB's headers then
# announce their synchronisation to tools), and scripts/tsan.supp suppresses reports whose
# stack is inside libtbb itself; a race in our code still has our frames on both sides.
# Usage: scripts/tsan.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(test_core_tensor test_kernels_cross_entropy test_kernels_dwconv7x7 test_kernels_gelu test_kernels_gemm
         test_kernels_grn test_kernels_layer_norm test_kernels_patch_conv test_data_pipeline_loader)
cmake --preset tsan >/dev/null
cmake --build build-tsan -j"$(nproc)" --target "${targets[@]}"
export TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
cd build-tsan
ctest --output-on-failure -j1 -R '^(core/tensor|kernels/|data_pipeline/loader)' "$@"
