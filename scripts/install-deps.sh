#!/usr/bin/env bash
# Installs the Debian packages convnextv2-cpp needs. Idempotent: packages already present are skipped.
# Usage: scripts/install-deps.sh [--with-torch]   (torch, PIL only for tools/ fixture generation and speed comparison)
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libtbb-dev libeigen3-dev libxtensor-dev xtl-dev nlohmann-json3-dev
      catch2 libbenchmark-dev libcli11-dev
      libturbojpeg0-dev libpng-dev zlib1g-dev
      libopenmpi-dev openmpi-bin
      dataset-fashion-mnist)
if [[ "${1:-}" == "--with-torch" ]]; then pkgs+=(python3-torch python3-numpy python3-pil libopenblas0-pthread); fi
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
