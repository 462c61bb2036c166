#!/usr/bin/env bash
# The full recipe: a binary network on Fashion-MNIST, 12 epochs, then Monte Carlo evaluation with
# T = 20 against MNIST digits, noise and rotated images.
#   bash scripts/recipe.sh [spatial|element|none] [vgg-small|resnet20|resnet20-16] [SEEDS]
# (defaults spatial, vgg-small at width 32, 1 seed; resnet20 at width 32, resnet20-16 at width 16;
# needs scripts/setup.sh once). SEEDS > 1 trains seeds 1..SEEDS (seed s > 1 into runs/NAME-s<s>, the
# names `spinbayes experiment` uses) and ends with the mean, lowest and highest of each figure.
# Training on 2 cores (idle machine), per seed: vgg-small about 13-14 minutes, resnet20 about 75-100
# minutes, resnet20-16 about 30 minutes; then about a minute of evaluation.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:-spatial}
model=${2:-vgg-small}
seeds=${3:-1}
case "$model" in
  vgg-small) width=32 name=vgg32 ;;
  resnet20) width=32 name=resnet20-32 ;;
  resnet20-16) model=resnet20 width=16 name=resnet20-16 ;;
  *) echo "recipe.sh: unknown model '$model' (known: vgg-small, resnet20, resnet20-16)" >&2; exit 2 ;;
esac
case "$seeds" in
  [1-9] | [1-9][0-9]) ;;
  *) echo "recipe.sh: SEEDS must be a number of seeds from 1 to 99, got '$seeds'" >&2; exit 2 ;;
esac
export OPENBLAS_NUM_THREADS=1
spinbayes="${BUILD_DIR:-$root/build}/spinbayes"

evals=()
for seed in $(seq 1 "$seeds"); do
  suffix=""
  [ "$seed" -gt 1 ] && suffix="-s$seed"
  run=${RUN_DIR:-$root/runs/$name-$kind}$suffix
  "$spinbayes" train --model "$model" --width "$width" --dropout "$kind" --p 0.1 --epochs 12 --batch 100 \
    --lr 0.002 --seed "$seed" --out "$run" --resume
  "$spinbayes" eval --model "$run" --samples 20 --seed 1 --ood mnist,gaussian,uniform,rotate90 \
    --json "$run/eval.json"
  evals+=("$run/eval.json")
done
[ "$seeds" -eq 1 ] && exit 0

# Over the seeds: each eval.json's top-level accuracy, NLL and ECE and its MNIST AUROC.
echo "over $seeds seeds (T = 20, 10 000 test images; per seed, then mean [lowest-highest]):"
awk '
  FNR == 1 { file++ ; in_mnist = 0 }
  /^  "accuracy": / { v["accuracy", file] = $2 + 0 }
  /^  "nll": / { v["nll", file] = $2 + 0 }
  /^  "ece": / { v["ece", file] = $2 + 0 }
  /^    "mnist": \{/ { in_mnist = 1 }
  in_mnist && /^      "auroc": / { v["mnist_auroc", file] = $2 + 0; in_mnist = 0 }
  END {
    split("accuracy nll ece mnist_auroc", names, " ")
    for (k = 1; k <= 4; k++) {
      n = names[k]; sum = 0; lo = 1e300; hi = -1e300; line = ""
      for (f = 1; f <= file; f++) {
        x = v[n, f]; sum += x; if (x < lo) lo = x; if (x > hi) hi = x
        line = line sprintf(" %.4f", x)
      }
      printf "  %-12s%s   mean %.4f [%.4f-%.4f]\n", n, line, sum / file, lo, hi
    }
  }' "${evals[@]}"
