#!/usr/bin/env bash
# Installs the dependencies, builds everything in Release and runs the test suite with CTest.
# Usage: scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCONVNEXTV2_BUILD_BENCHMARKS=OFF -DCONVNEXTV2_WITH_MPI=ON
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j"$(nproc)" "$@"
