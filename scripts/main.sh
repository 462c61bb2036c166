#!/usr/bin/env bash
# The main job: set up, then the whole comparison in its quick form: a deterministic BNN,
# MC-Dropout and MC-SpatialDropout (vgg-small width 16, every training image, 4 epochs of which
# the first 3 are trained once and shared), temperature-calibrated, evaluated in software and on
# the simulated chip, priced, and written up as runs/experiment-quick/report.md with its figures.
# Under 10 minutes on 2 cores once built.
# Re-running reuses every finished stage (an interrupted run resumes where it stopped).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
export OPENBLAS_NUM_THREADS=1
spinbayes="${BUILD_DIR:-$root/build}/spinbayes"

"$spinbayes" experiment --quick --out "${RUN_DIR:-$root/runs/experiment-quick}"
