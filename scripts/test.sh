#!/usr/bin/env bash
# Installs the dependencies, builds everything in Release and runs the test suite with CTest, then
# builds the readers', data pipeline's, kernels' and robustness tests again with AddressSanitizer +
# UndefinedBehaviorSanitizer (CMakePresets.json preset "asan": build-asan/, examples and
# benchmarks off, asserts on) and runs those not labelled `slow`, the fuzz corpora included.
# Usage: scripts/test.sh [extra ctest args for the Release run]
#   CONVNEXTV2_SANITIZERS=0 skips the sanitizer build; BUILD_DIR picks the Release build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
build=${BUILD_DIR:-build}
# The fuzz corpora run once, in the sanitizer build below (building them here too cost CI about a minute).
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCONVNEXTV2_BUILD_BENCHMARKS=OFF -DCONVNEXTV2_WITH_MPI=ON \
  -DCONVNEXTV2_BUILD_FUZZERS=OFF
cmake --build "$build" -j"$(nproc)"
(cd "$build" && ctest --output-on-failure -j"$(nproc)" "$@")
if [[ "${CONVNEXTV2_SANITIZERS:-1}" != 0 ]]; then
  # The parts that read external bytes or run in parallel: readers, data pipeline, kernels,
  # robustness tests and the fuzz corpora (the model/layer/autograd/FCMAE suites would double
  # CI's build time on 2 cores; run them with `cmake --build build-asan && ctest --preset asan`).
  # Kept to the readers of external bytes and two parallel kernels so CI stays well under 30
  # minutes on 2 cores (a 25-target list took 20 min alone); everything: the command above.
  asan_targets=(test_io_safetensors test_io_weights test_io_recipe
                test_data_pipeline_fashion_mnist test_data_pipeline_image_folder
                test_kernels_grn test_kernels_dwconv7x7
                test_hardening_readers
                fuzz_safetensors fuzz_npy fuzz_idx fuzz_recipe fuzz_image fuzz_checkpoint)
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan, ${#asan_targets[@]} targets)"
  cmake --preset asan
  cmake --build build-asan -j"$(nproc)" --target "${asan_targets[@]}"
  ctest --preset asan -j"$(nproc)" -R '^(io/|data_pipeline/|kernels/(grn|dwconv7x7)|hardening/readers|fuzz/)' -E '_NOT_BUILT'
fi
