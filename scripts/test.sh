#!/usr/bin/env bash
# Set up (install what is missing, build) and run the test suite.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
export OPENBLAS_NUM_THREADS=1
ctest --test-dir "${BUILD_DIR:-$root/build}" --output-on-failure -j 2
# Sanitized unit tests (ASan + UBSan) and a minute of fuzzing per parser.
bash "$root/scripts/hardening.sh"
