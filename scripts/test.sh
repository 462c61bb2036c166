#!/usr/bin/env bash
# Set up (install what is missing, build) and run the test suite.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
export OPENBLAS_NUM_THREADS=1
# OpenMP threads sleep rather than spin while they wait: under ctest -j 2 on two cores, spinning
# threads of one test starve the other's (a LibTorch epoch took 10x longer).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ctest --test-dir "${BUILD_DIR:-$root/build}" --output-on-failure -j 2
# Sanitized unit tests (ASan + UBSan) and 30 s of fuzzing per parser (FUZZ_SECONDS).
bash "$root/scripts/hardening.sh"
