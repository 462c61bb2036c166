#!/usr/bin/env bash
# The full experiment, written into docs/: `spinbayes experiment` (it trains its three models into
# runs/experiment/models, 8 epochs each, or reuses them when they are there and current), then its
# report, results and figures copied to docs/results.md and docs/results/.
# Under an hour from nothing on 2 cores; a run killed mid-way resumes where it stopped.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OPENBLAS_NUM_THREADS=1
spinbayes="${BUILD_DIR:-$root/build}/spinbayes"
cd "$root"  # relative paths, so that the report's commands read as they would be typed here

"$spinbayes" experiment --out runs/experiment
mkdir -p docs/results/figures
cp runs/experiment/figures/*.png docs/results/figures/
cp runs/experiment/results.json docs/results/results.json
sed -e 's|](figures/|](results/figures/|g' -e 's|`figures/|`results/figures/|g' \
    -e 's|All numbers are in `results.json`|All numbers are in [`results/results.json`](results/results.json)|' \
    runs/experiment/report.md > docs/results.md.tmp
mv docs/results.md.tmp docs/results.md
echo "wrote docs/results.md and docs/results/"
