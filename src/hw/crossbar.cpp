#include "hw/crossbar.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>

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
  // Read values per column and row, [input bit 0, input bit 1], in dot units before fixed point.
  std::vector<float> value(static_cast<std::size_t>(cols_) * 2 * padded_rows_, 0.0f);
  column_variance_.assign(static_cast<std::size_t>(cols_), 0.0);
  offset_.assign(static_cast<std::size_t>(cols_), 0.0);
  // One unit of column current: V * G_half, in uA.
  const double unit_ua = hw.crossbar.read_voltage_v * readout.g_half * 1e6;
  for (int j = 0; j < cols_; ++j) {
    const auto jk = static_cast<std::uint64_t>(j);
    const std::size_t base = static_cast<std::size_t>(j) * 2 * padded_rows_;
    const float* ref = reference.data() + static_cast<std::size_t>(j / hw.crossbar.tile_cols) * padded_rows_;
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
      // Input bit 1 reads MTJ1, bit 0 MTJ2: +1 where the MTJ read is P.
      const std::size_t bit0 = base + value_index(r, false), bit1 = base + value_index(r, true);
      value[bit0] = static_cast<float>(value_of(state[1]));
      value[bit1] = static_cast<float>(value_of(state[0]));
      if (variation) {
        float dev[2];
        for (int mtj = 0; mtj < 2; ++mtj) {
          const double g = conductance(hw, state[mtj], gaussian_at(chip_seed, kCellResistance, lk, jk, rk, mtj),
                                       gaussian_at(chip_seed, kCellTmr, lk, jk, rk, mtj));
          dev[mtj] = static_cast<float>(readout.units(g) - value_of(state[mtj]));
        }
        value[bit0] += dev[1] - ref[r];
        value[bit1] += dev[0] - ref[r];
        // A cell whose MTJs hold the same state may read P where the dot counts a mismatch.
        if (state[0] == state[1]) column_variance_[static_cast<std::size_t>(j)] += var_p;
      }
    }
    if (row_tiles_ == 1 && !output_) {
      offset_[static_cast<std::size_t>(j)] =
          hw.crossbar.sense_offset_sigma_ua / unit_ua * gaussian_at(chip_seed, kSenseOffset, lk, jk);
    }
  }
  // Fixed point: the largest scale (64, 32, 16, 8 units per dot unit) that holds the largest
  // |value|; beyond 127 / 8 (absurd variation) values saturate.
  float largest = 0.0f;
  for (float v : value) largest = std::max(largest, std::fabs(v));
  cell_scale_ = 64;
  while (cell_scale_ > 8 && largest * static_cast<float>(cell_scale_) > 127.0f) cell_scale_ /= 2;
  cell_value_.resize(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    cell_value_[i] = static_cast<std::int8_t>(std::clamp(std::lround(value[i] * static_cast<float>(cell_scale_)), -127L, 127L));
  }
  // ADC: code = round(sum / cell_scale / adc_step), with adc_step = tile_rows / K, as one exact
  // product over one division.
  adc_multiplier_ = k >= tile_rows_ ? 1.0 : static_cast<double>(k);
  adc_divisor_ = static_cast<double>(cell_scale_) * (k >= tile_rows_ ? 1.0 : static_cast<double>(tile_rows_));
  // Dividing by a power of two is multiplying by its exact reciprocal: the same quotient, faster.
  adc_divisor_power_of_two_ = std::exp2(std::round(std::log2(adc_divisor_))) == adc_divisor_;
  // The screen (within_screen): first-order variances of a matching read (P), a mismatching one
  // (AP), a row's reference cells and the fixed-point rounding of one value.
  screen_sigmas_ = hw.crossbar.screen_sigmas;
  variance_match_ = var_p;
  variance_mismatch_ = var_ap;
  variance_reference_ = var_reference;
  variance_rounding_ = variation ? 1.0 / (12.0 * cell_scale_ * cell_scale_) : 0.0;
  // ADC rounding, once the sum is not an integer: step^2 / 12 per tile (see the header).
  if (adc && (adc_step_ != 1.0 || variation)) {
    for (double& v : column_variance_) v += row_tiles_ * adc_step_ * adc_step_ / 12.0;
  }
  kernel_ = mapping.kernel;
  tap_rows_ = mapping.in_channels;
  conditioned_ = kernel_ >= 1 && kernel_ <= 5 && tap_rows_ * kernel_ * kernel_ == rows_;
  if (conditioned_) conditioned_sums();
  vnni_ = cpu_features().avx512_vnni;
  popcnt_ = cpu_features().popcnt;
  no_sums_.assign(static_cast<std::size_t>(cols_), 0);
  bool offsets = false;
  for (double o : offset_) offsets = offsets || o != 0.0;
  for (const auto& cells : stuck_) stuck_cells_ = stuck_cells_ || !cells.empty();
  exact_ = !variation && !faults && !offsets && (!adc || adc_step_ == 1.0);
  packed_ = pack_operand(weights_);
}

void CrossbarLayer::conditioned_sums() {
  // delta[x] = stored value - cell_scale x ideal value of the MTJ read for input bit x: MTJ1
  // holds the (fault-corrected) weight, MTJ2 its complement, or both the stuck value.
  const int taps = kernel_ * kernel_;
  const std::size_t rects = static_cast<std::size_t>(taps) * taps;
  rect_s0_.assign(rects * cols_, 0);
  rect_se_.assign(rects * cols_, 0);
  std::vector<std::int32_t> tap_s0(static_cast<std::size_t>(taps)), tap_se(static_cast<std::size_t>(taps));
  std::vector<char> stuck(static_cast<std::size_t>(rows_));
  for (int j = 0; j < cols_; ++j) {
    const std::int8_t* v = cell_value_.data() + static_cast<std::size_t>(j) * 2 * padded_rows_;
    std::fill(stuck.begin(), stuck.end(), 0);
    for (const StuckCell& c : stuck_[static_cast<std::size_t>(j)]) stuck[static_cast<std::size_t>(c.row)] = 1;
    std::fill(tap_s0.begin(), tap_s0.end(), 0);
    std::fill(tap_se.begin(), tap_se.end(), 0);
    for (int r = 0; r < rows_; ++r) {
      const int ideal1 = weights_.get(j, r) ? 1 : -1;
      const int ideal0 = stuck[static_cast<std::size_t>(r)] ? ideal1 : -ideal1;
      const int delta0 = v[value_index(r, false)] - cell_scale_ * ideal0;
      const int delta1 = v[value_index(r, true)] - cell_scale_ * ideal1;
      tap_s0[static_cast<std::size_t>(r / tap_rows_)] += delta0;
      tap_se[static_cast<std::size_t>(r / tap_rows_)] += delta1 - delta0;
    }
    for (int ky0 = 0; ky0 < kernel_; ++ky0) {
      for (int ky1 = ky0; ky1 < kernel_; ++ky1) {
        for (int kx0 = 0; kx0 < kernel_; ++kx0) {
          for (int kx1 = kx0; kx1 < kernel_; ++kx1) {
            std::int32_t s0 = 0, se = 0;
            for (int ky = ky0; ky <= ky1; ++ky) {
              for (int kx = kx0; kx <= kx1; ++kx) {
                s0 += tap_s0[static_cast<std::size_t>(ky * kernel_ + kx)];
                se += tap_se[static_cast<std::size_t>(ky * kernel_ + kx)];
              }
            }
            const std::size_t at = static_cast<std::size_t>(rectangle(ky0, ky1, kx0, kx1)) * cols_ + j;
            rect_s0_[at] = s0;
            rect_se_[at] = se;
          }
        }
      }
    }
  }
}

namespace {
// Set bits of row among bits [begin, end).
inline __attribute__((always_inline)) int count_bits(const BitWord* row, int begin, int end) {
  int n = 0;
  for (int word = begin / kBitsPerWord; word * kBitsPerWord < end; ++word) {
    BitWord bits = row[word];
    const int lo = word * kBitsPerWord;
    if (begin > lo) bits &= ~BitWord{0} << (begin - lo);
    if (end < lo + kBitsPerWord) bits &= (BitWord{1} << (end - lo)) - 1;
    n += std::popcount(bits);
  }
  return n;
}

// A window's driven rows by kernel tap: whether every tap they touch holds the same count kc and
// those taps form a rectangle of the kernel (rows ky0..ky1, columns kx0..kx1, `valid` taps), and
// n1 = |keep and x|.
struct TapPattern {
  bool uniform = false;
  int kc = 0, valid = 0, ky0 = 0, ky1 = -1, kx0 = 0, kx1 = -1, n1 = 0;
};
inline __attribute__((always_inline)) TapPattern tap_pattern_body(const BitWord* keep, const BitWord* x, int words,
                                                                  int kernel, int tap_rows) {
  // Consecutive windows mostly drive the same rows (spatial masks, away from the borders): the
  // taps of the last keep row seen on this thread are reused when the row is the same.
  thread_local std::vector<BitWord> last_keep;
  thread_local TapPattern last;
  thread_local int last_kernel = 0, last_tap_rows = 0;
  TapPattern p;
  if (kernel == last_kernel && tap_rows == last_tap_rows && static_cast<int>(last_keep.size()) == words &&
      std::equal(keep, keep + words, last_keep.begin())) {
    p = last;
  } else {
    p.ky0 = p.kx0 = kernel;
    bool uniform = true;
    for (int t = 0; t < kernel * kernel && uniform; ++t) {
      const int n = count_bits(keep, t * tap_rows, (t + 1) * tap_rows);
      if (n == 0) continue;
      if (p.kc == 0) p.kc = n;
      uniform = n == p.kc;
      ++p.valid;
      p.ky0 = std::min(p.ky0, t / kernel), p.ky1 = std::max(p.ky1, t / kernel);
      p.kx0 = std::min(p.kx0, t % kernel), p.kx1 = std::max(p.kx1, t % kernel);
    }
    p.uniform = uniform && p.valid > 0 && p.valid == (p.ky1 - p.ky0 + 1) * (p.kx1 - p.kx0 + 1);
    last_keep.assign(keep, keep + words);
    last = p;
    last_kernel = kernel;
    last_tap_rows = tap_rows;
  }
  if (p.uniform) {
    for (int word = 0; word < words; ++word) p.n1 += std::popcount(keep[word] & x[word]);
  }
  return p;
}
// The same counts with the POPCNT instruction (the baseline build counts bits in a library call).
TapPattern tap_pattern_plain(const BitWord* keep, const BitWord* x, int words, int kernel, int tap_rows) {
  return tap_pattern_body(keep, x, words, kernel, tap_rows);
}
#if SPINBAYES_CROSSBAR_AVX512
__attribute__((target("popcnt"))) TapPattern tap_pattern_popcnt(const BitWord* keep, const BitWord* x, int words,
                                                                 int kernel, int tap_rows) {
  return tap_pattern_body(keep, x, words, kernel, tap_rows);
}
#endif
}  // namespace

CrossbarLayer::ScreenTerms CrossbarLayer::screen_terms(const Patches& patches, int m) const {
  const int k = patches.kept[static_cast<std::size_t>(m)];
  // The ensemble screen: centred on the dot; of k driven rows, (k + dot) / 2 match (read P) and
  // (k - dot) / 2 do not (AP), and each adds its reference cells and fixed-point rounding.
  ScreenTerms st;
  st.s0 = st.se = no_sums_.data();
  st.base = (0.5 * (variance_match_ + variance_mismatch_) + variance_reference_ + variance_rounding_) * k;
  st.slope = 0.5 * (variance_match_ - variance_mismatch_);
  if (!conditioned_ || k == 0) return st;
  // Driven rows: the same count kc in every tap they touch, and those taps a rectangle (the
  // kernel's part inside the map).
  const BitWord* keep = patches.keep.row(m);
  const BitWord* x = patches.signs.row(m);
#if SPINBAYES_CROSSBAR_AVX512
  const TapPattern p = popcnt_ ? tap_pattern_popcnt(keep, x, patches.keep.words, kernel_, tap_rows_)
                               : tap_pattern_plain(keep, x, patches.keep.words, kernel_, tap_rows_);
#else
  const TapPattern p = tap_pattern_plain(keep, x, patches.keep.words, kernel_, tap_rows_);
#endif
  if (!p.uniform) return st;
  const int kc = p.kc, valid = p.valid, n1 = p.n1;
  const int ky0 = p.ky0, ky1 = p.ky1, kx0 = p.kx0, kx1 = p.kx1;
  const double kappa = static_cast<double>(kc) / tap_rows_, nu = static_cast<double>(n1) / k;
  st.a = kappa / cell_scale_;
  st.b = kappa * nu / cell_scale_;
  const std::size_t at = static_cast<std::size_t>(rectangle(ky0, ky1, kx0, kx1)) * cols_;
  st.s0 = rect_s0_.data() + at;
  st.se = rect_se_.data() + at;
  // What is left: sum over the valid taps' rows of alpha delta0 + beta e, alpha = keep - kappa,
  // beta = (keep and x) - kappa nu, i.e. gamma dev2 + beta dev1 - alpha ref with gamma = alpha -
  // beta (dev1, dev2: the deviations of MTJ1 and MTJ2, one P and one AP; ref: the reference
  // column's), plus the rounding of delta0 and delta1. Three kinds of rows: driven reading bit 1
  // (MTJ1), driven reading bit 0 (MTJ2), and dropped. A driven row whose read MTJ is P (a match:
  // (k + dot) / 2 of them) adds (read^2 - other^2)(vP - vAP) to what a mismatch adds; which kind
  // the matches fall in is not known, so each counts the larger extra. A dropped row's two MTJs
  // are either way round: the larger of the two.
  const double kinds[3][3] = {{static_cast<double>(n1), 1.0 - kappa, 1.0 - kappa * nu},
                              {static_cast<double>(k - n1), 1.0 - kappa, -kappa * nu},
                              {static_cast<double>(valid * tap_rows_ - k), -kappa, -kappa * nu}};
  double variance = 0.0, match_extra = -std::numeric_limits<double>::infinity();
  for (int kind = 0; kind < 3; ++kind) {
    const double count = kinds[kind][0], alpha = kinds[kind][1], beta = kinds[kind][2], gamma = alpha - beta;
    double devices;
    if (kind < 2) {
      const double read = kind == 0 ? beta : gamma, other = kind == 0 ? gamma : beta;
      devices = read * read * variance_mismatch_ + other * other * variance_match_;
      match_extra = std::max(match_extra, (read * read - other * other) * (variance_match_ - variance_mismatch_));
    } else {
      devices = std::max(gamma * gamma * variance_match_ + beta * beta * variance_mismatch_,
                         gamma * gamma * variance_mismatch_ + beta * beta * variance_match_);
    }
    variance += count * (devices + alpha * alpha * variance_reference_ + variance_rounding_ * (gamma * gamma + beta * beta));
  }
  st.base = variance + 0.5 * k * match_extra;
  st.slope = 0.5 * match_extra;
  st.conditioned = true;
  return st;
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
// Sixteen vectors of sixteen int32 lanes to their sixteen sums, in order: pairwise interleaves and
// adds (epi32 within 128-bit lanes, then epi64, then across 128-bit lanes twice).
inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni"))) __m512i sums_of_16(const __m512i* v) {
  __m512i t[8], u[4], w[2];
  for (int i = 0; i < 8; ++i) {
    t[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  }
  for (int i = 0; i < 4; ++i) {
    u[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * i], t[2 * i + 1]), _mm512_unpackhi_epi64(t[2 * i], t[2 * i + 1]));
  }
  for (int i = 0; i < 2; ++i) {
    w[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2 * i], u[2 * i + 1], 0x88),
                            _mm512_shuffle_i32x4(u[2 * i], u[2 * i + 1], 0xdd));
  }
  return _mm512_add_epi32(_mm512_shuffle_i32x4(w[0], w[1], 0x88), _mm512_shuffle_i32x4(w[0], w[1], 0xdd));
}

// One 64-row word of kColumns columns: each driven row's value for its input bit, summed into acc.
template <int kColumns>
inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni"))) void pick_and_add(
    __m512i* acc, const std::int8_t* const* v, int word, BitWord keep, BitWord x, __m512i ones) {
  if (keep == 0) return;  // no row driven: dropped channels, padding
  const __mmask64 bit0 = keep & ~x, bit1 = keep & x;
  const std::size_t b = 128 * static_cast<std::size_t>(word);
#pragma GCC unroll 8
  for (int q = 0; q < kColumns; ++q) {
    const __m512i picked = _mm512_mask_loadu_epi8(_mm512_maskz_loadu_epi8(bit0, v[q] + b), bit1, v[q] + b + 64);
    acc[q] = _mm512_dpbusd_epi32(acc[q], ones, picked);
  }
}

// The sums of the first sixteen ring entries, stored; the entries past them moved to the front.
inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni"))) void flush_ring(__m512i* ring, int& filled,
                                                                                         std::int32_t*& sums) {
  _mm512_storeu_si512(sums, sums_of_16(ring));
  sums += 16;
  filled -= 16;
  for (int r = 0; r < filled; ++r) ring[r] = ring[16 + r];
}

// The tile sums of one group of kColumns columns (the first n of them kept) into the ring.
template <int kColumns>
inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni"))) void group_tile_sums(
    const BitWord* x, const BitWord* keep, const std::int8_t* const* v, int n, int words, int tile_words, int tiles,
    __m512i ones, __m512i* ring, int& filled, std::int32_t*& sums) {
  for (int t = 0; t < tiles; ++t) {
    __m512i even[kColumns], odd[kColumns];
#pragma GCC unroll 8
    for (int q = 0; q < kColumns; ++q) even[q] = odd[q] = _mm512_setzero_si512();
    const int end = std::min(words, (t + 1) * tile_words);
    int word = t * tile_words;
    for (; word + 1 < end; word += 2) {
      pick_and_add<kColumns>(even, v, word, keep[word], x[word], ones);
      pick_and_add<kColumns>(odd, v, word + 1, keep[word + 1], x[word + 1], ones);
    }
    if (word < end) pick_and_add<kColumns>(even, v, word, keep[word], x[word], ones);
#pragma GCC unroll 8
    for (int q = 0; q < kColumns; ++q) ring[filled + q] = _mm512_add_epi32(even[q], odd[q]);
    filled += n;
    if (filled >= 16) flush_ring(ring, filled, sums);
  }
}

// Tile sums of the listed columns: per 64-row word, a masked load picks each driven row's MTJ2
// value (input bit 0) and a merging masked load its MTJ1 value (bit 1); VPDPBUSD against bytes of
// ones adds the 64 picks into sixteen 32-bit lanes. Four columns at a time (the last group one,
// two or four), two accumulators each, so eight independent chains hide the instruction's
// latency; sixteen tiles' lanes are summed at a time, in CrossbarLayer::tile_sum_index order.
// Every index into the accumulators is a constant, so that they live in registers.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void column_sums_vnni(
    const BitWord* x, const BitWord* keep, const std::int8_t* values, std::size_t column_bytes, const int* columns,
    int count, int words, int tile_words, int tiles, std::int32_t* sums) {
  constexpr int kColumns = CrossbarLayer::kColumnGroup;
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i ring[16 + kColumns];
  int filled = 0;
  for (int i0 = 0; i0 < count; i0 += kColumns) {
    const int n = std::min(kColumns, count - i0);
    const std::int8_t* v[kColumns];
    for (int q = 0; q < kColumns; ++q) v[q] = values + static_cast<std::size_t>(columns[i0 + std::min(q, n - 1)]) * column_bytes;
    if (n == 1) {
      group_tile_sums<1>(x, keep, v, n, words, tile_words, tiles, ones, ring, filled, sums);
    } else if (n == 2) {
      group_tile_sums<2>(x, keep, v, n, words, tile_words, tiles, ones, ring, filled, sums);
    } else {
      group_tile_sums<kColumns>(x, keep, v, n, words, tile_words, tiles, ones, ring, filled, sums);
    }
  }
  if (filled > 0) {
    for (int i = filled; i < 16; ++i) ring[i] = _mm512_setzero_si512();
    _mm512_mask_storeu_epi32(sums, static_cast<__mmask16>((1u << filled) - 1), sums_of_16(ring));
  }
}

// ADC codes of n tile sums, eight at a time: the same exact product, correctly rounded quotient
// and round-half-away as adc_code().
__attribute__((target("avx512f,avx512dq,avx512vl"))) void adc_codes_avx512(const std::int32_t* sums, int n,
                                                                          double multiplier, double divisor,
                                                                          bool power_of_two, int levels,
                                                                          std::int32_t* codes) {
  const __m512d mul = _mm512_set1_pd(multiplier), div = _mm512_set1_pd(divisor), half = _mm512_set1_pd(0.5);
  const __m512d reciprocal = _mm512_set1_pd(1.0 / divisor);
  const __m512d top = _mm512_set1_pd(levels), bottom = _mm512_set1_pd(-levels);
  for (int i = 0; i < n; i += 8) {
    const auto lanes = static_cast<__mmask8>(n - i >= 8 ? 0xff : (1u << (n - i)) - 1);
    const __m512d product = _mm512_mul_pd(_mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, sums + i)), mul);
    const __m512d x = power_of_two ? _mm512_mul_pd(product, reciprocal) : _mm512_div_pd(product, div);
    const __m512d magnitude = _mm512_roundscale_pd(_mm512_add_pd(_mm512_abs_pd(x), half), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __mmask8 negative = _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_LT_OQ);
    const __m512d code = _mm512_mask_sub_pd(magnitude, negative, _mm512_setzero_pd(), magnitude);
    _mm256_mask_storeu_epi32(codes + i, lanes, _mm512_cvtpd_epi32(_mm512_max_pd(_mm512_min_pd(code, top), bottom)));
  }
}

// One window's screen, eight columns at a time: the margin sign * (dot + a s0 + b se) - bound +
// 1/2 + offset (the comparison halfway between integer dots, about the expected value), whether
// the column fires on it, and whether it lies within base + slope dot + column_variance of it
// (CrossbarLayer::within_screen) and so needs the analog sum.
__attribute__((target("avx512f,avx512vl"))) void screen_avx512(const std::int32_t* dots, const std::int32_t* sign,
                                                               const std::int32_t* bound, const double* offset,
                                                               const double* column_variance,
                                                               const CrossbarLayer::ScreenTerms& terms, double sigmas,
                                                               int n, BitWord* fire, BitWord* near) {
  const __m512d half = _mm512_set1_pd(0.5), zero = _mm512_setzero_pd();
  const __m512d a = _mm512_set1_pd(terms.a), b = _mm512_set1_pd(terms.b);
  const __m512d base = _mm512_set1_pd(terms.base), slope = _mm512_set1_pd(terms.slope);
  const __m512d sigmas2 = _mm512_set1_pd(sigmas * sigmas);
  for (int j = 0; j < n; j += 8) {
    const auto lanes = static_cast<__mmask8>(n - j >= 8 ? 0xff : (1u << (n - j)) - 1);
    const __m512d d = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, dots + j));
    const __m512d s = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, sign + j));
    const __m512d bd = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, bound + j));
    const __m512d mu = _mm512_add_pd(_mm512_mul_pd(a, _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, terms.s0 + j))),
                                     _mm512_mul_pd(b, _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, terms.se + j))));
    const __m512d margin = _mm512_add_pd(_mm512_add_pd(_mm512_sub_pd(_mm512_mul_pd(s, _mm512_add_pd(d, mu)), bd), half),
                                         _mm512_maskz_loadu_pd(lanes, offset + j));
    const __m512d variance =
        _mm512_add_pd(_mm512_add_pd(base, _mm512_mul_pd(slope, d)), _mm512_maskz_loadu_pd(lanes, column_variance + j));
    // |margin| <= sigmas sqrt(variance), without the square root.
    const __mmask8 f = _mm512_mask_cmp_pd_mask(lanes, margin, zero, _CMP_GE_OQ);
    const __mmask8 c =
        _mm512_mask_cmp_pd_mask(lanes, _mm512_mul_pd(margin, margin), _mm512_mul_pd(sigmas2, variance), _CMP_LE_OQ);
    fire[j / kBitsPerWord] |= static_cast<BitWord>(f) << (j % kBitsPerWord);
    near[j / kBitsPerWord] |= static_cast<BitWord>(c) << (j % kBitsPerWord);
  }
}
}  // namespace
#pragma GCC diagnostic pop
#endif

void CrossbarLayer::columns_tile_sums(const Patches& patches, int m, const int* columns, int count,
                                      std::int32_t* sums) const {
#if SPINBAYES_CROSSBAR_AVX512
  if (vnni_) {
    // Tiles start on word boundaries (tile_rows is a multiple of 64); rows past rows_ are never kept.
    column_sums_vnni(patches.signs.row(m), patches.keep.row(m), cell_value_.data(), 2 * static_cast<std::size_t>(padded_rows_),
                     columns, count, padded_rows_ / kBitsPerWord, tile_rows_ / kBitsPerWord, row_tiles_, sums);
    return;
  }
#endif
  std::int32_t tile[kMaxTiles];
  for (int i = 0; i < count; ++i) {
    tile_sums_reference(patches, m, columns[i], tile);
    for (int t = 0; t < row_tiles_; ++t) sums[tile_sum_index(i, t, count, row_tiles_)] = tile[t];
  }
}

void CrossbarLayer::tile_sums(const Patches& patches, int m, int j, std::int32_t* sums) const {
  columns_tile_sums(patches, m, &j, 1, sums);
}

void CrossbarLayer::tile_sums_reference(const Patches& patches, int m, int j, std::int32_t* sums) const {
  const std::int8_t* v = cell_value_.data() + static_cast<std::size_t>(j) * 2 * padded_rows_;
  for (int t = 0; t < row_tiles_; ++t) {
    std::int32_t sum = 0;
    for (int r = t * tile_rows_; r < std::min(rows_, (t + 1) * tile_rows_); ++r) {
      if (patches.keep.get(m, r)) sum += v[value_index(r, patches.signs.get(m, r))];
    }
    sums[t] = sum;
  }
}

std::int32_t CrossbarLayer::adc_code(std::int32_t sum) const {
  // Round half away from zero (the ADC's comparator ladder has no notion of ties-to-even). The
  // product is exact and the quotient correctly rounded, so every path gets the same code.
  const double x = static_cast<double>(sum) * adc_multiplier_ / adc_divisor_;
  const double code = x >= 0.0 ? std::floor(x + 0.5) : -std::floor(0.5 - x);
  return static_cast<std::int32_t>(std::clamp(code, static_cast<double>(-adc_levels_), static_cast<double>(adc_levels_)));
}

void CrossbarLayer::adc_codes(const std::int32_t* sums, int n, std::int32_t* codes) const {
#if SPINBAYES_CROSSBAR_AVX512
  if (vnni_) {
    adc_codes_avx512(sums, n, adc_multiplier_, adc_divisor_, adc_divisor_power_of_two_, adc_levels_, codes);
    return;
  }
#endif
  for (int i = 0; i < n; ++i) codes[i] = adc_code(sums[i]);
}

void CrossbarLayer::column_values(std::int32_t* sums, int count, double* values) const {
  const int tiles = row_tiles_;
  if (tiles == 1 && !output_) {
    for (int i = 0; i < count; ++i) values[i] = static_cast<double>(sums[i]) / cell_scale_;
    return;
  }
  adc_codes(sums, count * tiles, sums);
  // Group by group (tile_sum_index): n columns side by side, tile after tile.
  for (int first = 0; first < count; first += kColumnGroup) {
    const int n = std::min(kColumnGroup, count - first);
    const std::int32_t* group = sums + static_cast<std::size_t>(first) * tiles;
    std::int64_t codes[kColumnGroup] = {};
    for (int t = 0; t < tiles; ++t) {
      for (int q = 0; q < n; ++q) codes[q] += group[t * n + q];
    }
    for (int q = 0; q < n; ++q) values[first + q] = static_cast<double>(codes[q]) * adc_step_;
  }
}

double CrossbarLayer::column_value(const std::int32_t* sums) const {
  if (row_tiles_ == 1 && !output_) return static_cast<double>(sums[0]) / cell_scale_;  // a sense amplifier: no ADC
  std::int64_t codes = 0;
  for (int t = 0; t < row_tiles_; ++t) codes += adc_code(sums[t]);
  return static_cast<double>(codes) * adc_step_;
}

void CrossbarLayer::sense_row(const Patches& patches, int m, const std::int32_t* dots, const std::int32_t* sign,
                              const std::int32_t* bound, BitWord* out, LayerEvents& events) const {
  count_reads(patches, m, events);
  events.simulated_decisions += static_cast<std::uint64_t>(cols_);
  if (exact_) {
    threshold_bits(dots, sign, bound, cols_, out);
    return;
  }
#if SPINBAYES_CROSSBAR_AVX512
  if (vnni_) {
    // Stuck cells change the exact dot of their column: a corrected copy only where there are any.
    const std::int32_t* exact = dots;
    if (stuck_cells_) {
      thread_local std::vector<std::int32_t> corrected;
      corrected.assign(dots, dots + cols_);
      for (int j = 0; j < cols_; ++j) {
        if (!stuck_[static_cast<std::size_t>(j)].empty()) corrected[static_cast<std::size_t>(j)] += stuck_correction(patches, m, j, 0, rows_);
      }
      exact = corrected.data();
    }
    const int words = (cols_ + kBitsPerWord - 1) / kBitsPerWord;
    thread_local std::vector<BitWord> near;
    near.assign(static_cast<std::size_t>(words), 0);
    std::fill(out, out + words, BitWord{0});
    if (screen_sigmas_ > 0.0) {
      screen_avx512(exact, sign, bound, offset_.data(), column_variance_.data(), screen_terms(patches, m), screen_sigmas_,
                    cols_, out, near.data());
    } else {
      std::fill(near.begin(), near.end(), ~BitWord{0});
      if (cols_ % kBitsPerWord != 0) near.back() = (BitWord{1} << (cols_ % kBitsPerWord)) - 1;
    }
    thread_local std::vector<int> columns;
    columns.clear();
    for (int word = 0; word < words; ++word) {
      for (BitWord bits = near[static_cast<std::size_t>(word)]; bits != 0; bits &= bits - 1) {
        columns.push_back(word * kBitsPerWord + std::countr_zero(bits));
      }
    }
    events.analog_decisions += columns.size();
    if (columns.empty()) return;
    thread_local std::vector<std::int32_t> sums;
    sums.resize(columns.size() * static_cast<std::size_t>(row_tiles_));
    thread_local std::vector<double> values;
    values.resize(columns.size());
    columns_tile_sums(patches, m, columns.data(), static_cast<int>(columns.size()), sums.data());
    column_values(sums.data(), static_cast<int>(columns.size()), values.data());
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const int j = columns[i];
      const double value = values[i];
      // Branch-free: the analog decisions are the coin flips of this loop.
      const BitWord fire = sign[j] * value - bound[j] + 0.5 + offset_[static_cast<std::size_t>(j)] >= 0.0;
      BitWord& word = out[j / kBitsPerWord];
      word = (word & ~(BitWord{1} << (j % kBitsPerWord))) | (fire << (j % kBitsPerWord));
    }
    return;
  }
#endif
  events.analog_decisions += static_cast<std::uint64_t>(sense_row_reference(patches, m, dots, sign, bound, out));
}

bool CrossbarLayer::within_screen(double margin, double variance) const {
  if (screen_sigmas_ <= 0.0) return true;
  // |margin| <= sigmas sqrt(variance), without the square root.
  return margin * margin <= screen_sigmas_ * screen_sigmas_ * variance;
}

int CrossbarLayer::sense_row_reference(const Patches& patches, int m, const std::int32_t* dots,
                                       const std::int32_t* sign, const std::int32_t* bound, BitWord* out) const {
  int analog = 0;
  const ScreenTerms st = screen_terms(patches, m);
  for (int j = 0; j < cols_; ++j) {
    const auto jj = static_cast<std::size_t>(j);
    const std::int32_t dot = dots[j] + (stuck_[jj].empty() ? 0 : stuck_correction(patches, m, j, 0, rows_));
    // The comparison sign * value >= bound - 1/2 (halfway between integer dots), as a margin
    // about the value expected.
    const double margin = sign[j] * (dot + (st.a * st.s0[j] + st.b * st.se[j])) - bound[j] + 0.5 + offset_[jj];
    const bool within = within_screen(margin, (st.base + st.slope * dot) + column_variance_[jj]);
    bool fire;
    if (!within) {
      fire = margin >= 0.0;
    } else {
      ++analog;
      std::int32_t sums[kMaxTiles];
      tile_sums_reference(patches, m, j, sums);
      fire = sign[j] * column_value(sums) - bound[j] + 0.5 + offset_[jj] >= 0.0;
    }
    const BitWord bit = BitWord{1} << (j % kBitsPerWord);
    if (fire) {
      out[j / kBitsPerWord] |= bit;
    } else {
      out[j / kBitsPerWord] &= ~bit;
    }
  }
  return analog;
}

void CrossbarLayer::read_row(const Patches& patches, int m, const std::int32_t* dots, double* sums,
                             LayerEvents& events) const {
  count_reads(patches, m, events);
  if (exact_) {
    std::copy(dots, dots + cols_, sums);
    return;
  }
  thread_local std::vector<int> columns;
  thread_local std::vector<std::int32_t> tiles;
  columns.resize(static_cast<std::size_t>(cols_));
  std::iota(columns.begin(), columns.end(), 0);
  tiles.resize(static_cast<std::size_t>(cols_) * row_tiles_);
  columns_tile_sums(patches, m, columns.data(), cols_, tiles.data());
  column_values(tiles.data(), cols_, sums);
}

}  // namespace spinbayes
