#pragma once
// The sampled cells of one layer's crossbar tiles: what each 2T-2MTJ cell reads for either input
// bit, drawn once per chip seed (R_P and TMR device variation, stuck MTJs), with its tile's
// reference column subtracted, in fixed point.
//
// Cell: MTJ1 holds the weight (P for +1), MTJ2 its complement; input bit 1 drives MTJ1's word line,
// bit 0 MTJ2's, so a matching cell conducts G_P and a mismatching one G_AP; dropped and padded rows
// are not driven. A cell read at conductance g contributes (g - G_mid) / G_half "dot units", with
// G_mid = (G_P + G_AP) / 2 and G_half = (G_P - G_AP) / 2: +1 for a match and -1 for a mismatch at
// nominal conductances. Each tile has a reference column (one P and one AP MTJ per row, averaged:
// G_mid nominal) driven on the same word lines and subtracted from every column, so a column's
// value is the dot product plus the device deviations of its driven rows.
// Faults: a stuck MTJ holds P or AP whatever was written. A cell whose MTJ1 is in the wrong state
// acts as a flipped weight; a cell whose two MTJs are in the same state contributes that state's
// value whatever the input: kept as a sparse list per column, added exactly.
// Drift (faults.rp_drift, faults.tmr_drift) moves every MTJ, the reference columns' too, so the
// reference still subtracts G_mid and a column's current is its value times gain() =
// G_half' / G_half (exact for R_P, first order in the spread for TMR): the cell values stay in
// the design's dot units and the read-out applies the gain (crossbar.h).
// Dead tiles: a tile whose cells conduct nothing holds zero values, so its rows add nothing to
// any of its columns whatever is driven; the exact dot does not know it (columns_dead()).
// IR drop (crossbar.wire_resistance_ohm, ir_drop.h): each cell reads at the voltage the fast
// model's map gives it, g d instead of g, and its row's reference at (G_P d_P + G_AP d_AP) / 2:
// folded into the cell values, so a column's value is the dot plus the devices' and the wires'
// deviations of its driven rows.
// Reference-generator error (crossbar.reference_error_relative): each tile's reference current
// reaches its columns as (1 + e) times itself, e drawn once per chip and tile (row tile x column
// tile) and shared by the tile's columns, so every driven row of the tile reads e g_ref / G_half
// lower: folded into the cell values like the wires, a shift of -e x mid_units() per driven row
// at nominal devices.
// Calibration (crossbar.column_calibration = gain_offset): at test, every row of a tile driven
// with the column's weights (all matches, ideal value +n) and their complement (all mismatches,
// -n): gain a = (v+ - v-) / 2n, offset b = (v+ + v-) / 2 per column and row tile, from the cells
// as stored; the read-out corrects that tile's value to (v - b) / a (crossbar.h).
// Fixed point: each cell's read value (its ideal +-1, or its stuck value, plus its deviation) is
// held as an 8-bit integer in units of 1 / cell_scale, a power of two from 64 down to 8 chosen so
// the largest value fits (1/64 of a dot unit at the default variation: a rounding variance of
// 2e-5 against a cell's 1e-2). A tile's column current is the sum of the bytes its driven rows
// pick, exactly cell_scale x the ideal dot without variation.
#include <cstdint>
#include <utility>
#include <vector>

#include "core/aligned.h"
#include "engine/backend.h"
#include "engine/bit_matrix.h"
#include "hw/hardware_config.h"
#include "hw/ir_drop.h"
#include "hw/mapping.h"

namespace spinbayes {

// G_half' / G_half: the factor by which faults.rp_drift and faults.tmr_drift scale every column's
// current (1 without drift).
double crossbar_gain(const HardwareConfig& hw);

class CellArray {
 public:
  CellArray() = default;
  // `weights`: the layer's packed weights (out x rows, patch order); `layer` keys the chip's draws.
  // `dead_tiles`: (row tile, column tile) of the layer's tiles that conduct nothing.
  CellArray(const HardwareConfig& hw, const LayerMapping& mapping, const BitMatrix& weights, std::uint64_t chip_seed,
            int layer, const std::vector<std::pair<int, int>>& dead_tiles = {});

  int rows() const { return rows_; }
  int cols() const { return cols_; }
  int padded_rows() const { return padded_rows_; }
  int tile_rows() const { return tile_rows_; }
  int row_tiles() const { return row_tiles_; }
  const BitMatrix& weights() const { return weights_; }  // the bits MTJ1 holds after faults
  bool variation() const { return variation_; }
  bool ir_drop() const { return ir_drop_; }
  bool calibrated() const { return calibrated_; }
  // Calibration of column j's row tile t: the read-out takes (v - offset) / gain.
  double calibration_gain(int j, int t) const { return calibration_[2 * (static_cast<std::size_t>(j) * row_tiles_ + t)]; }
  double calibration_offset(int j, int t) const { return calibration_[2 * (static_cast<std::size_t>(j) * row_tiles_ + t) + 1]; }
  // Whether a column's read-out departs from the dot by more than the devices' random spread
  // (IR drop, reference error, calibration). Per row and input bit that systematic deviation is
  // q = ideal (1/gain - 1) + part / gain (part: what the wires and the reference's error change of
  // the value; gain, offset: the row's tile's calibration, else 1 and 0), and each tile adds
  // -offset / gain. Of a window's k driven rows with exact dot d, (k + d) / 2 read a P MTJ and
  // (k - d) / 2 an AP one, so with qP, qA the column's mean q over P and over AP reads the
  // deviation is expected at
  //   centre = sum_t (-offset_t / gain_t) + (k + d) / 2 qP + (k - d) / 2 qA,
  // and what is left, sum over driven rows of (q - the mean of its kind), is bounded over any
  // window by the sum over rows of the larger |q - mean| of its two reads (dot units). The
  // screen centres on the first and widens by the second. The devices' own deviation reaches the
  // read-out divided by its tile's gain: the screen scales their variances by
  // largest_inverse_gain()^2, and conditions on their sums per kernel tap (tap_deviation).
  bool systematic() const { return ir_drop_ || reference_error_ || calibrated_; }
  // centre = systematic_constant + k systematic_per_row + d systematic_per_dot (0 without).
  double systematic_constant(int j) const { return centre_.empty() ? 0.0 : centre_[3 * static_cast<std::size_t>(j)]; }
  double systematic_per_row(int j) const { return centre_.empty() ? 0.0 : centre_[3 * static_cast<std::size_t>(j) + 1]; }
  double systematic_per_dot(int j) const { return centre_.empty() ? 0.0 : centre_[3 * static_cast<std::size_t>(j) + 2]; }
  bool reference_error() const { return reference_error_; }
  // IR drop: what window m's undriven rows give back (ir_drop.h's BitLineRelief), added to the
  // listed columns' tile sums at tile_sum_index (1 / cell_scale units, rounded); and a bound on its
  // size for any column in that window, in dot units, after the calibration's division by the
  // gain (the screen widens by it).
  void add_relief(const PatchRows& patches, int m, const int* columns, int count, std::int32_t* sums) const;
  double relief_bound(const PatchRows& patches, int m) const;
  double systematic_bound(int j) const { return systematic_.empty() ? 0.0 : systematic_[static_cast<std::size_t>(j)]; }
  // The largest 1 / gain of the calibration over the layer's tiles, at least 1 (1 uncalibrated).
  double largest_inverse_gain() const { return largest_inverse_gain_; }
  // Under IR drop, reference error or calibration, where the rows are a convolution's kernel taps
  // of `in_channels` rows each (mapping.h): per column, for each tap, the sums over its rows of the
  // devices' deviation d0 of the bit-0 read and of e = d1 - d0, as the read-out sees them,
  // d = (stored value - ideal - systematic part) / gain (dot units; 2 per tap, tap-major).
  // nullptr otherwise.
  const double* tap_deviation(int j) const {
    return tap_deviation_.empty() ? nullptr : tap_deviation_.data() + 2 * static_cast<std::size_t>(j) * taps_;
  }
  bool faults() const { return faults_; }
  double gain() const { return gain_; }  // G_half' / G_half of the drifted devices (1: no drift)
  // Whether column j has a dead row tile: its analog value differs from the dot by what those rows hold.
  bool column_dead(int j) const { return !dead_.empty() && dead_[static_cast<std::size_t>(j)]; }
  bool any_dead() const { return !dead_.empty(); }
  int cell_scale() const { return cell_scale_; }
  double unit_ua() const { return unit_ua_; }  // one dot unit of column current, V * G_half
  double mid_units() const { return mid_units_; }  // a driven cell's mean current, V * G_mid, in dot units

  // A cell whose two MTJs hold one state: +1 or -1 whatever the input.
  struct StuckCell {
    int row;
    int value;
  };
  const std::vector<StuckCell>& stuck(int column) const { return stuck_[static_cast<std::size_t>(column)]; }
  bool any_stuck() const { return any_stuck_; }
  // The same cells as bit planes, a row of the planes a column: bit r set where row r's cell is
  // stuck at +1 (plus) or at -1 (only where the config has stuck-at faults).
  const BitWord* stuck_plane(int column, bool plus) const {
    return (plus ? stuck_plus_ : stuck_minus_).row(column);
  }

  // Column j's values, two bytes per padded row (value_index): the value (dot units x cell_scale,
  // reference column subtracted) of the cell read when the input bit is 0 (MTJ2) and 1 (MTJ1).
  const std::int8_t* values() const { return value_.data(); }
  const std::int8_t* column_values(int j) const { return value_.data() + static_cast<std::size_t>(j) * column_bytes(); }
  std::size_t column_bytes() const { return 2 * static_cast<std::size_t>(padded_rows_); }
  // Where row r's value for input bit `one` sits in a column's bytes: per 64-row word, 64 bytes
  // for bit 0 (MTJ2) then 64 for bit 1 (MTJ1).
  static std::size_t value_index(int r, bool one) {
    return 2 * static_cast<std::size_t>(r - r % kBitsPerWord) + (one ? kBitsPerWord : 0) + r % kBitsPerWord;
  }

  // First-order variances (dot units squared) of one read: a matching cell (P), a mismatching one
  // (AP), a row's reference cells, and the fixed-point rounding of one value.
  struct Variances {
    double match = 0, mismatch = 0, reference = 0, rounding = 0;
  };
  const Variances& variances() const { return variances_; }

  // Column j's current in each row tile for window m of `patches` (1 / cell_scale units): the sum
  // of the values its driven rows pick. The plain loop, and the listed columns at once (SIMD where
  // the CPU has it, the same integers) at tile_sum_index().
  void tile_sums_reference(const PatchRows& patches, int m, int j, std::int32_t* sums) const;
  void tile_sums(const PatchRows& patches, int m, const int* columns, int count, std::int32_t* sums) const;

 private:
  // calibration_, systematic_, centre_ and tap_deviation_ from the stored values, the systematic
  // part of each (wires, reference error) and its ideal +-1 (value_index layout).
  void calibrate(const HardwareConfig& hw, const LayerMapping& mapping, const BitMatrix& weights,
                 const std::vector<float>& part, const std::vector<std::int8_t>& ideal);
  // IR drop: what a window's undriven rows give back, for every tile at once, as the SIMD sums take
  // it (cell_array.cpp); found again for the windows of a driven pattern met before on this thread.
  struct WindowRelief;
  const WindowRelief& window_relief(const BitWord* keep) const;

  int rows_ = 0, cols_ = 0, padded_rows_ = 0, tile_rows_ = 0, row_tiles_ = 1;
  bool variation_ = false, faults_ = false, any_stuck_ = false, vnni_ = false;
  bool ir_drop_ = false, reference_error_ = false, calibrated_ = false;
  std::vector<double> calibration_;  // per column and row tile: gain, offset
  std::vector<double> systematic_;   // per column (empty: none)
  std::vector<double> centre_;       // per column: constant, per row, per dot (empty: none)
  double largest_inverse_gain_ = 1.0;  // what the calibration scales the relief by at most: 1 / min gain
  int taps_ = 0;                       // kernel taps whose devices' sums tap_deviation_ holds (0: none)
  std::vector<double> tap_deviation_;  // per column and tap: sum of d0, sum of e
  int col_tiles_ = 1, tile_cols_ = 1;
  std::vector<BitLineRelief> relief_;  // per row tile and column tile (row-major)
  std::vector<char> dead_tile_;        // the same: a dead tile (empty: none)
  BitMatrix weights_;
  std::vector<std::vector<StuckCell>> stuck_;  // per column, by row
  BitMatrix stuck_plus_, stuck_minus_;          // cols x rows: the stuck cells' bit planes
  std::vector<char> dead_;  // per column: a dead tile in it (empty: none in the layer)
  double gain_ = 1.0;
  AlignedVector<std::int8_t> value_;  // 64-byte aligned: each word's loads stay in one line
  int cell_scale_ = 64;
  double unit_ua_ = 0;
  double mid_units_ = 0;
  Variances variances_;
};

}  // namespace spinbayes
