#!/usr/bin/env bash
# The full recipe: a binary network on Fashion-MNIST, 12 epochs, then Monte Carlo evaluation with
# T = 20 against MNIST digits, noise and rotated images.
#   bash scripts/recipe.sh [spatial|element|none] [vgg-small|resnet20|resnet20-16]
# (defaults spatial, vgg-small at width 32; resnet20 at width 32, resnet20-16 at width 16; needs
# scripts/setup.sh once). Training on 2 cores (idle machine): vgg-small about 17 minutes, resnet20
# about 75-100 minutes, resnet20-16 about 30 minutes; then about a minute of evaluation.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:-spatial}
model=${2:-vgg-small}
case "$model" in
  vgg-small) width=32 name=vgg32 ;;
  resnet20) width=32 name=resnet20-32 ;;
  resnet20-16) model=resnet20 width=16 name=resnet20-16 ;;
  *) echo "recipe.sh: unknown model '$model' (known: vgg-small, resnet20, resnet20-16)" >&2; exit 2 ;;
esac
export OPENBLAS_NUM_THREADS=1
spinbayes="${BUILD_DIR:-$root/build}/spinbayes"
run=${RUN_DIR:-$root/runs/$name-$kind}

"$spinbayes" train --model "$model" --width "$width" --dropout "$kind" --p 0.1 --epochs 12 --batch 100 \
  --lr 0.002 --seed 1 --out "$run" --resume
"$spinbayes" eval --model "$run" --samples 20 --seed 1 --ood mnist,gaussian,uniform,rotate90 \
  --json "$run/eval.json"
