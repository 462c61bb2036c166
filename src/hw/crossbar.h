#pragma once
// A binary layer on MTJ crossbar tiles.
//
// Mapping: one column per output channel, K*K*C_in rows in the engine's patch order, split into
// tiles of tile_rows x tile_cols. Cell: 2T-2MTJ XNOR. MTJ1 holds the weight (P for +1), MTJ2 its
// complement; input bit 1 drives MTJ1's word line, bit 0 MTJ2's, so a matching cell conducts
// G_P and a mismatching one G_AP; dropped and padded rows are not driven.
//
// Readout in "dot units": a cell read at conductance g contributes (g - G_mid) / G_half, with
// G_mid = (G_P + G_AP) / 2 and G_half = (G_P - G_AP) / 2, i.e. +1 for a match and -1 for a
// mismatch at nominal conductances. Each tile has a reference column (one P and one AP MTJ per
// row, averaged: G_mid nominal) driven on the same word lines, subtracted from every column, so
// the column value is the dot product plus the device deviations of its driven rows.
//   One row tile: a sense amplifier (with a per-amplifier offset, drawn once per chip) compares
//   the column with the folded batch-norm threshold, placed halfway between integer dots.
//   Several row tiles: each tile's partial sum is digitized by an ADC (adc_bits, full scale
//   +-tile_rows) and the partials are added and compared digitally. The output layer is always
//   read through ADCs (its logits are real).
// Faults: a stuck MTJ holds P or AP whatever was written. A cell whose MTJ1 is in the wrong state
// acts as a flipped weight; a cell whose two MTJs are in the same state contributes that state's
// value whatever the input: kept as a sparse list per column and added exactly.
//
// Speed: the exact integer dots come from the engine's binary GEMM; the analog sum over a column
// (one float per driven row) is evaluated only where the decision could differ: where the ideal
// margin lies within screen_sigmas standard deviations of the column's deviation sum (plus the
// ADC rounding bound). screen_sigmas = 0 evaluates every column: the reference path.
#include <cstdint>
#include <vector>

#include "engine/bit_matrix.h"
#include "hw/hardware_config.h"
#include "hw/ledger.h"
#include "hw/mapping.h"

namespace spinbayes {

class CrossbarLayer {
 public:
  CrossbarLayer() = default;
  // `weights`: the layer's packed weights (out x rows, patch order); `layer` keys the chip's draws.
  CrossbarLayer(const HardwareConfig& hw, const LayerMapping& mapping, const BitMatrix& weights,
                std::uint64_t chip_seed, int layer);

  const BitMatrix& weights() const { return weights_; }  // the bits the cells hold after faults
  const PackedOperand& packed_weights() const { return packed_; }
  bool exact() const { return exact_; }  // arithmetic identical to the ideal engine's

  // Sense decisions for one window (patch row m) of a hidden layer: bit j of `out` is set iff
  // column j fires, given the GEMM dots of that row and the folded threshold (fires iff
  // sign[j] * dot >= bound[j] in exact arithmetic).
  void sense_row(const Patches& patches, int m, const std::int32_t* dots, const std::int32_t* sign,
                 const std::int32_t* bound, BitWord* out, LayerEvents& events) const;
  // Column sums of one window as read out through the ADCs (output layer).
  void read_row(const Patches& patches, int m, const std::int32_t* dots, double* sums, LayerEvents& events) const;

  // Pieces, public for tests: the exact dot of column j in row tile t (t = -1: all tiles) with
  // stuck cells, the analog deviation of column j over tile t, and the ADC transfer.
  std::int32_t tile_dot(const Patches& patches, int m, int j, int t) const;
  // Column j in every row tile: the exact partial dot (stuck cells included) and the analog
  // deviation; SIMD and plain.
  void tile_sums(const Patches& patches, int m, int j, std::int32_t* dots, double* devs) const;
  void tile_sums_reference(const Patches& patches, int m, int j, std::int32_t* dots, double* devs) const;
  // The column's value as compared or read out: the exact dot `dot` (stuck cells included) plus
  // the deviations, through the ADCs when the column spans tiles or is an output.
  double column_sum(const Patches& patches, int m, int j, std::int32_t dot) const;
  double quantize(double value) const;
  static constexpr int kMaxTiles = 1024;
  int row_tiles() const { return row_tiles_; }

 private:
  std::int32_t stuck_correction(const Patches& patches, int m, int j, int r0, int r1) const;
  void count_reads(const Patches& patches, int m, LayerEvents& events) const;

  int rows_ = 0, cols_ = 0, padded_rows_ = 0, tile_rows_ = 0, row_tiles_ = 1, col_tiles_ = 1;
  bool output_ = false, exact_ = true;
  BitMatrix weights_;
  PackedOperand packed_;
  struct StuckCell {
    int row;
    int value;  // +1 or -1 whatever the input
  };
  std::vector<std::vector<StuckCell>> stuck_;  // per column, by row
  // Per column, padded_rows_ floats each: the deviation (dot units, reference column subtracted)
  // of the cell read when the input bit is 1 (MTJ1) and when it is 0 (MTJ2).
  std::vector<float> dev_on_, dev_off_;
  std::vector<double> offset_;  // sense-amplifier offset per column, dot units
  std::vector<double> screen_;  // per column: decisions with |margin| above this skip the analog sum
  double adc_step_ = 1.0;
  int adc_levels_ = 0;  // largest |code|
};

}  // namespace spinbayes
