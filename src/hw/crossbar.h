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
// is evaluated only where the decision could differ: where the ideal margin lies within
// screen_sigmas standard deviations of the column's deviation sum (plus the ADC rounding bound).
// That deviation's variance over chips is known per window from the dot itself: of k driven
// rows, (k + dot) / 2 read a P MTJ and (k - dot) / 2 an AP one.
// screen_sigmas = 0 evaluates every column: the reference path.
// Fixed point: each cell's read value (its ideal +-1, or its stuck value, plus its deviation) is
// held as an 8-bit integer in units of 1 / cell_scale, a power of two from 64 down to 8 chosen so
// the largest value fits (1/64 of a dot unit at the default variation: a rounding variance of
// 2e-5 against a cell's 1e-2). A tile's column current is then the sum of the bytes its driven
// rows pick (masked byte loads, summed by VPDPBUSD: 64 rows per instruction), the same integers
// in the plain loop, and exactly cell_scale x the ideal dot without variation.
#include <algorithm>
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
  // The same decisions column by column with the plain deviation loop (tests).
  void sense_row_reference(const Patches& patches, int m, const std::int32_t* dots, const std::int32_t* sign,
                           const std::int32_t* bound, BitWord* out) const;
  // Column sums of one window as read out through the ADCs (output layer).
  void read_row(const Patches& patches, int m, const std::int32_t* dots, double* sums, LayerEvents& events) const;

  // Pieces, public for tests: the exact dot of column j in row tile t (t = -1: all tiles) with
  // stuck cells; column j's current in every row tile in 1 / cell_scale units (SIMD and plain);
  // the column's value as compared or read out from those: through the ADCs when the column spans
  // tiles or is an output; and one ADC conversion (code, in steps of adc_step).
  std::int32_t tile_dot(const Patches& patches, int m, int j, int t) const;
  void tile_sums(const Patches& patches, int m, int j, std::int32_t* sums) const;
  void tile_sums_reference(const Patches& patches, int m, int j, std::int32_t* sums) const;
  double column_value(const std::int32_t* sums) const;
  std::int32_t adc_code(std::int32_t sum) const;
  void adc_codes(const std::int32_t* sums, int n, std::int32_t* codes) const;  // SIMD, same codes
  int cell_scale() const { return cell_scale_; }
  static constexpr int kMaxTiles = 1024;
  // Where column_values() and the SIMD kernel keep the tile sums of `count` columns: in groups of
  // kColumnGroup columns, tile by tile.
  static constexpr int kColumnGroup = 4;
  static std::size_t tile_sum_index(int i, int t, int count, int tiles) {
    const int first = i - i % kColumnGroup, n = std::min(kColumnGroup, count - first);
    return static_cast<std::size_t>(first) * tiles + static_cast<std::size_t>(t) * n + i % kColumnGroup;
  }
  int row_tiles() const { return row_tiles_; }

 private:
  std::int32_t stuck_correction(const Patches& patches, int m, int j, int r0, int r1) const;
  // Whether column j's analog sum can move across the threshold from `margin`, at screen_sigmas
  // standard deviations (plus ADC rounding), with `kept` rows driven and exact dot `dot`.
  bool within_screen(double margin, int kept, std::int32_t dot, int j) const;
  // Tile sums of the listed columns of window m, row_tiles_ each, at tile_sum_index: in groups of
  // kColumnGroup columns, tile by tile (the order the SIMD kernel makes them in).
  void columns_tile_sums(const Patches& patches, int m, const int* columns, int count, std::int32_t* sums) const;
  // Where row r's value for input bit `one` sits in a column's bytes: per 64-row word, 64 bytes
  // for bit 0 (MTJ2) then 64 for bit 1 (MTJ1).
  static std::size_t value_index(int r, bool one) {
    return 2 * static_cast<std::size_t>(r - r % kBitsPerWord) + (one ? kBitsPerWord : 0) + r % kBitsPerWord;
  }
  // column_value() of `count` columns' consecutive tile sums (overwritten by their ADC codes).
  void column_values(std::int32_t* sums, int count, double* values) const;
  void count_reads(const Patches& patches, int m, LayerEvents& events) const;

  int rows_ = 0, cols_ = 0, padded_rows_ = 0, tile_rows_ = 0, row_tiles_ = 1, col_tiles_ = 1;
  bool output_ = false, exact_ = true, stuck_cells_ = false;
  BitMatrix weights_;
  PackedOperand packed_;
  struct StuckCell {
    int row;
    int value;  // +1 or -1 whatever the input
  };
  std::vector<std::vector<StuckCell>> stuck_;  // per column, by row
  // Per column, two bytes per padded row (value_index): the value (dot units x cell_scale_,
  // reference column subtracted) of the cell read when the input bit is 0 (MTJ2) and 1 (MTJ1).
  std::vector<std::int8_t> cell_value_;
  int cell_scale_ = 64;
  std::vector<double> offset_;  // sense-amplifier offset per column, dot units
  // The screen: decisions whose |margin| falls outside within_screen() skip the analog sum.
  double screen_sigmas_ = 0, screen_rounding_ = 0;
  double variance_match_ = 0, variance_mismatch_ = 0, variance_driven_ = 0;
  std::vector<double> stuck_variance_;  // per column
  double adc_step_ = 1.0;
  double adc_divisor_ = 1.0;  // a code is sum x adc_multiplier_ / adc_divisor_, rounded
  double adc_multiplier_ = 1.0;
  bool adc_divisor_power_of_two_ = true;
  int adc_levels_ = 0;  // largest |code|
};

}  // namespace spinbayes
