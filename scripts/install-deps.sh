#!/usr/bin/env bash
# Installs the Debian packages convnextv2-cpp needs. Idempotent: packages already present are skipped.
# Usage: scripts/install-deps.sh [--with-torch] [--with-fuzz]
#   --with-torch: torch, PIL for tools/ fixture generation and speed comparison
#   --with-fuzz:  clang-14 and its libFuzzer/sanitizer runtimes for scripts/fuzz.sh
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libtbb-dev libeigen3-dev libxtensor-dev xtl-dev nlohmann-json3-dev
      catch2 libbenchmark-dev libcli11-dev
      libturbojpeg0-dev libpng-dev zlib1g-dev
      libopenmpi-dev openmpi-bin
      dataset-fashion-mnist)
for arg in "$@"; do
  case "$arg" in
    --with-torch) pkgs+=(python3-torch python3-numpy python3-pil libopenblas0-pthread) ;;
    --with-fuzz) pkgs+=(clang-14 libclang-rt-14-dev) ;;  # scripts/fuzz.sh (libFuzzer + ASan/UBSan); CI does not need it
    *) echo "install-deps: unknown option $arg (use --with-torch, --with-fuzz)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if ((${#missing[@]} == 0)); then echo "install-deps: all ${#pkgs[@]} packages present"; exit 0; fi
echo "install-deps: installing ${missing[*]}"
SUDO=""; if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
