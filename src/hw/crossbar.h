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
// is evaluated only where the decision could differ: where the margin about the expected value
// lies within screen_sigmas standard deviations of what the devices and the ADCs can add.
// Ensemble screen: centred on the dot; the deviation's variance over chips is known per window
// from the dot itself: of k driven rows, (k + dot) / 2 read a P MTJ and (k - dot) / 2 an AP one.
// ADC rounding: each tile's code is off by up to half a step, uniformly, a variance of
// step^2 / 12 per tile; a sum of uniform errors is strictly sub-Gaussian (its tail falls at least
// as fast as the normal's of the same variance), so it joins the devices' variance.
// screen_sigmas = 0 evaluates every column: the reference path.
// Conditioned screen: where a window's driven rows are its valid taps' rows of the same kept
// channels (spatial masks: every tap inside the map holds kc of its C rows, those outside none),
// the screen centres each column on what the chip's own cells predict, not on the ideal dot. Of a
// driven row's deviation delta[x] = delta0 + x * e (e = delta1 - delta0), the sums of delta0 and
// of e over each rectangle of taps are known per column once per chip; with kappa = kc / C kept
// and nu = n1 / k of the k driven rows reading bit 1, the centre is
//   mu = kappa * (S0 + nu * Se),
// and what is left, sum(delta0 * (keep - kappa) + e * (keep and x - kappa nu)), is a sum over
// rows whose variance the window's counts give (screen_terms()): about 0.4x the ensemble
// variance at p = 0.1, so about 0.63x the screen's width. Other windows (element masks drawn
// per window) use the ensemble screen.
// Fixed point: each cell's read value (its ideal +-1, or its stuck value, plus its deviation) is
// held as an 8-bit integer in units of 1 / cell_scale, a power of two from 64 down to 8 chosen so
// the largest value fits (1/64 of a dot unit at the default variation: a rounding variance of
// 2e-5 against a cell's 1e-2). A tile's column current is then the sum of the bytes its driven
// rows pick (masked byte loads, summed by VPDPBUSD: 64 rows per instruction), the same integers
// in the plain loop, and exactly cell_scale x the ideal dot without variation.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/aligned.h"
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
  // The same decisions column by column with the plain deviation loop; returns how many took the
  // analog sum.
  int sense_row_reference(const Patches& patches, int m, const std::int32_t* dots, const std::int32_t* sign,
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

  // What the screen knows of window m before any analog sum (public for tests): column j's value
  // is expected at dot_j + a * s0[j] + b * se[j] (dot units), with variance
  // base + slope * dot_j + its own (stuck cells, ADC rounding). Conditioned: the chip's sums over
  // the window's taps (s0: delta0, se: e, in 1 / cell_scale); otherwise a = b = 0 and the
  // ensemble variance.
  struct ScreenTerms {
    bool conditioned = false;
    double a = 0, b = 0, base = 0, slope = 0;
    const std::int32_t* s0 = nullptr;
    const std::int32_t* se = nullptr;
  };
  ScreenTerms screen_terms(const Patches& patches, int m) const;

 private:
  std::int32_t stuck_correction(const Patches& patches, int m, int j, int r0, int r1) const;
  // Whether an analog sum of this variance (ScreenTerms plus the column's own) can move the
  // decision across the threshold from `margin`, at screen_sigmas standard deviations.
  bool within_screen(double margin, double variance) const;
  // Each rectangle of taps (rows ky0..ky1, columns kx0..kx1 of the kernel): its index into
  // rect_s0_ / rect_se_ (times cols_).
  int rectangle(int ky0, int ky1, int kx0, int kx1) const { return ((ky0 * kernel_ + ky1) * kernel_ + kx0) * kernel_ + kx1; }
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
  void conditioned_sums();  // rect_s0_, rect_se_ from cell_value_

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
  AlignedVector<std::int8_t> cell_value_;  // 64-byte aligned: each word's loads stay in one line
  int cell_scale_ = 64;
  std::vector<double> offset_;  // sense-amplifier offset per column, dot units
  // The screen: decisions whose |margin| falls outside within_screen() skip the analog sum.
  double screen_sigmas_ = 0;
  double variance_match_ = 0, variance_mismatch_ = 0;
  // Per column, what every window adds to the screen's variance: its stuck cells (a P read where
  // the dot counts a mismatch) and the ADC rounding of its tiles.
  std::vector<double> column_variance_;
  // The conditioned screen: taps of tap_rows_ rows (C_in), kernel_ x kernel_ of them; per
  // rectangle of taps and column, the sums of delta0 and e (cell_scale units). Both screens: the
  // variances of a reference row and of the fixed-point rounding of one value.
  bool conditioned_ = false;
  bool vnni_ = false, popcnt_ = false;  // the CPU's: the SIMD kernels, the POPCNT instruction
  int kernel_ = 1, tap_rows_ = 0;
  std::vector<std::int32_t> rect_s0_, rect_se_, no_sums_;  // no_sums_: cols_ zeros (the ensemble centre)
  double variance_reference_ = 0, variance_rounding_ = 0;
  double adc_step_ = 1.0;
  double adc_divisor_ = 1.0;  // a code is sum x adc_multiplier_ / adc_divisor_, rounded
  double adc_multiplier_ = 1.0;
  bool adc_divisor_power_of_two_ = true;
  int adc_levels_ = 0;  // largest |code|
};

}  // namespace spinbayes
