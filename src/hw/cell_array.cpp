#include "hw/cell_array.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <array>
#include <map>
#include <memory>
#include <unordered_map>

#include "core/aligned.h"
#include "core/counter_rng.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/streams.h"
#include "hw/ir_drop.h"
#include "hw/mtj.h"
#include "hw/tile_sums.h"

namespace spinbayes {

namespace {

// Conductances of the nominal cell at the read bias, and the dot-unit scale.
struct Readout {
  double g_p = 0, g_ap = 0, g_mid = 0, g_half = 0;
  explicit Readout(const HardwareConfig& hw) {
    const double v = hw.crossbar.read_voltage_v, ra = hw.crossbar.access_resistance_ohm;
    g_p = 1.0 / cell_resistance_ohm(hw.mtj, MtjState::parallel, v, ra);
    g_ap = 1.0 / cell_resistance_ohm(hw.mtj, MtjState::antiparallel, v, ra);
    g_mid = 0.5 * (g_p + g_ap);
    g_half = 0.5 * (g_p - g_ap);
  }
  double units(double g) const { return (g - g_mid) / g_half; }
};

// The conductance of one cell (its MTJ in `state` with its own R_P and TMR, relative deviations
// nr, nt in standard normal units, in series with the access transistor). `tmr`: the TMR at the
// nominal AP cell's bias, cell_tmr_at_read (a fixed point, solved once per array).
double conductance(const HardwareConfig& hw, MtjState state, double nr, double nt, double tmr) {
  const double ra = hw.crossbar.access_resistance_ohm;
  const double rp = hw.mtj.rp_ohm() * std::max(0.05, 1.0 + hw.mtj.sigma_rp * nr);
  if (state == MtjState::parallel) return 1.0 / (rp + ra);
  return 1.0 / (rp * (1.0 + tmr * std::max(0.0, 1.0 + hw.mtj.sigma_tmr * nt)) + ra);
}

int value_of(MtjState s) { return s == MtjState::parallel ? 1 : -1; }

}  // namespace

double crossbar_gain(const HardwareConfig& hw) {
  const MtjParams& m = hw.mtj;
  if (hw.faults.rp_drift == 0.0 && hw.faults.tmr_drift == 0.0 && m.ra_temperature_factor() == 1.0 &&
      m.tmr_temperature_factor() == 1.0) {
    return 1.0;
  }
  // The stack at the operating temperature and after any drift, against the design's.
  HardwareConfig drifted = hw;
  drifted.mtj = m.crossbar_at_temperature();
  drifted.mtj.ra_ohm_um2 *= 1.0 + hw.faults.rp_drift;
  drifted.mtj.tmr *= 1.0 + hw.faults.tmr_drift;
  return Readout(drifted).g_half / Readout(hw).g_half;
}

CellArray::CellArray(const HardwareConfig& hw, const LayerMapping& mapping, const BitMatrix& weights,
                     std::uint64_t chip_seed, int layer, const std::vector<std::pair<int, int>>& dead_tiles)
    : rows_(mapping.rows),
      cols_(mapping.cols),
      padded_rows_(weights.words * kBitsPerWord),
      tile_rows_(hw.crossbar.tile_rows),
      row_tiles_(mapping.row_tiles),
      weights_(weights) {
  const Readout readout(hw);
  const double sr = hw.mtj.sigma_rp, st = hw.mtj.sigma_tmr;
  variation_ = sr > 0.0 || st > 0.0;
  const double stuck_p = hw.faults.cell_stuck_p, stuck_ap = hw.faults.cell_stuck_ap;
  faults_ = stuck_p > 0.0 || stuck_ap > 0.0;
  const auto lk = static_cast<std::uint64_t>(layer);

  // First-order variance (dot units) of a P and an AP cell: g = 1 / (R + R_a), so dg / g =
  // -dR / (R + R_a) with dR_P / R_P = sigma_rp n and dR_AP / R_AP = sigma_rp n + TMR sigma_tmr n' /
  // (1 + TMR): the MTJ's share R / (R + R_a) of the cell's resistance scales its spread.
  const double ra = hw.crossbar.access_resistance_ohm;
  const double tmr_v = cell_tmr_at_read(hw.mtj, hw.crossbar.read_voltage_v, ra);
  const double rp = hw.mtj.rp_ohm(), rap = rp * (1.0 + tmr_v);
  const double share_p = rp / (rp + ra), share_ap = rap / (rap + ra);
  variances_.match = std::pow(readout.g_p * share_p * sr / readout.g_half, 2);
  variances_.mismatch = std::pow(readout.g_ap * share_ap / readout.g_half, 2) *
                        (sr * sr + std::pow(tmr_v * st / (1.0 + tmr_v), 2));
  variances_.reference = 0.25 * (variances_.match + variances_.mismatch);

  // Reference columns: one per column tile, a P and an AP MTJ per row, averaged. Under IR drop
  // their conductances are kept for the wires' model (ref_g: per column tile and row, P then AP).
  ir_drop_ = hw.crossbar.wire_resistance_ohm > 0.0;
  const int col_tiles = mapping.col_tiles, tile_cols = hw.crossbar.tile_cols;
  // The reference generator's error per tile (row tile x column tile): its reference current
  // reaches the columns as (1 + e) times itself, so each driven row reads e g_ref / G_half
  // lower (ref_error: that, per column tile and row).
  reference_error_ = hw.crossbar.reference_error_relative > 0.0;
  std::vector<double> tile_error;
  if (reference_error_) {
    tile_error.resize(static_cast<std::size_t>(row_tiles_) * col_tiles);
    for (int rt = 0; rt < row_tiles_; ++rt) {
      for (int ct = 0; ct < col_tiles; ++ct) {
        tile_error[static_cast<std::size_t>(rt) * col_tiles + ct] =
            hw.crossbar.reference_error_relative * gaussian_at(chip_seed, streams::kReferenceError, lk, rt, ct);
      }
    }
  }
  const auto error_of = [&](int r, int ct) {
    return reference_error_ ? tile_error[static_cast<std::size_t>(r / tile_rows_) * col_tiles + ct] : 0.0;
  };
  std::vector<float> reference(static_cast<std::size_t>(col_tiles) * padded_rows_, 0.0f);
  std::vector<float> ref_error;
  if (reference_error_) ref_error.assign(reference.size(), 0.0f);
  std::vector<double> ref_g;
  if (ir_drop_) ref_g.assign(static_cast<std::size_t>(col_tiles) * rows_ * 2, 0.0);
  if (variation_ || ir_drop_ || reference_error_) {
    for (int ct = 0; ct < col_tiles; ++ct) {
      for (int r = 0; r < rows_; ++r) {
        const auto key = static_cast<std::uint64_t>(r);
        double g = 0.0;
        for (int half = 0; half < 2; ++half) {
          const auto state = half == 0 ? MtjState::parallel : MtjState::antiparallel;
          const double cell =
              variation_ ? conductance(hw, state, gaussian_at(chip_seed, streams::kReferenceResistance, lk, ct, key, half),
                                       gaussian_at(chip_seed, streams::kReferenceTmr, lk, ct, key, half), tmr_v)
                         : conductance(hw, state, 0.0, 0.0, tmr_v);
          g += 0.5 * cell;
          if (ir_drop_) ref_g[(static_cast<std::size_t>(ct) * rows_ + r) * 2 + half] = cell;
        }
        const std::size_t at = static_cast<std::size_t>(ct) * padded_rows_ + r;
        const double e = error_of(r, ct);
        reference[at] = static_cast<float>(readout.units((1.0 + e) * g));
        if (reference_error_) ref_error[at] = static_cast<float>(e * g / readout.g_half);
      }
    }
  }

  stuck_.resize(static_cast<std::size_t>(cols_));
  if (faults_) {
    stuck_plus_ = BitMatrix(cols_, rows_);
    stuck_minus_ = BitMatrix(cols_, rows_);
  }
  // Read values per column and row, [input bit 0, input bit 1], in dot units before fixed point.
  // Under IR drop, reference error or calibration, beside them: the systematic part of each value
  // (what the wires and the reference's error change of it) and its ideal +-1.
  std::vector<float> value(static_cast<std::size_t>(cols_) * column_bytes(), 0.0f);
  const bool systematic =
      ir_drop_ || reference_error_ || hw.crossbar.column_calibration == ColumnCalibration::gain_offset;
  std::vector<float> part;  // the systematic part
  std::vector<std::int8_t> ideal;
  if (systematic) {
    part.assign(value.size(), 0.0f);
    ideal.assign(value.size(), 0);
  }
  std::vector<double> cell_g;  // under IR drop: per column and row, the conductance read for bit 0, bit 1
  if (ir_drop_) cell_g.assign(static_cast<std::size_t>(cols_) * rows_ * 2, 0.0);
  for (int j = 0; j < cols_; ++j) {
    const auto jk = static_cast<std::uint64_t>(j);
    const std::size_t base = static_cast<std::size_t>(j) * column_bytes();
    const int ct = j / tile_cols;
    const float* ref = reference.data() + static_cast<std::size_t>(ct) * padded_rows_;
    const float* err = reference_error_ ? ref_error.data() + static_cast<std::size_t>(ct) * padded_rows_ : nullptr;
    for (int r = 0; r < rows_; ++r) {
      const auto rk = static_cast<std::uint64_t>(r);
      const bool plus = weights.get(j, r);
      MtjState state[2] = {plus ? MtjState::parallel : MtjState::antiparallel,
                           plus ? MtjState::antiparallel : MtjState::parallel};
      if (faults_) {
        for (int mtj = 0; mtj < 2; ++mtj) {
          const double u = uniform_at(chip_seed, streams::kCellFault, lk, jk, rk, mtj);
          if (u < stuck_p) {
            state[mtj] = MtjState::parallel;
          } else if (u < stuck_p + stuck_ap) {
            state[mtj] = MtjState::antiparallel;
          }
        }
        weights_.set(j, r, state[0] == MtjState::parallel);
        if (state[0] == state[1]) {
          stuck_[static_cast<std::size_t>(j)].push_back({r, value_of(state[0])});
          (state[0] == MtjState::parallel ? stuck_plus_ : stuck_minus_).set(j, r, true);
        }
      }
      // Input bit 1 reads MTJ1, bit 0 MTJ2: +1 where the MTJ read is P.
      const std::size_t bit0 = base + value_index(r, false), bit1 = base + value_index(r, true);
      value[bit0] = static_cast<float>(value_of(state[1]));
      value[bit1] = static_cast<float>(value_of(state[0]));
      if (variation_ || ir_drop_ || reference_error_) {
        float dev[2];
        for (int mtj = 0; mtj < 2; ++mtj) {
          const double g =
              variation_ ? conductance(hw, state[mtj], gaussian_at(chip_seed, streams::kCellResistance, lk, jk, rk, mtj),
                                       gaussian_at(chip_seed, streams::kCellTmr, lk, jk, rk, mtj), tmr_v)
                         : conductance(hw, state[mtj], 0.0, 0.0, tmr_v);
          dev[mtj] = static_cast<float>(readout.units(g) - value_of(state[mtj]));
          // Bit 1 reads MTJ1 (state[0]), bit 0 MTJ2.
          if (ir_drop_) cell_g[(static_cast<std::size_t>(j) * rows_ + r) * 2 + (mtj == 0 ? 1 : 0)] = g;
        }
        value[bit0] += dev[1] - ref[r];
        value[bit1] += dev[0] - ref[r];
      }
      if (systematic) {
        ideal[bit0] = static_cast<std::int8_t>(value_of(state[1]));
        ideal[bit1] = static_cast<std::int8_t>(value_of(state[0]));
      }
      if (err != nullptr) {
        // The reference's error, part of the value's systematic part (the wires' part below is
        // added to it: both sides of its difference read through the same reference).
        part[bit0] -= err[r];
        part[bit1] -= err[r];
      }
    }
  }
  if (ir_drop_) {
    // Each tile's reads through its wires (ir_drop.h's fast model); the wires' part of a value
    // is what they change of it.
    std::map<const IrDropMap*, std::size_t> relief_of_map;  // the first tile's relief of each shape
    for (int rt = 0; rt < row_tiles_; ++rt) {
      const int r0 = rt * tile_rows_, n = std::min(tile_rows_, rows_ - r0);
      for (int ct = 0; ct < col_tiles; ++ct) {
        const int c0 = ct * tile_cols, m = std::min(tile_cols, cols_ - c0);
        const auto map = ir_drop_map(n, m, readout.g_p, readout.g_ap, hw.crossbar.wire_resistance_ohm,
                                     hw.crossbar.read_voltage_v);
        std::vector<double> g(static_cast<std::size_t>(n) * m * 2), ref_p(static_cast<std::size_t>(n)), ref_ap(static_cast<std::size_t>(n));
        for (int r = 0; r < n; ++r) {
          const std::size_t ref_at = (static_cast<std::size_t>(ct) * rows_ + r0 + r) * 2;
          ref_p[static_cast<std::size_t>(r)] = ref_g[ref_at];
          ref_ap[static_cast<std::size_t>(r)] = ref_g[ref_at + 1];
          for (int c = 0; c < m; ++c) {
            for (int one = 0; one < 2; ++one) {
              g[(static_cast<std::size_t>(r) * m + c) * 2 + one] = cell_g[(static_cast<std::size_t>(c0 + c) * rows_ + r0 + r) * 2 + one];
            }
          }
        }
        const TileReads reads = fast_tile_reads(*map, g, ref_p, ref_ap);
        // The relief depends on the tile's shape alone (its map): every tile of one shape shares
        // one, its serial too, so that a driven pattern is solved once for all of them (under
        // spatial masks the row tiles of a window mostly drive one pattern, the mask's).
        if (const auto same = relief_of_map.find(map.get()); same != relief_of_map.end()) {
          relief_.push_back(relief_[same->second]);
        } else {
          relief_of_map.emplace(map.get(), relief_.size());
          relief_.push_back(bit_line_relief(*map));
        }
        const double e = error_of(r0, ct);  // the reference's error acts on its current as read
        for (int r = 0; r < n; ++r) {
          for (int c = 0; c < m; ++c) {
            for (int one = 0; one < 2; ++one) {
              const std::size_t at = static_cast<std::size_t>(c0 + c) * column_bytes() + value_index(r0 + r, one != 0);
              const float wired =
                  static_cast<float>((reads.cell[(static_cast<std::size_t>(r) * m + c) * 2 + one] -
                                      (1.0 + e) * reads.ref[static_cast<std::size_t>(r) * 2 + one]) / readout.g_half);
              // The cell as read without wires, its device deviation and reference included.
              const float plain = value[at];
              part[at] += wired - plain;
              value[at] = wired;
            }
          }
        }
      }
    }
  }
  for (const auto& cells : stuck_) any_stuck_ = any_stuck_ || !cells.empty();
  // Dead tiles read nothing, whatever the cells were to hold.
  col_tiles_ = col_tiles;
  tile_cols_ = tile_cols;
  if (!dead_tiles.empty()) {
    dead_.assign(static_cast<std::size_t>(cols_), 0);
    dead_tile_.assign(static_cast<std::size_t>(row_tiles_) * col_tiles, 0);
  }
  for (const auto& [row_tile, col_tile] : dead_tiles) {
    dead_tile_[static_cast<std::size_t>(row_tile) * col_tiles + col_tile] = 1;
    const int c0 = col_tile * hw.crossbar.tile_cols, c1 = std::min(cols_, c0 + hw.crossbar.tile_cols);
    const int r0 = row_tile * tile_rows_, r1 = std::min(rows_, r0 + tile_rows_);
    for (int j = c0; j < c1; ++j) {
      dead_[static_cast<std::size_t>(j)] = 1;
      for (int r = r0; r < r1; ++r) {
        const std::size_t base = static_cast<std::size_t>(j) * column_bytes();
        value[base + value_index(r, false)] = value[base + value_index(r, true)] = 0.0f;
      }
    }
  }
  gain_ = crossbar_gain(hw);
  // One unit of column current: V * G_half, in uA.
  unit_ua_ = hw.crossbar.read_voltage_v * readout.g_half * 1e6;
  mid_units_ = readout.g_mid / readout.g_half;
  // Fixed point: the largest scale (64, 32, 16, 8 units per dot unit) that holds the largest
  // |value|; beyond 127 / 8 (absurd variation) values saturate.
  float largest = 0.0f;
  for (float v : value) largest = std::max(largest, std::fabs(v));
  cell_scale_ = 64;
  while (cell_scale_ > 8 && largest * static_cast<float>(cell_scale_) > 127.0f) cell_scale_ /= 2;
  value_.resize(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    value_[i] = static_cast<std::int8_t>(std::clamp(std::lround(value[i] * static_cast<float>(cell_scale_)), -127L, 127L));
  }
  variances_.rounding = variation_ || ir_drop_ || reference_error_ ? 1.0 / (12.0 * cell_scale_ * cell_scale_) : 0.0;
  vnni_ = cpu_features().avx512_vnni;
  if (systematic) calibrate(hw, mapping, weights, part, ideal);
}

void CellArray::calibrate(const HardwareConfig& hw, const LayerMapping& mapping, const BitMatrix& weights,
                          const std::vector<float>& part, const std::vector<std::int8_t>& ideal) {
  calibrated_ = hw.crossbar.column_calibration == ColumnCalibration::gain_offset;
  calibration_.assign(2 * static_cast<std::size_t>(cols_) * row_tiles_, 0.0);
  systematic_.assign(static_cast<std::size_t>(cols_), 0.0);
  centre_.assign(3 * static_cast<std::size_t>(cols_), 0.0);
  // The devices' sums per kernel tap where the rows are a convolution's taps (crossbar_screen.h).
  const int tap_rows = mapping.in_channels;
  if (mapping.kernel >= 1 && mapping.kernel <= 5 && tap_rows > 0 && tap_rows * mapping.kernel * mapping.kernel == rows_) {
    taps_ = mapping.kernel * mapping.kernel;
    tap_deviation_.assign(2 * static_cast<std::size_t>(cols_) * taps_, 0.0);
  }
  const double scale = cell_scale_;
  std::vector<double> q(column_bytes(), 0.0);  // per row and input bit: the systematic deviation
  for (int j = 0; j < cols_; ++j) {
    const std::size_t base = static_cast<std::size_t>(j) * column_bytes();
    const std::int8_t* v = column_values(j);
    double constant = 0.0, sum_p = 0.0, sum_ap = 0.0;
    int reads_p = 0, reads_ap = 0;
    for (int t = 0; t < row_tiles_; ++t) {
      const int r0 = t * tile_rows_, r1 = std::min(rows_, r0 + tile_rows_);
      double gain = 1.0, offset = 0.0;
      if (calibrated_) {
        // Every row driven with the column's own weights (the input the chip stores: all match)
        // and with their complement (all mismatch), read as stored.
        double plus = 0.0, minus = 0.0;
        for (int r = r0; r < r1; ++r) {
          const bool w = weights.get(j, r);
          plus += v[value_index(r, w)] / scale;
          minus += v[value_index(r, !w)] / scale;
        }
        const int n = r1 - r0;
        gain = (plus - minus) / (2.0 * n);
        offset = 0.5 * (plus + minus);
        // A tile that barely responds (dead, or its column stuck) cannot be corrected: left as read.
        if (!(gain > 0.05)) gain = 1.0, offset = 0.0;
      }
      calibration_[2 * (static_cast<std::size_t>(j) * row_tiles_ + t)] = gain;
      calibration_[2 * (static_cast<std::size_t>(j) * row_tiles_ + t) + 1] = offset;
      constant -= offset / gain;
      for (int r = r0; r < r1; ++r) {
        double device[2];
        for (int one = 0; one < 2; ++one) {
          const std::size_t at = value_index(r, one != 0);
          const double w = part.empty() ? 0.0 : part[base + at];
          q[at] = ideal[base + at] * (1.0 / gain - 1.0) + w / gain;
          (ideal[base + at] > 0 ? sum_p : sum_ap) += q[at];
          ++(ideal[base + at] > 0 ? reads_p : reads_ap);
          // What is left of the value as stored (rounded): the devices', through the gain.
          device[one] = (v[at] / scale - ideal[base + at] - w) / gain;
        }
        if (taps_ > 0) {
          double* sums = tap_deviation_.data() + 2 * (static_cast<std::size_t>(j) * taps_ + r / tap_rows);
          sums[0] += device[0];
          sums[1] += device[1] - device[0];
        }
      }
    }
    // The centre and what it leaves (cell_array.h).
    const double mean_p = reads_p > 0 ? sum_p / reads_p : 0.0, mean_ap = reads_ap > 0 ? sum_ap / reads_ap : 0.0;
    double bound = 0.0;
    for (int r = 0; r < rows_; ++r) {
      double worst = 0.0;
      for (int one = 0; one < 2; ++one) {
        const std::size_t at = value_index(r, one != 0);
        worst = std::max(worst, std::fabs(q[at] - (ideal[base + at] > 0 ? mean_p : mean_ap)));
      }
      bound += worst;
    }
    systematic_[static_cast<std::size_t>(j)] = bound;
    // The relief is added to the tile sums before the calibration divides them by the gain.
    for (int t = 0; t < row_tiles_; ++t) largest_inverse_gain_ = std::max(largest_inverse_gain_, 1.0 / calibration_gain(j, t));
    centre_[3 * static_cast<std::size_t>(j)] = constant;
    centre_[3 * static_cast<std::size_t>(j) + 1] = 0.5 * (mean_p + mean_ap);
    centre_[3 * static_cast<std::size_t>(j) + 2] = 0.5 * (mean_p - mean_ap);
  }
}

// A window's relief in every tile: per column tile, each row's beta (1 / cell_scale units) as a
// byte (beta is a difference of two bit-line voltages, each between ground and about the read
// voltage, in read-voltage units: |beta| x cell_scale <= 64 or a little more), 0 in tiles every
// row of which is driven and in dead tiles (add_relief skips those); per
// row tile and column tile, the part every column shares (base); the bound relief_bound gives,
// per row tile the largest over its column tiles of |shared| + sum over driven rows of |beta|.
struct CellArray::WindowRelief {
  std::uint64_t serial = 0;  // the first tile's BitLineRelief's: the cell array it is of
  std::vector<BitWord> keep;
  AlignedVector<std::int8_t> beta;  // column tiles x padded rows
  std::vector<std::int32_t> base;   // row tiles x column tiles
  double bound = 0.0;
  bool any = false;  // some tile has undriven rows
};

void CellArray::tile_sums_reference(const PatchRows& patches, int m, int j, std::int32_t* sums) const {
  const std::int8_t* v = column_values(j);
  for (int t = 0; t < row_tiles_; ++t) {
    std::int32_t sum = 0;
    for (int r = t * tile_rows_; r < std::min(rows_, (t + 1) * tile_rows_); ++r) {
      if (patches.driven(m, r)) sum += v[value_index(r, patches.sign(m, r))];
    }
    sums[t] = sum;
  }
  if (ir_drop_) add_relief(patches, m, &j, 1, sums);
}

void CellArray::tile_sums(const PatchRows& patches, int m, const int* columns, int count, std::int32_t* sums) const {
  if (vnni_) {
    // IR drop's relief in the same pass over the rows.
    const WindowRelief* relief = ir_drop_ ? &window_relief(patches.keep_row(m)) : nullptr;
    const bool fused = relief != nullptr && relief->any;
    ReliefBytes bytes;
    if (fused) {
      bytes.beta = relief->beta.data();
      bytes.tile_stride = static_cast<std::size_t>(padded_rows_);
      bytes.tile_cols = tile_cols_;
      bytes.weights = weights_.row(0);
      bytes.weight_stride = static_cast<std::size_t>(weights_.words);
      bytes.base = relief->base.data();
      bytes.col_tiles = col_tiles_;
    }
    if (tile_sums_vnni(patches.sign_row(m), patches.keep_row(m), value_.data(), column_bytes(), columns, count,
                       padded_rows_ / kBitsPerWord, tile_rows_ / kBitsPerWord, row_tiles_, sums,
                       fused ? &bytes : nullptr)) {
      return;
    }
  }
  std::int32_t tile[kMaxTiles];
  for (int i = 0; i < count; ++i) {
    tile_sums_reference(patches, m, columns[i], tile);  // its relief included
    for (int t = 0; t < row_tiles_; ++t) sums[tile_sum_index(i, t, count, row_tiles_)] = tile[t];
  }
}

namespace {
// What one tile's relief is for one driven pattern: beta in 1 / cell_scale units rounded to
// integers (whole 64-row words, zeros past the tile), so that any order of summing gives the same
// integers; the part every column shares, less the driven rows' betas (base); and the bound.
struct ReliefPattern {
  std::uint64_t serial = 0;  // the BitLineRelief's (0: empty)
  std::vector<BitWord> driven;
  std::vector<std::int32_t> beta_q;
  std::vector<std::int8_t> beta_bytes;  // beta_q as the SIMD sums take it
  std::int32_t overflow = 0;            // the first beta_q that does not fit a byte (0: all fit)
  std::int32_t base = 0;
  double bound = 0.0;
};

// The tile's relief for the window's driven rows [r0, r0 + n), computed or found again: windows
// under spatial masks drive one of a few patterns (the interior's, and those of the map's borders
// and corners), so each thread keeps the last kPatterns patterns of each tile it met.
constexpr int kPatterns = 16;
const ReliefPattern& relief_pattern(const BitLineRelief& relief, const BitWord* keep, int words, int n, int cell_scale) {
  struct Kept {
    std::array<ReliefPattern, kPatterns> patterns;
    int next = 0;  // the one to replace
  };
  thread_local std::unordered_map<std::uint64_t, Kept> last;
  if (last.size() > 4096) last.clear();
  Kept& kept = last[relief.serial];
  for (const ReliefPattern& q : kept.patterns) {
    if (q.serial == relief.serial && static_cast<int>(q.driven.size()) == words && same_words(keep, q.driven.data(), words)) return q;
  }
  ReliefPattern& p = kept.patterns[static_cast<std::size_t>(kept.next)];
  kept.next = (kept.next + 1) % kPatterns;
  p.serial = relief.serial;
  p.driven.assign(keep, keep + words);
  thread_local std::vector<char> driven;
  thread_local std::vector<double> beta, beta_p, beta_ap;
  driven.resize(static_cast<std::size_t>(n));
  beta.resize(static_cast<std::size_t>(n));
  beta_p.resize(static_cast<std::size_t>(n));
  beta_ap.resize(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) driven[static_cast<std::size_t>(r)] = (keep[r / kBitsPerWord] >> (r % kBitsPerWord)) & 1u;
  const double shared = relief.betas(driven.data(), beta.data(), beta_p.data(), beta_ap.data());
  p.beta_q.assign(static_cast<std::size_t>(words) * kBitsPerWord, 0);
  p.base = static_cast<std::int32_t>(std::lround(shared * cell_scale));
  p.bound = std::fabs(shared);
  p.beta_bytes.assign(static_cast<std::size_t>(n), 0);
  p.overflow = 0;
  for (int r = 0; r < n; ++r) {
    const auto i = static_cast<std::size_t>(r);
    p.beta_q[i] = static_cast<std::int32_t>(std::lround(beta[i] * cell_scale));
    if (p.overflow == 0 && (p.beta_q[i] < -128 || p.beta_q[i] > 127)) p.overflow = p.beta_q[i];
    p.beta_bytes[i] = static_cast<std::int8_t>(p.beta_q[i]);
    if (driven[i]) {
      p.base -= p.beta_q[i];
      p.bound += std::fabs(beta[i]);
    }
  }
  return p;
}

// Whether every row of [r0, r0 + n) is driven (the map's own case: nothing to give back).
bool all_driven(const BitWord* keep, int n) {
  for (int word = 0; word * kBitsPerWord < n; ++word) {
    const int bits = std::min(kBitsPerWord, n - word * kBitsPerWord);
    const BitWord full = bits == kBitsPerWord ? ~BitWord{0} : (BitWord{1} << bits) - 1;
    if ((keep[word] & full) != full) return false;
  }
  return true;
}
}  // namespace

void CellArray::add_relief(const PatchRows& patches, int m, const int* columns, int count, std::int32_t* sums) const {
  for (int t = 0; t < row_tiles_; ++t) {
    const int r0 = t * tile_rows_, n = std::min(tile_rows_, rows_ - r0), words = words_for_bits(n);
    const BitWord* x = patches.sign_row(m) + r0 / kBitsPerWord;
    const BitWord* keep = patches.keep_row(m) + r0 / kBitsPerWord;
    if (all_driven(keep, n)) continue;
    const ReliefPattern* p = nullptr;
    int solved = -1;  // the column tile p is for
    for (int i = 0; i < count; ++i) {
      const int j = columns[i], ct = j / tile_cols_;
      const std::size_t tile = static_cast<std::size_t>(t) * col_tiles_ + ct;
      if (!dead_tile_.empty() && dead_tile_[tile]) continue;
      if (ct != solved) {
        p = &relief_pattern(relief_[tile], keep, words, n, cell_scale_);
        solved = ct;
      }
      // sum over driven rows of beta s_r = 2 x (the matched rows' betas) - (every driven row's).
      const BitWord* wj = weights_.row(j) + r0 / kBitsPerWord;
      std::int32_t matched = 0;
      if (!vnni_ || !matched_sum_avx512(x, wj, keep, p->beta_q.data(), words, matched)) {
        matched = matched_sum(x, wj, keep, p->beta_q.data(), words);
      }
      sums[tile_sum_index(i, t, count, row_tiles_)] += p->base + 2 * matched;
    }
  }
}

double CellArray::relief_bound(const PatchRows& patches, int m) const {
  if (!ir_drop_) return 0.0;
  return window_relief(patches.keep_row(m)).bound * largest_inverse_gain_;
}


const CellArray::WindowRelief& CellArray::window_relief(const BitWord* keep) const {
  // Windows under spatial masks drive one of a few patterns per pass (the interior's and the
  // borders'), met in turn: the last kWindows are kept.
  constexpr int kWindows = 16;
  thread_local std::array<WindowRelief, kWindows> kept;
  thread_local int next = 0, last = 0;  // the slot to fill next, the one found last
  const std::uint64_t serial = relief_.front().serial;
  const int words = padded_rows_ / kBitsPerWord;
  const auto matches = [&](const WindowRelief& w) {
    return w.serial == serial && static_cast<int>(w.keep.size()) == words && same_words(keep, w.keep.data(), words);
  };
  // Consecutive windows mostly drive the same rows: the last one found first.
  if (matches(kept[static_cast<std::size_t>(last)])) return kept[static_cast<std::size_t>(last)];
  for (int i = 0; i < kWindows; ++i) {
    if (matches(kept[static_cast<std::size_t>(i)])) {
      last = i;
      return kept[static_cast<std::size_t>(i)];
    }
  }
  last = next;
  WindowRelief& w = kept[static_cast<std::size_t>(next)];
  next = (next + 1) % kWindows;
  w.serial = serial;
  w.keep.assign(keep, keep + words);
  w.beta.assign(static_cast<std::size_t>(col_tiles_) * padded_rows_, 0);
  w.base.assign(static_cast<std::size_t>(row_tiles_) * col_tiles_, 0);
  w.bound = 0.0;
  w.any = false;
  for (int t = 0; t < row_tiles_; ++t) {
    const int r0 = t * tile_rows_, n = std::min(tile_rows_, rows_ - r0), tile_words = words_for_bits(n);
    const BitWord* tile_keep = keep + r0 / kBitsPerWord;
    if (all_driven(tile_keep, n)) continue;
    w.any = true;
    double worst = 0.0;
    const ReliefPattern* p = nullptr;
    for (int ct = 0; ct < col_tiles_; ++ct) {
      const std::size_t tile = static_cast<std::size_t>(t) * col_tiles_ + ct;
      // Column tiles sharing the last one's relief share its pattern.
      if (p == nullptr || relief_[tile].serial != relief_[tile - 1].serial) {
        p = &relief_pattern(relief_[tile], tile_keep, tile_words, n, cell_scale_);
      }
      worst = std::max(worst, p->bound);
      if (!dead_tile_.empty() && dead_tile_[tile]) continue;
      w.base[tile] = p->base;
      if (p->overflow != 0) {
        throw Error("IR drop: a row's relief of " + std::to_string(p->overflow) + " / " + std::to_string(cell_scale_) +
                    " dot units exceeds a byte");
      }
      std::copy(p->beta_bytes.begin(), p->beta_bytes.end(), w.beta.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(ct) * padded_rows_ + r0));
    }
    w.bound += worst;
  }
  return w;
}

}  // namespace spinbayes
