#pragma once
// A binary layer on MTJ crossbar tiles: the read-out stage of the chip's array.
//
// Mapping: one column per output channel, K*K*C_in rows in the engine's patch order, split into
// tiles of tile_rows x tile_cols. The cells and their sampled devices: cell_array.h. A column's
// value is the dot product plus the device deviations of its driven rows, in dot units.
//   One row tile: a sense amplifier (with a per-amplifier offset, drawn once per chip) compares
//   the column with the folded batch-norm threshold, placed halfway between integer dots.
//   Several row tiles: each tile's partial sum is digitized by an ADC (adc.h) and the partials
//   are added and compared digitally. The output layer is always read through ADCs (its logits
//   are real).
// Gain: drifted devices (cell_array.h) scale a column's current by g, and an ADC's gain error
// scales its input by 1 + e, against thresholds set for the design: a sense amplifier fires iff
// sign * g * value >= bound - 1/2 - offset, i.e. iff sign * value >= (bound - 1/2 - offset) / g,
// which the screen sees as the offset (bound - 1/2)(1 - 1/g) + offset / g about the ungained value.
// The offset has an absolute part (crossbar.sense_offset_sigma_ua) and a part relative to the
// current compared (crossbar.sense_offset_relative x the column's current with every row driven).
// Faults on the sense amplifiers: a per-chip offset of faults.sense_offset_ua and random sign.
// Speed: the exact integer dots come from the engine's binary GEMM, and the analog sum of a
// column is taken only where the screen (crossbar_screen.h) says the decision could differ.
#include <cstdint>
#include <vector>

#include "engine/backend.h"
#include "engine/bgemm.h"
#include "hw/adc.h"
#include "hw/cell_array.h"
#include "hw/crossbar_screen.h"
#include "hw/hardware_config.h"
#include "hw/ledger.h"
#include "hw/mapping.h"

namespace spinbayes {

class CrossbarLayer {
 public:
  CrossbarLayer() = default;
  // `weights`: the layer's packed weights (out x rows, patch order); `layer` keys the chip's draws.
  // `dead_tiles`: (row tile, column tile) of the layer's tiles that conduct nothing.
  CrossbarLayer(const HardwareConfig& hw, const LayerMapping& mapping, const BitMatrix& weights,
                std::uint64_t chip_seed, int layer, const std::vector<std::pair<int, int>>& dead_tiles = {});

  const BitMatrix& weights() const { return cells_.weights(); }  // the bits the cells hold after faults
  const PackedOperand& packed_weights() const { return packed_; }
  bool exact() const { return exact_; }  // arithmetic identical to the ideal engine's
  const CellArray& cells() const { return cells_; }
  const Adc& adc() const { return adc_; }
  const CrossbarScreen& screen() const { return screen_; }
  bool uses_adc() const { return output_ || cells_.row_tiles() > 1; }
  // What multiplies a column's value as compared or read out: the devices' drift, and through an
  // ADC its gain error too.
  double gain() const { return gain_; }
  double offset(int j) const { return offset_[static_cast<std::size_t>(j)]; }  // sense amplifier, dot units

  // Sense decisions for one window (patch row m) of a hidden layer: bit j of `out` is set iff
  // column j fires, given the GEMM dots of that row and the folded threshold (fires iff
  // sign[j] * dot >= bound[j] in exact arithmetic).
  void sense_row(const PatchRows& patches, int m, const std::int32_t* dots, const std::int32_t* sign,
                 const std::int32_t* bound, BitWord* out, LayerEvents& events) const;
  // The same decisions column by column with the plain deviation loop; returns how many took the
  // analog sum.
  int sense_row_reference(const PatchRows& patches, int m, const std::int32_t* dots, const std::int32_t* sign,
                          const std::int32_t* bound, BitWord* out) const;
  // Column sums of one window as read out through the ADCs (output layer).
  void read_row(const PatchRows& patches, int m, const std::int32_t* dots, double* sums, LayerEvents& events) const;

  // The exact dot of column j in row tile t (t = -1: all tiles) with its stuck cells.
  std::int32_t tile_dot(const PatchRows& patches, int m, int j, int t) const;
  // What column j's stuck cells in rows [r0, r1) add to its GEMM dot in window m: 2 * value for
  // each stuck cell on a driven row with input bit 0. From the bit planes (popcounts) where the
  // column has more stuck cells than a few, and the plain loop over the list beside it.
  std::int32_t stuck_correction(const PatchRows& patches, int m, int j, int r0, int r1) const;
  std::int32_t stuck_correction_reference(const PatchRows& patches, int m, int j, int r0, int r1) const;
  // Column j's value as compared or read out from its tile sums: through the ADCs when the
  // column uses them, else the sense amplifier's input; calibrated, each tile's (v - b) / a (through
  // ADCs: the sum over tiles of code x step / a, less the sum of b / a, as a digital unit would
  // apply stored per-tile multipliers).
  double column_value(int j, const std::int32_t* sums) const;
  // The screen's terms for window m, widened by what IR drop's relief can move a column by.
  CrossbarScreen::Terms screen_terms(const PatchRows& patches, int m) const;

 private:
  // column_value() of the `count` listed columns' tile sums at tile_sum_index (overwritten by
  // their ADC codes).
  void column_values(const int* columns, std::int32_t* sums, int count, double* values) const;
  void count_reads(const PatchRows& patches, int m, LayerEvents& events) const;
  // The offsets the screen adds to the ungained margin: offset_ itself without a gain.
  const double* screen_offsets(const std::int32_t* bound) const;

  int cols_ = 0, col_tiles_ = 1;
  bool output_ = false, exact_ = true;
  CellArray cells_;
  Adc adc_;
  CrossbarScreen screen_;
  PackedOperand packed_;
  std::vector<double> offset_;  // sense-amplifier offset per column, dot units
  double gain_ = 1.0;
  // Calibrated ADC read-out: per column and row tile step / gain, per column the sum of offset /
  // gain (empty otherwise).
  std::vector<double> readout_scale_, readout_shift_;
  bool vnni_ = false;           // the CPU's: the SIMD screen and tile sums
  bool vpopcnt_ = false;        // the CPU's: the stuck cells' popcounts
};

}  // namespace spinbayes
