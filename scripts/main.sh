#!/usr/bin/env bash
# The main job: set up, train a spatial-dropout binary VGG on Fashion-MNIST, and evaluate it with
# Monte Carlo dropout against MNIST digits and noise. About 5 minutes of training on 2 cores.
# Re-running reuses the finished run (train --resume continues an interrupted one).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
export OPENBLAS_NUM_THREADS=1
spinbayes="${BUILD_DIR:-$root/build}/spinbayes"
run=${RUN_DIR:-$root/runs/main}

"$spinbayes" train --model vgg-small --width 16 --dropout spatial --p 0.1 --epochs 5 --seed 1 \
  --out "$run" --resume
"$spinbayes" eval --model "$run" --samples 10 --seed 1 --ood mnist,gaussian,uniform,rotate90 \
  --json "$run/eval.json"
