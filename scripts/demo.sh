#!/usr/bin/env bash
# The main job: trains a small ConvNeXt V2 on Fashion-MNIST (Debian's dataset-fashion-mnist)
# on this machine's cores and reports the test accuracy.
# Usage: scripts/demo.sh [extra train flags, e.g. --epoch_size 2]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" -j"$(nproc)" --target train validate
"$build/examples/train" --config examples/configs/fashion_mnist.json \
    --data_dir /usr/share/datasets/fashion-mnist --output_dir runs/fashion_mnist "$@"
