#include "hw/crossbar.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>

#include "core/counter_rng.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/streams.h"
#include "engine/threshold.h"
#include "hw/tile_sums.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SPINBAYES_READOUT_AVX512 1
#else
#define SPINBAYES_READOUT_AVX512 0
#endif

namespace spinbayes {

#if SPINBAYES_READOUT_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {
// One group of calibrated_readout(): the n columns from `first`, their lanes, the columns, and
// the group's tile sums.
inline __attribute__((always_inline, target("avx512f,avx512vl,fma"))) int readout_group(
    const int* columns, const std::int32_t* sums, int count, int tiles, int first, __mmask8& lanes, __m128i& column,
    const std::int32_t*& at) {
  const int n = std::min(kColumnGroup, count - first);
  lanes = static_cast<__mmask8>((1u << n) - 1);
  column = _mm_mask_loadu_epi32(_mm_set1_epi32(columns[first]), lanes, columns + first);
  at = sums + static_cast<std::size_t>(first) * tiles;
  return n;
}

// The ADC's conversion of four tile sums, Adc::code()'s arithmetic lane by lane (as adc.cpp's
// SIMD codes): the exact product, the correctly rounded quotient, half away from zero, clamped;
// the codes as doubles.
struct AdcLanes {
  __m256d multiplier, divisor, reciprocal, top, bottom;
  bool power_of_two;
};
inline __attribute__((always_inline, target("avx512f,avx512vl,fma"))) __m256d adc_codes4(__m128i sums,
                                                                                       const AdcLanes& adc) {
  const __m256d product = _mm256_mul_pd(_mm256_cvtepi32_pd(sums), adc.multiplier);
  const __m256d x = adc.power_of_two ? _mm256_mul_pd(product, adc.reciprocal) : _mm256_div_pd(product, adc.divisor);
  const __m256d magnitude = _mm256_roundscale_pd(_mm256_add_pd(_mm256_andnot_pd(_mm256_set1_pd(-0.0), x), _mm256_set1_pd(0.5)),
                                                 _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __mmask8 negative = _mm256_cmp_pd_mask(x, _mm256_setzero_pd(), _CMP_LT_OQ);
  const __m256d code = _mm256_mask_sub_pd(magnitude, negative, _mm256_setzero_pd(), magnitude);
  return _mm256_max_pd(_mm256_min_pd(code, adc.top), adc.bottom);
}

// The scales of a group's columns (per column and row tile, column-major), tile by tile: four
// loads from the columns' rows (a group of n < 4 repeats its first column in the idle lanes).
struct ScaleRows {
  const double* row[kColumnGroup];
  ScaleRows(const double* scale, const int* columns, int n, int tiles) {
    for (int q = 0; q < kColumnGroup; ++q) row[q] = scale + static_cast<std::size_t>(columns[q < n ? q : 0]) * tiles;
  }
  inline __attribute__((always_inline, target("avx512f,avx512vl,fma"))) __m256d at(int t) const {
    return _mm256_setr_pd(row[0][t], row[1][t], row[2][t], row[3][t]);
  }
};

// Calibrated read-out of `count` columns' tile sums (tile_sum_index: groups of kColumnGroup
// columns, tile after tile, the group's columns side by side), a column a lane: each tile's ADC
// code (Adc::code()) times its scale added in tile order (one fused multiply-add, as
// column_value() does it), less the column's shift: the same doubles. Two groups at a time, so
// that their chains of additions overlap. `scale`: per column and row tile (column-major);
// `shift`: per column.
__attribute__((target("avx512f,avx512vl,fma"))) void calibrated_readout(const std::int32_t* sums, const int* columns,
                                                                       int count, int tiles, const Adc& converter,
                                                                       const double* scale, const double* shift,
                                                                       double* values) {
  static_assert(kColumnGroup == 4);
  AdcLanes adc;
  adc.multiplier = _mm256_set1_pd(converter.multiplier());
  adc.divisor = _mm256_set1_pd(converter.divisor());
  adc.reciprocal = _mm256_set1_pd(1.0 / converter.divisor());
  adc.top = _mm256_set1_pd(converter.levels());
  adc.bottom = _mm256_set1_pd(-converter.levels());
  adc.power_of_two = converter.divides_by_power_of_two();
  int first = 0;
  for (; first + kColumnGroup < count; first += 2 * kColumnGroup) {
    __mmask8 la, lb;
    __m128i ca, cb;
    const std::int32_t *a, *b;
    readout_group(columns, sums, count, tiles, first, la, ca, a);  // a full group
    const int nb = readout_group(columns, sums, count, tiles, first + kColumnGroup, lb, cb, b);
    const ScaleRows sa(scale, columns + first, kColumnGroup, tiles), sb(scale, columns + first + kColumnGroup, nb, tiles);
    __m256d va = _mm256_setzero_pd(), vb = _mm256_setzero_pd();
    for (int t = 0; t < tiles; ++t) {
      const __m256d code_a = adc_codes4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + t * kColumnGroup)), adc);
      const __m256d code_b = adc_codes4(_mm_maskz_loadu_epi32(lb, b + t * nb), adc);
      va = _mm256_fmadd_pd(code_a, sa.at(t), va);
      vb = _mm256_fmadd_pd(code_b, sb.at(t), vb);
    }
    _mm256_storeu_pd(values + first, _mm256_sub_pd(va, _mm256_i32gather_pd(shift, ca, 8)));
    _mm256_mask_storeu_pd(values + first + kColumnGroup, lb, _mm256_sub_pd(vb, _mm256_i32gather_pd(shift, cb, 8)));
  }
  if (first < count) {
    __mmask8 la;
    __m128i ca;
    const std::int32_t* a;
    const int na = readout_group(columns, sums, count, tiles, first, la, ca, a);
    const ScaleRows sa(scale, columns + first, na, tiles);
    __m256d va = _mm256_setzero_pd();
    for (int t = 0; t < tiles; ++t) {
      va = _mm256_fmadd_pd(adc_codes4(_mm_maskz_loadu_epi32(la, a + t * na), adc), sa.at(t), va);
    }
    _mm256_mask_storeu_pd(values + first, la, _mm256_sub_pd(va, _mm256_i32gather_pd(shift, ca, 8)));
  }
}
}  // namespace
#pragma GCC diagnostic pop
#endif

CrossbarLayer::CrossbarLayer(const HardwareConfig& hw, const LayerMapping& mapping, const BitMatrix& weights,
                             std::uint64_t chip_seed, int layer, const std::vector<std::pair<int, int>>& dead_tiles)
    : cols_(mapping.cols), col_tiles_(mapping.col_tiles), output_(mapping.output) {
  if (mapping.row_tiles > kMaxTiles) {
    throw Error(mapping.name + ": " + std::to_string(mapping.row_tiles) + " row tiles exceed the simulator's " +
                std::to_string(kMaxTiles) + "; raise crossbar.tile_rows");
  }
  cells_ = CellArray(hw, mapping, weights, chip_seed, layer, dead_tiles);
  gain_ = cells_.gain() * (uses_adc() ? 1.0 + hw.faults.adc_gain_error : 1.0);
  adc_ = Adc(hw.crossbar.adc_bits, hw.crossbar.tile_rows, cells_.cell_scale(), gain_);
  screen_ = CrossbarScreen(cells_, mapping, uses_adc() ? &adc_ : nullptr, hw.crossbar.screen_sigmas);
  if (cells_.calibrated() && uses_adc()) {
    // The digital correction of each tile's code: a multiplier step / gain per tile and one sum of
    // offset / gain per column.
    const int tiles = cells_.row_tiles();
    readout_scale_.resize(static_cast<std::size_t>(cols_) * tiles);
    readout_shift_.assign(static_cast<std::size_t>(cols_), 0.0);
    for (int j = 0; j < cols_; ++j) {
      for (int t = 0; t < tiles; ++t) {
        readout_scale_[static_cast<std::size_t>(j) * tiles + t] = adc_.step() / cells_.calibration_gain(j, t);
        readout_shift_[static_cast<std::size_t>(j)] += cells_.calibration_offset(j, t) / cells_.calibration_gain(j, t);
      }
    }
  }
  // Sense-amplifier offsets, one per column read by a sense amplifier alone: the spread of every
  // chip, and a fault's offset of fixed size and random sign.
  offset_.assign(static_cast<std::size_t>(cols_), 0.0);
  bool offsets = false;
  if (!uses_adc()) {
    const auto lk = static_cast<std::uint64_t>(layer);
    for (int j = 0; j < cols_; ++j) {
      const auto jk = static_cast<std::uint64_t>(j);
      double& offset = offset_[static_cast<std::size_t>(j)];
      offset = hw.crossbar.sense_offset_sigma_ua / cells_.unit_ua() * gaussian_at(chip_seed, streams::kSenseOffset, lk, jk);
      // The relative part, a share of the current compared: the column's with every row driven,
      // rows x V G_mid (windows at the map's edge or under dropout drive fewer; the amplifier's
      // bias is set for the full column).
      if (hw.crossbar.sense_offset_relative > 0.0) {
        const double compared = static_cast<double>(cells_.rows()) * cells_.mid_units();
        offset += hw.crossbar.sense_offset_relative * compared *
                  gaussian_at(chip_seed, streams::kSenseOffsetRelative, lk, jk);
      }
      if (hw.faults.sense_offset_ua > 0.0) {
        const bool up = uniform_at(chip_seed, streams::kSenseOffsetFault, lk, jk) < 0.5;
        offset += (up ? 1.0 : -1.0) * hw.faults.sense_offset_ua / cells_.unit_ua();
      }
      offsets = offsets || offset != 0.0;
    }
  }
  vnni_ = cpu_features().avx512_vnni;
  vpopcnt_ = cpu_features().avx512_vpopcntdq;
  exact_ = !cells_.variation() && !cells_.systematic() && !cells_.faults() && !cells_.any_dead() && !offsets && gain_ == 1.0 &&
           (!uses_adc() || adc_.step() == 1.0);
  packed_ = pack_operand(cells_.weights());
}

const double* CrossbarLayer::screen_offsets(const std::int32_t* bound) const {
  if (gain_ == 1.0) return offset_.data();
  thread_local std::vector<double> shifted;
  shifted.resize(static_cast<std::size_t>(cols_));
  for (int j = 0; j < cols_; ++j) {
    shifted[static_cast<std::size_t>(j)] = (bound[j] - 0.5) * (1.0 - 1.0 / gain_) + offset_[static_cast<std::size_t>(j)] / gain_;
  }
  return shifted.data();
}

CrossbarScreen::Terms CrossbarLayer::screen_terms(const PatchRows& patches, int m) const {
  CrossbarScreen::Terms st = screen_.terms(patches, m);
  // What the window's undriven rows give back under IR drop, bounded and widened by like the
  // columns' systematic part (crossbar_screen.cpp).
  if (cells_.ir_drop() && screen_.sigmas() > 0.0) {
    const double b = cells_.relief_bound(patches, m) / screen_.sigmas();
    st.base += b * b;
  }
  return st;
}

void CrossbarLayer::count_reads(const PatchRows& patches, int m, LayerEvents& events) const {
  const auto kept = static_cast<std::uint64_t>(patches.kept[m]);
  events.wordline_drives += kept * static_cast<std::uint64_t>(col_tiles_);
  events.cell_reads += kept * static_cast<std::uint64_t>(cols_);
  if (uses_adc()) {
    events.adc_conversions += static_cast<std::uint64_t>(cols_) * cells_.row_tiles();
    events.digital_accumulates += static_cast<std::uint64_t>(cols_) * cells_.row_tiles();
  } else {
    events.sense_decisions += static_cast<std::uint64_t>(cols_);
  }
}

std::int32_t CrossbarLayer::stuck_correction_reference(const PatchRows& patches, int m, int j, int r0, int r1) const {
  // The GEMM counted x * value for a cell that contributes `value` whatever x: add the difference,
  // 2 * value, where the input bit is 0 (x = -1).
  std::int32_t correction = 0;
  for (const CellArray::StuckCell& c : cells_.stuck(j)) {
    if (c.row < r0 || c.row >= r1) continue;
    if (patches.driven(m, c.row) && !patches.sign(m, c.row)) correction += 2 * c.value;
  }
  return correction;
}

std::int32_t CrossbarLayer::stuck_correction(const PatchRows& patches, int m, int j, int r0, int r1) const {
  const std::size_t listed = cells_.stuck(j).size();
  if (listed == 0) return 0;
  // The planes read whole words: r0 on a word boundary (tiles are whole words), and r1 too or the
  // last row (the planes hold nothing past it).
  const int w0 = r0 / kBitsPerWord, w1 = words_for_bits(std::min(r1, cells_.rows()));
  const bool aligned = r0 % kBitsPerWord == 0 && (r1 % kBitsPerWord == 0 || r1 >= cells_.rows());
  // A vector step reads 8 words: the list is the cheaper where it has fewer cells than steps.
  if (!aligned || listed <= static_cast<std::size_t>(w1 - w0) / 8) return stuck_correction_reference(patches, m, j, r0, r1);
  const BitWord* plus = cells_.stuck_plane(j, true) + w0;
  const BitWord* minus = cells_.stuck_plane(j, false) + w0;
  const BitWord* keep = patches.keep_row(m) + w0;
  const BitWord* x = patches.sign_row(m) + w0;
  const int words = w1 - w0;
  std::int32_t difference = 0;
  if (!vpopcnt_ || !stuck_difference_avx512(plus, minus, keep, x, words, difference)) {
    difference = stuck_difference(plus, minus, keep, x, words);
  }
  return 2 * difference;
}

std::int32_t CrossbarLayer::tile_dot(const PatchRows& patches, int m, int j, int t) const {
  const int tile_rows = cells_.tile_rows(), rows = cells_.rows();
  const int r0 = t < 0 ? 0 : t * tile_rows, r1 = t < 0 ? rows : std::min(rows, r0 + tile_rows);
  const BitWord* x = patches.sign_row(m);
  const BitWord* k = patches.keep_row(m);
  const BitWord* w = cells_.weights().row(j);
  int kept = 0, mismatched = 0;
  for (int word = r0 / kBitsPerWord; word < (r1 + kBitsPerWord - 1) / kBitsPerWord; ++word) {
    kept += std::popcount(k[word]);
    mismatched += std::popcount((x[word] ^ w[word]) & k[word]);
  }
  return kept - 2 * mismatched + stuck_correction_reference(patches, m, j, r0, r1);
}

void CrossbarLayer::column_values(const int* columns, std::int32_t* sums, int count, double* values) const {
  const int tiles = cells_.row_tiles();
  if (cells_.calibrated()) {
    if (!uses_adc()) {  // a sense amplifier: column_value's arithmetic
      for (int i = 0; i < count; ++i) values[i] = column_value(columns[i], sums + i);
      return;
    }
    // Each tile's ADC code (the scalar's rounding), then column_value's correction and sum in its
    // order: code x step / gain, tile after tile, less the offsets' sum.
#if SPINBAYES_READOUT_AVX512
    if (vnni_) {
      calibrated_readout(sums, columns, count, tiles, adc_, readout_scale_.data(), readout_shift_.data(), values);
      return;
    }
#endif
    adc_.codes(sums, count * tiles, sums);
    for (int first = 0; first < count; first += kColumnGroup) {
      const int n = std::min(kColumnGroup, count - first);
      const std::int32_t* group = sums + static_cast<std::size_t>(first) * tiles;
      for (int q = 0; q < n; ++q) {
        const int j = columns[first + q];
        const double* scale = readout_scale_.data() + static_cast<std::size_t>(j) * tiles;
        double value = 0.0;
        for (int t = 0; t < tiles; ++t) value = std::fma(static_cast<double>(group[t * n + q]), scale[t], value);
        values[first + q] = value - readout_shift_[static_cast<std::size_t>(j)];
      }
    }
    return;
  }
  if (tiles == 1 && !output_) {
    for (int i = 0; i < count; ++i) values[i] = gain_ * (static_cast<double>(sums[i]) / cells_.cell_scale());
    return;
  }
  adc_.codes(sums, count * tiles, sums);
  // Group by group (tile_sum_index): n columns side by side, tile after tile.
  for (int first = 0; first < count; first += kColumnGroup) {
    const int n = std::min(kColumnGroup, count - first);
    const std::int32_t* group = sums + static_cast<std::size_t>(first) * tiles;
    std::int64_t codes[kColumnGroup] = {};
    for (int t = 0; t < tiles; ++t) {
      for (int q = 0; q < n; ++q) codes[q] += group[t * n + q];
    }
    for (int q = 0; q < n; ++q) values[first + q] = static_cast<double>(codes[q]) * adc_.step();
  }
}

double CrossbarLayer::column_value(int j, const std::int32_t* sums) const {
  if (!uses_adc()) {  // a sense amplifier: no ADC; calibrated, its reference trimmed to (v - b) / a
    const double value = gain_ * (static_cast<double>(sums[0]) / cells_.cell_scale());
    if (!cells_.calibrated()) return value;
    return (value - cells_.calibration_offset(j, 0)) / cells_.calibration_gain(j, 0);
  }
  if (!cells_.calibrated()) {
    std::int64_t codes = 0;
    for (int t = 0; t < cells_.row_tiles(); ++t) codes += adc_.code(sums[t]);
    return static_cast<double>(codes) * adc_.step();
  }
  // Each tile's partial sum corrected digitally after its ADC: sum over tiles of code x step /
  // gain, less sum of offset / gain.
  const int tiles = cells_.row_tiles();
  const double* scale = readout_scale_.data() + static_cast<std::size_t>(j) * tiles;
  double value = 0.0;
  // Fused multiply-adds: every path rounds once per tile, whatever the compiler contracts.
  for (int t = 0; t < tiles; ++t) value = std::fma(static_cast<double>(adc_.code(sums[t])), scale[t], value);
  return value - readout_shift_[static_cast<std::size_t>(j)];
}

void CrossbarLayer::sense_row(const PatchRows& patches, int m, const std::int32_t* dots, const std::int32_t* sign,
                              const std::int32_t* bound, BitWord* out, LayerEvents& events) const {
  count_reads(patches, m, events);
  events.simulated_decisions += static_cast<std::uint64_t>(cols_);
  if (exact_) {
    threshold_bits(dots, sign, bound, cols_, out);
    return;
  }
  if (vnni_) {
    // Stuck cells change the exact dot of their column: a corrected copy only where there are any.
    const std::int32_t* exact = dots;
    if (cells_.any_stuck()) {
      thread_local std::vector<std::int32_t> corrected;
      corrected.assign(dots, dots + cols_);
      for (int j = 0; j < cols_; ++j) {
        if (!cells_.stuck(j).empty()) corrected[static_cast<std::size_t>(j)] += stuck_correction(patches, m, j, 0, cells_.rows());
      }
      exact = corrected.data();
    }
    const int words = (cols_ + kBitsPerWord - 1) / kBitsPerWord;
    thread_local std::vector<BitWord> near;
    near.assign(static_cast<std::size_t>(words), 0);
    std::fill(out, out + words, BitWord{0});
    if (screen_.sigmas() > 0.0) {
      screen_.screen(exact, sign, bound, screen_offsets(bound), screen_terms(patches, m), cols_, out, near.data());
    } else {
      std::fill(near.begin(), near.end(), ~BitWord{0});
      if (cols_ % kBitsPerWord != 0) near.back() = (BitWord{1} << (cols_ % kBitsPerWord)) - 1;
    }
    thread_local std::vector<int> columns;
    columns.resize(static_cast<std::size_t>(cols_));
    int count = 0;
    for (int word = 0; word < words; ++word) {
      for (BitWord bits = near[static_cast<std::size_t>(word)]; bits != 0; bits &= bits - 1) {
        columns[static_cast<std::size_t>(count++)] = word * kBitsPerWord + std::countr_zero(bits);
      }
    }
    events.analog_decisions += static_cast<std::uint64_t>(count);
    if (count == 0) return;
    thread_local std::vector<std::int32_t> sums;
    sums.resize(static_cast<std::size_t>(count) * static_cast<std::size_t>(cells_.row_tiles()));
    thread_local std::vector<double> values;
    values.resize(static_cast<std::size_t>(count));
    cells_.tile_sums(patches, m, columns.data(), count, sums.data());
    column_values(columns.data(), sums.data(), count, values.data());
    // The analog decisions replace the screen's in the near columns, a word at a time (the
    // columns are listed in ascending order): branch-free, they are this loop's coin flips.
    int i = 0;
    for (int word = 0; word < words; ++word) {
      const BitWord listed = near[static_cast<std::size_t>(word)];
      if (listed == 0) continue;
      BitWord fired = 0;
      for (; i < count && columns[static_cast<std::size_t>(i)] / kBitsPerWord == word; ++i) {
        const int j = columns[static_cast<std::size_t>(i)];
        const BitWord fire = sign[j] * values[static_cast<std::size_t>(i)] - bound[j] + 0.5 + offset_[static_cast<std::size_t>(j)] >= 0.0;
        fired |= fire << (j % kBitsPerWord);
      }
      out[word] = (out[word] & ~listed) | fired;
    }
    return;
  }
  events.analog_decisions += static_cast<std::uint64_t>(sense_row_reference(patches, m, dots, sign, bound, out));
}

int CrossbarLayer::sense_row_reference(const PatchRows& patches, int m, const std::int32_t* dots,
                                       const std::int32_t* sign, const std::int32_t* bound, BitWord* out) const {
  int analog = 0;
  const CrossbarScreen::Terms st = screen_terms(patches, m);
  const double* screen_offset = screen_offsets(bound);
  for (int j = 0; j < cols_; ++j) {
    const auto jj = static_cast<std::size_t>(j);
    const std::int32_t dot = dots[j] + (cells_.stuck(j).empty() ? 0 : stuck_correction_reference(patches, m, j, 0, cells_.rows()));
    // The comparison sign * value >= bound - 1/2 (halfway between integer dots), as a margin
    // about the value expected.
    const double margin = sign[j] * (dot + st.centre(j, dot)) - bound[j] + 0.5 + screen_offset[jj];
    const bool within = screen_.within(margin, (st.base + st.slope * dot) + screen_.column_variance()[jj]);
    bool fire;
    if (!within) {
      fire = margin >= 0.0;
    } else {
      ++analog;
      std::int32_t sums[kMaxTiles];
      cells_.tile_sums_reference(patches, m, j, sums);
      fire = sign[j] * column_value(j, sums) - bound[j] + 0.5 + offset_[jj] >= 0.0;
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

void CrossbarLayer::read_row(const PatchRows& patches, int m, const std::int32_t* dots, double* sums,
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
  tiles.resize(static_cast<std::size_t>(cols_) * cells_.row_tiles());
  cells_.tile_sums(patches, m, columns.data(), cols_, tiles.data());
  column_values(columns.data(), tiles.data(), cols_, sums);
}

}  // namespace spinbayes
