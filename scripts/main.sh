#!/usr/bin/env bash
# The main job: set up, then the whole comparison in its quick form: a deterministic BNN,
# MC-Dropout and MC-SpatialDropout (vgg-small width 16, 8000 training images, 5 epochs) and two more
# spatial models at other rates, evaluated in software and on the simulated chip, priced, and
# written up as runs/experiment-quick/report.md with its figures. About 6 minutes on 2 cores.
# Re-running reuses every finished stage (an interrupted run resumes where it stopped).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
export OPENBLAS_NUM_THREADS=1
spinbayes="${BUILD_DIR:-$root/build}/spinbayes"

"$spinbayes" experiment --quick --out "${RUN_DIR:-$root/runs/experiment-quick}"
