#include "hw/crossbar.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "core/counter_rng.h"
#include "core/error.h"
#include "core/cpu_features.h"
#include "hw/mtj.h"
#include "model/dropout_mask.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SPINBAYES_CROSSBAR_AVX512 1
#else
#define SPINBAYES_CROSSBAR_AVX512 0
#endif

namespace spinbayes {

namespace {

constexpr std::uint64_t kCellResistance = name_tag("cell.rp");
constexpr std::uint64_t kCellTmr = name_tag("cell.tmr");
constexpr std::uint64_t kCellFault = name_tag("cell.fault");
constexpr std::uint64_t kReferenceResistance = name_tag("reference.rp");
constexpr std::uint64_t kReferenceTmr = name_tag("reference.tmr");
constexpr std::uint64_t kSenseOffset = name_tag("sense.offset");

// Conductances of the nominal cell at the read bias, and the dot-unit scale.
struct Readout {
  double g_p = 0, g_ap = 0, g_mid = 0, g_half = 0;
  explicit Readout(const HardwareConfig& hw) {
    const double v = hw.crossbar.read_voltage_v;
    g_p = 1.0 / resistance_ohm(hw.mtj, MtjState::parallel, v);
    g_ap = 1.0 / resistance_ohm(hw.mtj, MtjState::antiparallel, v);
    g_mid = 0.5 * (g_p + g_ap);
    g_half = 0.5 * (g_p - g_ap);
  }
  double units(double g) const { return (g - g_mid) / g_half; }
};

// The conductance of one MTJ in `state` with its own R_P and TMR (relative deviations nr, nt in
// standard normal units).
double conductance(const HardwareConfig& hw, MtjState state, double nr, double nt) {
  const double v = hw.crossbar.read_voltage_v;
  const double rp = hw.mtj.rp_ohm() * std::max(0.05, 1.0 + hw.mtj.sigma_rp * nr);
  if (state == MtjState::parallel) return 1.0 / rp;
  return 1.0 / (rp * (1.0 + tmr_at_bias(hw.mtj, v) * std::max(0.0, 1.0 + hw.mtj.sigma_tmr * nt)));
}

int value_of(MtjState s) { return s == MtjState::parallel ? 1 : -1; }

}  // namespace

CrossbarLayer::CrossbarLayer(const HardwareConfig& hw, const LayerMapping& mapping, const BitMatrix& weights,
                             std::uint64_t chip_seed, int layer)
    : rows_(mapping.rows),
      cols_(mapping.cols),
      padded_rows_(weights.words * kBitsPerWord),
      tile_rows_(hw.crossbar.tile_rows),
      row_tiles_(mapping.row_tiles),
      col_tiles_(mapping.col_tiles),
      output_(mapping.output),
      weights_(weights) {
  if (row_tiles_ > kMaxTiles) {
    throw Error(mapping.name + ": " + std::to_string(row_tiles_) + " row tiles exceed the simulator's " +
                std::to_string(kMaxTiles) + "; raise crossbar.tile_rows");
  }
  // ADC: codes -K..K at step full_scale / K, full scale +-tile_rows; exact integers when K >= tile_rows.
  const int k = ((1 << hw.crossbar.adc_bits) - 1) / 2;
  adc_levels_ = std::min(k, tile_rows_);
  adc_step_ = k >= tile_rows_ ? 1.0 : static_cast<double>(tile_rows_) / k;
  const bool adc = output_ || row_tiles_ > 1;

  const Readout readout(hw);
  const double sr = hw.mtj.sigma_rp, st = hw.mtj.sigma_tmr;
  const bool variation = sr > 0.0 || st > 0.0;
  const double stuck_p = hw.faults.cell_stuck_p, stuck_ap = hw.faults.cell_stuck_ap;
  const bool faults = stuck_p > 0.0 || stuck_ap > 0.0;
  const auto lk = static_cast<std::uint64_t>(layer);

  // First-order variance (dot units) of a P and an AP cell: g = 1 / R, so dg / g = -dR / R with
  // dR_P / R_P = sigma_rp n and dR_AP / R_AP = sigma_rp n + TMR sigma_tmr n' / (1 + TMR).
  const double tmr_v = tmr_at_bias(hw.mtj, hw.crossbar.read_voltage_v);
  const double var_p = std::pow(readout.g_p * sr / readout.g_half, 2);
  const double var_ap =
      std::pow(readout.g_ap / readout.g_half, 2) * (sr * sr + std::pow(tmr_v * st / (1.0 + tmr_v), 2));
  const double var_reference = 0.25 * (var_p + var_ap);

  // Reference columns: one per column tile, a P and an AP MTJ per row, averaged.
  std::vector<float> reference(static_cast<std::size_t>(col_tiles_) * padded_rows_, 0.0f);
  if (variation) {
    for (int ct = 0; ct < col_tiles_; ++ct) {
      for (int r = 0; r < rows_; ++r) {
        const auto key = static_cast<std::uint64_t>(r);
        double g = 0.0;
        for (int half = 0; half < 2; ++half) {
          const auto state = half == 0 ? MtjState::parallel : MtjState::antiparallel;
          g += 0.5 * conductance(hw, state, gaussian_at(chip_seed, kReferenceResistance, lk, ct, key, half),
                                 gaussian_at(chip_seed, kReferenceTmr, lk, ct, key, half));
        }
        reference[static_cast<std::size_t>(ct) * padded_rows_ + r] = static_cast<float>(readout.units(g));
      }
    }
  }

  stuck_.resize(static_cast<std::size_t>(cols_));
  dev_on_.assign(static_cast<std::size_t>(cols_) * padded_rows_, 0.0f);
  dev_off_.assign(static_cast<std::size_t>(cols_) * padded_rows_, 0.0f);
  screen_.assign(static_cast<std::size_t>(cols_), 0.0);
  offset_.assign(static_cast<std::size_t>(cols_), 0.0);
  // One unit of column current: V * G_half, in uA.
  const double unit_ua = hw.crossbar.read_voltage_v * readout.g_half * 1e6;
  for (int j = 0; j < cols_; ++j) {
    const auto jk = static_cast<std::uint64_t>(j);
    const std::size_t base = static_cast<std::size_t>(j) * padded_rows_;
    const float* ref = reference.data() + static_cast<std::size_t>(j / hw.crossbar.tile_cols) * padded_rows_;
    double variance = 0.0;
    for (int r = 0; r < rows_; ++r) {
      const auto rk = static_cast<std::uint64_t>(r);
      const bool plus = weights.get(j, r);
      MtjState state[2] = {plus ? MtjState::parallel : MtjState::antiparallel,
                           plus ? MtjState::antiparallel : MtjState::parallel};
      if (faults) {
        for (int mtj = 0; mtj < 2; ++mtj) {
          const double u = uniform_at(chip_seed, kCellFault, lk, jk, rk, mtj);
          if (u < stuck_p) {
            state[mtj] = MtjState::parallel;
          } else if (u < stuck_p + stuck_ap) {
            state[mtj] = MtjState::antiparallel;
          }
        }
        weights_.set(j, r, state[0] == MtjState::parallel);
        if (state[0] == state[1]) stuck_[static_cast<std::size_t>(j)].push_back({r, value_of(state[0])});
      }
      if (variation) {
        float dev[2];
        for (int mtj = 0; mtj < 2; ++mtj) {
          const double g = conductance(hw, state[mtj], gaussian_at(chip_seed, kCellResistance, lk, jk, rk, mtj),
                                       gaussian_at(chip_seed, kCellTmr, lk, jk, rk, mtj));
          dev[mtj] = static_cast<float>(readout.units(g) - value_of(state[mtj]));
        }
        dev_on_[base + static_cast<std::size_t>(r)] = dev[0] - ref[r];
        dev_off_[base + static_cast<std::size_t>(r)] = dev[1] - ref[r];
        const double v_on = state[0] == MtjState::parallel ? var_p : var_ap;
        const double v_off = state[1] == MtjState::parallel ? var_p : var_ap;
        variance += std::max(v_on, v_off) + var_reference;
      }
    }
    if (row_tiles_ == 1 && !output_) {
      offset_[static_cast<std::size_t>(j)] =
          hw.crossbar.sense_offset_sigma_ua / unit_ua * gaussian_at(chip_seed, kSenseOffset, lk, jk);
    }
    // Largest change the analog path can make to the summed column, at screen_sigmas: the
    // deviation sum, plus half an ADC step per tile for rounding once the sum is not an integer.
    const bool rounding = adc && (adc_step_ != 1.0 || variation);
    screen_[static_cast<std::size_t>(j)] =
        hw.crossbar.screen_sigmas <= 0.0
            ? -1.0
            : hw.crossbar.screen_sigmas * std::sqrt(variance) + (rounding ? 0.5 * adc_step_ * row_tiles_ : 0.0);
  }
  bool offsets = false;
  for (double o : offset_) offsets = offsets || o != 0.0;
  exact_ = !variation && !faults && !offsets && (!adc || adc_step_ == 1.0);
  packed_ = pack_operand(weights_);
}

void CrossbarLayer::count_reads(const Patches& patches, int m, LayerEvents& events) const {
  const auto kept = static_cast<std::uint64_t>(patches.kept[static_cast<std::size_t>(m)]);
  events.wordline_drives += kept * static_cast<std::uint64_t>(col_tiles_);
  events.cell_reads += kept * static_cast<std::uint64_t>(cols_);
  if (output_ || row_tiles_ > 1) {
    events.adc_conversions += static_cast<std::uint64_t>(cols_) * row_tiles_;
    events.digital_accumulates += static_cast<std::uint64_t>(cols_) * row_tiles_;
  } else {
    events.sense_decisions += static_cast<std::uint64_t>(cols_);
  }
}

std::int32_t CrossbarLayer::stuck_correction(const Patches& patches, int m, int j, int r0, int r1) const {
  // The GEMM counted x * value for a cell that contributes `value` whatever x: add the difference,
  // 2 * value, where the input bit is 0 (x = -1).
  std::int32_t correction = 0;
  for (const StuckCell& c : stuck_[static_cast<std::size_t>(j)]) {
    if (c.row < r0 || c.row >= r1) continue;
    if (patches.keep.get(m, c.row) && !patches.signs.get(m, c.row)) correction += 2 * c.value;
  }
  return correction;
}

std::int32_t CrossbarLayer::tile_dot(const Patches& patches, int m, int j, int t) const {
  const int r0 = t < 0 ? 0 : t * tile_rows_, r1 = t < 0 ? rows_ : std::min(rows_, r0 + tile_rows_);
  const BitWord* x = patches.signs.row(m);
  const BitWord* k = patches.keep.row(m);
  const BitWord* w = weights_.row(j);
  int kept = 0, mismatched = 0;
  for (int word = r0 / kBitsPerWord; word < (r1 + kBitsPerWord - 1) / kBitsPerWord; ++word) {
    kept += std::popcount(k[word]);
    mismatched += std::popcount((x[word] ^ w[word]) & k[word]);
  }
  return kept - 2 * mismatched + stuck_correction(patches, m, j, r0, r1);
}

#if SPINBAYES_CROSSBAR_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {
// Per tile of `tile_words` words: the exact partial dot (driven rows - 2 x mismatches, by
// popcount) and the analog deviation, sixteen rows at a time: the input bits pick MTJ1's or
// MTJ2's deviation (a blend), the keep bits which rows are driven (a masked add).
__attribute__((target("avx512f,popcnt"))) void tile_sums_avx512(const BitWord* x, const BitWord* k, const BitWord* w,
                                                                 const float* on, const float* off, int words,
                                                                 int tile_words, std::int32_t* dots, double* devs) {
  for (int w0 = 0, t = 0; w0 < words; w0 += tile_words, ++t) {
    __m512 acc = _mm512_setzero_ps();
    long long kept = 0, mismatched = 0;
    const int w1 = std::min(words, w0 + tile_words);
    for (int word = w0; word < w1; ++word) {
      const BitWord kw = k[word], xw = x[word];
      if (kw == 0) continue;
      kept += _mm_popcnt_u64(kw);
      mismatched += _mm_popcnt_u64((xw ^ w[word]) & kw);
      for (int g = 0; g < 4; ++g) {
        const auto kg = static_cast<__mmask16>(kw >> (16 * g));
        if (kg == 0) continue;
        const auto xg = static_cast<__mmask16>(xw >> (16 * g));
        const std::size_t r = static_cast<std::size_t>(word) * kBitsPerWord + 16 * static_cast<std::size_t>(g);
        const __m512 v = _mm512_mask_blend_ps(xg, _mm512_loadu_ps(off + r), _mm512_loadu_ps(on + r));
        acc = _mm512_mask_add_ps(acc, kg, acc, v);
      }
    }
    dots[t] = static_cast<std::int32_t>(kept - 2 * mismatched);
    devs[t] = _mm512_reduce_add_ps(acc);
  }
}
}  // namespace
#pragma GCC diagnostic pop
#endif

void CrossbarLayer::tile_sums(const Patches& patches, int m, int j, std::int32_t* dots, double* devs) const {
#if SPINBAYES_CROSSBAR_AVX512
  if (cpu_features().avx512dq && cpu_features().popcnt) {
    // Tiles start on word boundaries (tile_rows is a multiple of 64); rows past rows_ are never kept.
    const std::size_t base = static_cast<std::size_t>(j) * padded_rows_;
    tile_sums_avx512(patches.signs.row(m), patches.keep.row(m), weights_.row(j), dev_on_.data() + base,
                     dev_off_.data() + base, patches.signs.words, tile_rows_ / kBitsPerWord, dots, devs);
    if (!stuck_[static_cast<std::size_t>(j)].empty()) {
      for (int t = 0; t < row_tiles_; ++t) {
        dots[t] += stuck_correction(patches, m, j, t * tile_rows_, std::min(rows_, (t + 1) * tile_rows_));
      }
    }
    return;
  }
#endif
  tile_sums_reference(patches, m, j, dots, devs);
}

void CrossbarLayer::tile_sums_reference(const Patches& patches, int m, int j, std::int32_t* dots, double* devs) const {
  const std::size_t base = static_cast<std::size_t>(j) * padded_rows_;
  for (int t = 0; t < row_tiles_; ++t) {
    double sum = 0.0;
    for (int r = t * tile_rows_; r < std::min(rows_, (t + 1) * tile_rows_); ++r) {
      if (!patches.keep.get(m, r)) continue;
      sum += patches.signs.get(m, r) ? dev_on_[base + r] : dev_off_[base + r];
    }
    devs[t] = sum;
    dots[t] = tile_dot(patches, m, j, t);
  }
}

double CrossbarLayer::column_sum(const Patches& patches, int m, int j, std::int32_t dot) const {
  std::int32_t dots[kMaxTiles];
  double devs[kMaxTiles];
  tile_sums(patches, m, j, dots, devs);
  if (row_tiles_ == 1 && !output_) return dot + devs[0];  // a sense amplifier: no ADC
  double sum = 0.0;
  for (int t = 0; t < row_tiles_; ++t) sum += quantize(dots[t] + devs[t]);
  return sum;
}

double CrossbarLayer::quantize(double value) const {
  // Round half away from zero (the ADC's comparator ladder has no notion of ties-to-even).
  const double scaled = value / adc_step_;
  const double code = std::clamp(static_cast<double>(static_cast<long long>(scaled + (scaled < 0 ? -0.5 : 0.5))), static_cast<double>(-adc_levels_),
                                 static_cast<double>(adc_levels_));
  return code * adc_step_;
}

void CrossbarLayer::sense_row(const Patches& patches, int m, const std::int32_t* dots, const std::int32_t* sign,
                              const std::int32_t* bound, BitWord* out, LayerEvents& events) const {
  count_reads(patches, m, events);
  if (exact_) {
    threshold_bits(dots, sign, bound, cols_, out);
    return;
  }
  const bool single = row_tiles_ == 1;
  for (int j = 0; j < cols_; ++j) {
    const auto jj = static_cast<std::size_t>(j);
    const std::int32_t dot = dots[j] + (stuck_[jj].empty() ? 0 : stuck_correction(patches, m, j, 0, rows_));
    // The comparison sign * value >= bound - 1/2 (halfway between integer dots), as a margin.
    const double margin = sign[j] * static_cast<double>(dot) - bound[j] + 0.5 + (single ? offset_[jj] : 0.0);
    bool fire;
    if (screen_[jj] >= 0.0 && std::fabs(margin) > screen_[jj]) {
      fire = margin >= 0.0;
    } else {
      const double sum = column_sum(patches, m, j, dot);
      fire = sign[j] * sum - bound[j] + 0.5 + (single ? offset_[jj] : 0.0) >= 0.0;
    }
    if (fire) out[j / kBitsPerWord] |= BitWord{1} << (j % kBitsPerWord);
  }
}

void CrossbarLayer::read_row(const Patches& patches, int m, const std::int32_t* dots, double* sums,
                             LayerEvents& events) const {
  count_reads(patches, m, events);
  for (int j = 0; j < cols_; ++j) {
    const auto jj = static_cast<std::size_t>(j);
    const std::int32_t dot = dots[j] + (stuck_[jj].empty() ? 0 : stuck_correction(patches, m, j, 0, rows_));
    sums[j] = exact_ ? dot : column_sum(patches, m, j, dot);
  }
}

}  // namespace spinbayes
