#!/usr/bin/env bash
# One figure per hardware non-ideality: accuracy, ECE, NLL and MNIST AUROC of a trained model on
# simulated chips (2 chip seeds per value, T = 10, the first 1000 test images and 1000 MNIST
# digits) as the parameter varies, against the software engine.
# Usage: bash scripts/sweeps.sh RUN_DIR [OUT_DIR]   (writes OUT_DIR/sweep-<param>.{csv,png})
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model=${1:?usage: sweeps.sh RUN_DIR [OUT_DIR]}
out=${2:-$model/sweeps}
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=1
cli=${SPINBAYES:-$root/build/spinbayes}
common=(--model "$model" --chips 2 --samples 10 --test-count 1000 --ood mnist)
# Each effect on the unwired chip (the default without access transistors, wires, calibration or
# trim DAC), alone; a file applied over the default names those keys itself.
run() { "$cli" sweep "${common[@]}" --hw unwired --out "$out/sweep-$1" --param "$@"; }
unwired_crossbar='"access_resistance_ohm": 0, "wire_resistance_ohm": 0'
unwired_tiles='"tile_rows": 128, "tile_cols": 128'
# unwired(CROSSBAR_KEYS, DROPOUT_MODULE_KEYS[, MTJ_KEYS]): the unwired chip with these keys set.
unwired() {
  local mtj=""
  [ -n "${3:-}" ] && mtj="\"mtj\": {$3}, "
  printf '{%s"crossbar": {%s, %s}, "dropout_module": {%s}}\n' "$mtj" "$unwired_crossbar" "$1" "$2"
}
# Module p variation shows where the write current is not trimmed module by module; the spread
# of Ic0 dominates it: d ln tau / d ln Ic0 = Delta I / Ic0, about 41, against
# d ln tau / d ln Delta = Delta (1 - I / Ic0), about 4.
untrimmed="$out/untrimmed.json"
unwired "$unwired_tiles, \"column_calibration\": \"none\"" '"trim_dac_bits": 0, "write_current": "per_chip"' > "$untrimmed"
"$cli" sweep "${common[@]}" --hw "$untrimmed" --out "$out/sweep-mtj.sigma_ic0" \
  --param mtj.sigma_ic0 --values 0,0.005,0.01,0.03
run mtj.sigma_rp --values 0,0.05,0.1,0.15
run faults.cell_stuck_ap --values 0,0.001,0.01,0.03
# Temperature with Ic0(T), Delta(T), TMR(T) (modules trimmed at 300 K), and the module circuit:
# the trim DAC's bits (0 = a continuous trim), per-write driver noise, a per-pass supply fluctuation
# shared by a layer's drivers; the cell's access transistor.
run mtj.temperature_k --values 280,300,320,340,360
compensated="$out/temperature-compensated.json"
unwired "$unwired_tiles, \"column_calibration\": \"none\"" '"trim_dac_bits": 0, "temperature_compensation": "per_temperature"' \
  > "$compensated"
"$cli" sweep "${common[@]}" --hw "$compensated" --out "$out/sweep-mtj.temperature_k-compensated" \
  --param mtj.temperature_k --values 280,300,320,340,360
run dropout_module.trim_dac_bits --values 3,4,5,6,8
run dropout_module.write_noise_relative --values 0,0.005,0.01,0.02
run dropout_module.supply_noise_relative --values 0,0.005,0.01,0.02
run crossbar.access_resistance_ohm --values 0,1000,2000,3000
# Sense amplifiers decide only columns held in one tile: tiles tall enough for every layer here.
single_tile="$out/single-tile.json"
unwired '"tile_rows": 2048, "tile_cols": 128, "column_calibration": "none"' '"trim_dac_bits": 0' > "$single_tile"
"$cli" sweep "${common[@]}" --hw "$single_tile" --out "$out/sweep-crossbar.sense_offset_sigma_ua" \
  --param crossbar.sense_offset_sigma_ua --values 0,1,2,4
"$cli" sweep "${common[@]}" --hw "$single_tile" --out "$out/sweep-crossbar.sense_offset_relative" \
  --param crossbar.sense_offset_relative --values 0,0.005,0.01,0.02
# IR drop: wire resistance per cell pitch on the read and bit lines, the read-out as built and
# with each column's gain and offset calibrated at test; then what restores it: calibrated tiles of
# 64 x 64, and calibrated MTJs of 10x the RA (R_P ~ 40 kOhm: a tenth of the currents).
run crossbar.wire_resistance_ohm --values 0,0.05,0.1,0.25,0.5,1.75
calibrated="$out/column-calibration.json"
unwired "$unwired_tiles, \"column_calibration\": \"gain_offset\"" '"trim_dac_bits": 0' > "$calibrated"
"$cli" sweep "${common[@]}" --hw "$calibrated" --out "$out/sweep-crossbar.wire_resistance_ohm-calibrated" \
  --param crossbar.wire_resistance_ohm --values 0,0.05,0.1,0.25,0.5,1.75
small_tiles="$out/calibrated-64x64.json"
unwired '"tile_rows": 64, "tile_cols": 64, "column_calibration": "gain_offset"' '"trim_dac_bits": 0' > "$small_tiles"
"$cli" sweep "${common[@]}" --hw "$small_tiles" --out "$out/sweep-crossbar.wire_resistance_ohm-calibrated-64x64" \
  --param crossbar.wire_resistance_ohm --values 0,0.1,0.5,1.75
high_ra="$out/calibrated-ra50.json"
unwired "$unwired_tiles, \"column_calibration\": \"gain_offset\"" '"trim_dac_bits": 0' '"ra_ohm_um2": 50' > "$high_ra"
"$cli" sweep "${common[@]}" --hw "$high_ra" --out "$out/sweep-crossbar.wire_resistance_ohm-calibrated-ra50" \
  --param crossbar.wire_resistance_ohm --values 0,0.1,0.5,1.75
# Reference-generator error: each tile's reference current off by one relative error shared by its
# columns, as built and calibrated.
run crossbar.reference_error_relative --values 0,0.005,0.01,0.02,0.05
"$cli" sweep "${common[@]}" --hw "$calibrated" --out "$out/sweep-crossbar.reference_error_relative-calibrated" \
  --param crossbar.reference_error_relative --values 0,0.005,0.01,0.02,0.05
# The default chip itself (access transistors, 0.14 Ohm wires on 64 x 32 calibrated tiles, 6-bit
# trim): how far its wires can grow, and temperature with its calibration and trim from 300 K,
# as built and with the write currents set again per temperature.
"$cli" sweep "${common[@]}" --hw default --out "$out/sweep-crossbar.wire_resistance_ohm-default" \
  --param crossbar.wire_resistance_ohm --values 0,0.07,0.14,0.28,0.5,1,1.75
"$cli" sweep "${common[@]}" --hw default --out "$out/sweep-mtj.temperature_k-default" \
  --param mtj.temperature_k --values 280,300,320,340,360
default_compensated="$out/default-compensated.json"
printf '{"dropout_module": {"temperature_compensation": "per_temperature"}}\n' > "$default_compensated"
"$cli" sweep "${common[@]}" --hw "$default_compensated" --out "$out/sweep-mtj.temperature_k-default-compensated" \
  --param mtj.temperature_k --values 280,300,320,340,360
