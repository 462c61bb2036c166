#!/usr/bin/env bash
# The full experiment, written into docs/: `spinbayes experiment --models runs` (it reuses the
# recipe's runs/vgg32-none, -element and -spatial when they are there, and trains them otherwise),
# then its report, results and figures copied to docs/results.md and docs/results/.
# About 10 minutes on 2 cores with the models trained; training them adds about 45 (idle machine).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OPENBLAS_NUM_THREADS=1
spinbayes="${BUILD_DIR:-$root/build}/spinbayes"
cd "$root"  # relative paths, so that the report's commands read as they would be typed here

"$spinbayes" experiment --models runs --out runs/experiment
mkdir -p docs/results/figures
cp runs/experiment/figures/*.png docs/results/figures/
cp runs/experiment/results.json docs/results/results.json
sed -e 's|](figures/|](results/figures/|g' -e 's|`figures/|`results/figures/|g' \
    -e 's|All numbers are in `results.json`|All numbers are in [`results/results.json`](results/results.json)|' \
    runs/experiment/report.md > docs/results.md.tmp
mv docs/results.md.tmp docs/results.md
echo "wrote docs/results.md and docs/results/"
