#!/usr/bin/env bash
# The full recipe: binary VGG-small (width 32) on Fashion-MNIST, 12 epochs, then Monte Carlo
# evaluation with T = 20 against MNIST digits, noise and rotated images.
#   bash scripts/recipe.sh [spatial|element|none]   (default spatial; needs scripts/setup.sh once)
# About 17 minutes of training on 2 cores (idle machine), plus about a minute of evaluation.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:-spatial}
export OPENBLAS_NUM_THREADS=1
spinbayes="${BUILD_DIR:-$root/build}/spinbayes"
run=${RUN_DIR:-$root/runs/vgg32-$kind}

"$spinbayes" train --model vgg-small --width 32 --dropout "$kind" --p 0.1 --epochs 12 --batch 100 \
  --lr 0.002 --seed 1 --out "$run" --resume
"$spinbayes" eval --model "$run" --samples 20 --seed 1 --ood mnist,gaussian,uniform,rotate90 \
  --json "$run/eval.json"
