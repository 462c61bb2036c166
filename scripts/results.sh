#!/usr/bin/env bash
# The full experiment, written into docs/: `spinbayes experiment` over 3 training seeds (it trains
# each seed's three models into runs/experiment/models, 8 epochs each, or reuses them when they are
# there and current), then the report over the seeds, its results and figures copied to
# docs/results.md and docs/results/, and each seed's own report and figures to
# docs/results/seed-<s>.md and docs/results/seed-<s>/.
# About 106 minutes from nothing on 2 cores (35 minutes per seed); a run killed mid-way resumes where
# it stopped. `spinbayes experiment --seeds 1` is one seed's part.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OPENBLAS_NUM_THREADS=1
spinbayes="${BUILD_DIR:-$root/build}/spinbayes"
cd "$root"  # relative paths, so that the report's commands read as they would be typed here

"$spinbayes" experiment --out runs/experiment
rm -rf docs/results.tmp
mkdir -p docs/results.tmp/figures
cp runs/experiment/figures/*.png docs/results.tmp/figures/
cp runs/experiment/results.json docs/results.tmp/results.json
for dir in runs/experiment/seed-*/; do
  seed=$(basename "$dir")
  mkdir -p "docs/results.tmp/$seed/figures"
  cp "$dir"figures/*.png "docs/results.tmp/$seed/figures/"
  sed -e "s|](figures/|]($seed/figures/|g" -e "s|\`figures/|\`$seed/figures/|g" \
      -e "s|All numbers are in \`results.json\`|All numbers are in \`runs/experiment/$seed/results.json\` (not copied here; the figures over the seeds are in [\`results.json\`](results.json))|" \
      "$dir/report.md" > "docs/results.tmp/$seed.md"
done
sed -e 's|](figures/|](results/figures/|g' -e 's|`figures/|`results/figures/|g' \
    -e 's|](seed-\([0-9]*\)/report.md)|](results/seed-\1.md)|g' \
    -e 's|are in `results.json`|are in [`results/results.json`](results/results.json)|' \
    runs/experiment/report.md > docs/results.md.tmp
rm -rf docs/results
mv docs/results.tmp docs/results
mv docs/results.md.tmp docs/results.md
echo "wrote docs/results.md and docs/results/"
