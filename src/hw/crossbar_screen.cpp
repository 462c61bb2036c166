#include "hw/crossbar_screen.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "core/cpu_features.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SPINBAYES_SCREEN_AVX512 1
#else
#define SPINBAYES_SCREEN_AVX512 0
#endif

namespace spinbayes {

CrossbarScreen::CrossbarScreen(const CellArray& cells, const LayerMapping& mapping, const Adc* adc, double sigmas)
    : cols_(cells.cols()), sigmas_(sigmas), variances_(cells.variances()) {
  column_variance_.assign(static_cast<std::size_t>(cols_), 0.0);
  // Calibrated, a tile's devices and its ADC rounding reach the read-out divided by its gain: their
  // variances scaled by the largest 1 / gain^2 of the layer.
  const double inverse_gain2 = cells.largest_inverse_gain() * cells.largest_inverse_gain();
  variances_.match *= inverse_gain2;
  variances_.mismatch *= inverse_gain2;
  variances_.reference *= inverse_gain2;
  variances_.rounding *= inverse_gain2;
  if (cells.variation()) {
    // A cell whose MTJs hold the same state may read P where the dot counts a mismatch.
    for (int j = 0; j < cols_; ++j) {
      for (std::size_t c = 0; c < cells.stuck(j).size(); ++c) column_variance_[static_cast<std::size_t>(j)] += variances_.match;
    }
  }
  // ADC rounding, once the sum is not an integer: step^2 / 12 per tile (see the header), and
  // under a gain g, 1 / g^2 of that about the ungained value the screen centres on.
  if (adc != nullptr && (adc->step() != 1.0 || adc->gain() != 1.0 || cells.variation() || cells.systematic())) {
    const double step = adc->step() / adc->gain();
    for (double& v : column_variance_) v += cells.row_tiles() * step * step / 12.0 * inverse_gain2;
  }
  // IR drop and calibration move a column off its dot by their centre, known from the window's
  // counts, and by up to the systematic bound about it in any window (cell_array.h): (bound /
  // sigmas)^2 of variance keeps every column within that bound of its threshold analog.
  if (cells.systematic()) {
    for (int j = 0; j < cols_; ++j) {
      systematic_c_.push_back(cells.systematic_constant(j));
      systematic_per_row_.push_back(cells.systematic_per_row(j));
      systematic_per_dot_.push_back(cells.systematic_per_dot(j));
    }
  }
  if (cells.systematic() && sigmas > 0.0) {
    for (int j = 0; j < cols_; ++j) {
      const double b = cells.systematic_bound(j) / sigmas;
      column_variance_[static_cast<std::size_t>(j)] += b * b;
    }
  }
  // A column with a dead tile is off its dot by what that tile's rows would have added: always
  // the analog sum.
  for (int j = 0; j < cols_; ++j) {
    if (cells.column_dead(j)) column_variance_[static_cast<std::size_t>(j)] = std::numeric_limits<double>::infinity();
  }
  kernel_ = mapping.kernel;
  tap_rows_ = mapping.in_channels;
  // The conditioned centre holds the devices' deviations; under IR drop, reference error or
  // calibration, as the read-out sees them once the systematic part is taken out (the cell
  // array's sums per tap), that part centred and bounded as above.
  conditioned_ = kernel_ >= 1 && kernel_ <= 5 && tap_rows_ * kernel_ * kernel_ == cells.rows() &&
                 (!cells.systematic() || cells.tap_deviation(0) != nullptr);
  if (conditioned_) conditioned_sums(cells);
  popcnt_ = cpu_features().popcnt;
  no_sums_.assign(static_cast<std::size_t>(cols_), 0);
}

void CrossbarScreen::conditioned_sums(const CellArray& cells) {
  // delta[x] = stored value - cell_scale x ideal value of the MTJ read for input bit x: MTJ1
  // holds the (fault-corrected) weight, MTJ2 its complement, or both the stuck value. Under a
  // systematic part, the cell array's sums per tap (dot units, the gain divided out), held in
  // finer fixed point.
  const int taps = kernel_ * kernel_;
  const std::size_t rects = static_cast<std::size_t>(taps) * taps;
  rect_s0_.assign(rects * cols_, 0);
  rect_se_.assign(rects * cols_, 0);
  std::vector<std::int32_t> tap_s0(static_cast<std::size_t>(taps)), tap_se(static_cast<std::size_t>(taps));
  const int rows = cells.rows(), cell_scale = cells.cell_scale();
  const bool systematic = cells.systematic();
  sum_scale_ = cell_scale;
  if (systematic) {
    // As fine as int32 holds every rectangle's sums (at most the sum of |tap sums|) with room.
    double largest = 0.0;
    for (int j = 0; j < cols_; ++j) {
      double s0 = 0.0, se = 0.0;
      for (int t = 0; t < taps; ++t) s0 += std::fabs(cells.tap_deviation(j)[2 * t]), se += std::fabs(cells.tap_deviation(j)[2 * t + 1]);
      largest = std::max({largest, s0, se});
    }
    sum_scale_ = kSystematicSumScale;
    while (sum_scale_ > 1 && largest * sum_scale_ > 0x1p30) sum_scale_ /= 2;
  }
  std::vector<char> stuck(static_cast<std::size_t>(rows));
  for (int j = 0; j < cols_; ++j) {
    std::fill(tap_s0.begin(), tap_s0.end(), 0);
    std::fill(tap_se.begin(), tap_se.end(), 0);
    if (systematic) {
      const double* sums = cells.tap_deviation(j);
      for (int t = 0; t < taps; ++t) {
        tap_s0[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(std::lround(sums[2 * t] * sum_scale_));
        tap_se[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(std::lround(sums[2 * t + 1] * sum_scale_));
      }
    } else {
      const std::int8_t* v = cells.column_values(j);
      std::fill(stuck.begin(), stuck.end(), 0);
      for (const CellArray::StuckCell& c : cells.stuck(j)) stuck[static_cast<std::size_t>(c.row)] = 1;
      for (int r = 0; r < rows; ++r) {
        const int ideal1 = cells.weights().get(j, r) ? 1 : -1;
        const int ideal0 = stuck[static_cast<std::size_t>(r)] ? ideal1 : -ideal1;
        const int delta0 = v[CellArray::value_index(r, false)] - cell_scale * ideal0;
        const int delta1 = v[CellArray::value_index(r, true)] - cell_scale * ideal1;
        tap_s0[static_cast<std::size_t>(r / tap_rows_)] += delta0;
        tap_se[static_cast<std::size_t>(r / tap_rows_)] += delta1 - delta0;
      }
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
      same_words(keep, last_keep.data(), words)) {
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
#if SPINBAYES_SCREEN_AVX512
__attribute__((target("popcnt"))) TapPattern tap_pattern_popcnt(const BitWord* keep, const BitWord* x, int words,
                                                                 int kernel, int tap_rows) {
  return tap_pattern_body(keep, x, words, kernel, tap_rows);
}
#endif
}  // namespace

CrossbarScreen::Terms CrossbarScreen::terms(const PatchRows& patches, int m) const {
  const int k = patches.kept[m];
  // The ensemble screen: centred on the dot; of k driven rows, (k + dot) / 2 match (read P) and
  // (k - dot) / 2 do not (AP), and each adds its reference cells and fixed-point rounding.
  Terms st;
  st.s0 = st.se = no_sums_.data();
  st.kept = k;
  if (!systematic_c_.empty()) {
    st.c = systematic_c_.data();
    st.per_row = systematic_per_row_.data();
    st.per_dot = systematic_per_dot_.data();
  }
  st.base = (0.5 * (variances_.match + variances_.mismatch) + variances_.reference + variances_.rounding) * k;
  st.slope = 0.5 * (variances_.match - variances_.mismatch);
  if (!conditioned_ || k == 0) return st;
  // Driven rows: the same count kc in every tap they touch, and those taps a rectangle (the
  // kernel's part inside the map).
  const BitWord* keep = patches.keep_row(m);
  const BitWord* x = patches.sign_row(m);
#if SPINBAYES_SCREEN_AVX512
  const TapPattern p = popcnt_ ? tap_pattern_popcnt(keep, x, patches.words(), kernel_, tap_rows_)
                               : tap_pattern_plain(keep, x, patches.words(), kernel_, tap_rows_);
#else
  const TapPattern p = tap_pattern_plain(keep, x, patches.words(), kernel_, tap_rows_);
#endif
  if (!p.uniform) return st;
  const int kc = p.kc, valid = p.valid, n1 = p.n1;
  const int ky0 = p.ky0, ky1 = p.ky1, kx0 = p.kx0, kx1 = p.kx1;
  const double kappa = static_cast<double>(kc) / tap_rows_, nu = static_cast<double>(n1) / k;
  st.a = kappa / sum_scale_;
  st.b = kappa * nu / sum_scale_;
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
      devices = read * read * variances_.mismatch + other * other * variances_.match;
      match_extra = std::max(match_extra, (read * read - other * other) * (variances_.match - variances_.mismatch));
    } else {
      devices = std::max(gamma * gamma * variances_.match + beta * beta * variances_.mismatch,
                         gamma * gamma * variances_.mismatch + beta * beta * variances_.match);
    }
    variance += count * (devices + alpha * alpha * variances_.reference + variances_.rounding * (gamma * gamma + beta * beta));
  }
  st.base = variance + 0.5 * k * match_extra;
  st.slope = 0.5 * match_extra;
  st.conditioned = true;
  return st;
}

bool CrossbarScreen::within(double margin, double variance) const {
  if (sigmas_ <= 0.0) return true;
  // |margin| <= sigmas sqrt(variance), without the square root.
  return margin * margin <= sigmas_ * sigmas_ * variance;
}

#if SPINBAYES_SCREEN_AVX512
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as merge sources, which -Wuninitialized
// flags inside the system header once inlined (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {
// One window's screen, eight columns at a time: the margin sign * (dot + centre) - bound + 1/2 +
// offset (Terms::centre) (the comparison halfway between integer dots, about the expected value), whether
// the column fires on it, and whether it lies within base + slope dot + column_variance of it
// (CrossbarScreen::within) and so needs the analog sum.
__attribute__((target("avx512f,avx512vl"))) void screen_avx512(const std::int32_t* dots, const std::int32_t* sign,
                                                               const std::int32_t* bound, const double* offset,
                                                               const double* column_variance,
                                                               const CrossbarScreen::Terms& terms, double sigmas,
                                                               int n, BitWord* fire, BitWord* near) {
  const __m512d half = _mm512_set1_pd(0.5), zero = _mm512_setzero_pd();
  const __m512d a = _mm512_set1_pd(terms.a), b = _mm512_set1_pd(terms.b);
  const __m512d base = _mm512_set1_pd(terms.base), slope = _mm512_set1_pd(terms.slope);
  const __m512d sigmas2 = _mm512_set1_pd(sigmas * sigmas);
  const __m512d kept = _mm512_set1_pd(terms.kept);
  for (int j = 0; j < n; j += 8) {
    const auto lanes = static_cast<__mmask8>(n - j >= 8 ? 0xff : (1u << (n - j)) - 1);
    const __m512d d = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, dots + j));
    const __m512d s = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, sign + j));
    const __m512d bd = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, bound + j));
    __m512d mu = _mm512_add_pd(_mm512_mul_pd(a, _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, terms.s0 + j))),
                               _mm512_mul_pd(b, _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(lanes, terms.se + j))));
    if (terms.c != nullptr) {  // the systematic centre, in Terms::centre's order of operations
      const __m512d per_row = _mm512_mul_pd(kept, _mm512_maskz_loadu_pd(lanes, terms.per_row + j));
      const __m512d per_dot = _mm512_mul_pd(d, _mm512_maskz_loadu_pd(lanes, terms.per_dot + j));
      mu = _mm512_add_pd(mu, _mm512_add_pd(_mm512_maskz_loadu_pd(lanes, terms.c + j), _mm512_add_pd(per_row, per_dot)));
    }
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

bool CrossbarScreen::screen(const std::int32_t* dots, const std::int32_t* sign, const std::int32_t* bound,
                            const double* offset, const Terms& terms, int n, BitWord* fire, BitWord* near) const {
#if SPINBAYES_SCREEN_AVX512
  screen_avx512(dots, sign, bound, offset, column_variance_.data(), terms, sigmas_, n, fire, near);
  return true;
#else
  (void)dots, (void)sign, (void)bound, (void)offset, (void)terms, (void)n, (void)fire, (void)near;
  return false;
#endif
}

}  // namespace spinbayes
