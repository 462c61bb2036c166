#include "engine/threshold.h"

#include <algorithm>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "engine/simd.h"

namespace spinbayes {
namespace {

#if SPINBAYES_X86
// Eight decisions per step: sign * dot > bound - 1, the comparison's lanes gathered by movemask.
SPINBAYES_AVX2 void threshold_bits_avx2(const std::int32_t* dots, const std::int32_t* sign,
                                        const std::int32_t* bound, int n, BitWord* out) {
  const __m256i one = _mm256_set1_epi32(1);
  for (int w = 0; w < words_for_bits(n); ++w) {
    BitWord word = 0;
    const int base = w * kBitsPerWord, count = std::min(kBitsPerWord, n - base);
    int j = 0;
    for (; j + 8 <= count; j += 8) {
      const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dots + base + j));
      const __m256i s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sign + base + j));
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bound + base + j));
      const __m256i fires = _mm256_cmpgt_epi32(_mm256_mullo_epi32(d, s), _mm256_sub_epi32(b, one));
      word |= static_cast<BitWord>(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(fires)))) << j;
    }
    for (; j < count; ++j) {
      word |= static_cast<BitWord>(sign[base + j] * dots[base + j] >= bound[base + j]) << j;
    }
    out[w] = word;
  }
}

// Sixteen decisions per step, a masked load for the last lanes of a word; both thresholds
// compared, the select word choosing between the two masks.
template <bool kSelect>
SPINBAYES_AVX512 void threshold_rows_avx512(const std::int32_t* dots, int rows, int n, const std::int32_t* sign,
                                            const std::int32_t* high, const std::int32_t* low,
                                            const BitMatrix* select, BitMatrix& out) {
  const int words = words_for_bits(n);
  for (int m = 0; m < rows; ++m) {
    const std::int32_t* d = dots + static_cast<std::size_t>(m) * n;
    BitWord* o = out.row(m);
    for (int w = 0; w < words; ++w) {
      BitWord fires_high = 0, fires_low = 0;
      const int base = w * kBitsPerWord, count = std::min(kBitsPerWord, n - base);
      for (int j = 0; j < count; j += 16) {
        const int lanes = std::min(16, count - j);
        const auto live = static_cast<__mmask16>(lanes == 16 ? 0xFFFFu : (1u << lanes) - 1);
        const int at = base + j;
        const __m512i signed_dot =
            _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(live, d + at), _mm512_maskz_loadu_epi32(live, sign + at));
        fires_high |= static_cast<BitWord>(_mm512_mask_cmpge_epi32_mask(live, signed_dot,
                                                                        _mm512_maskz_loadu_epi32(live, high + at)))
                      << j;
        if constexpr (kSelect)
          fires_low |= static_cast<BitWord>(_mm512_mask_cmpge_epi32_mask(live, signed_dot,
                                                                         _mm512_maskz_loadu_epi32(live, low + at)))
                       << j;
      }
      if constexpr (kSelect) {
        const BitWord s = select->row(m)[w];
        o[w] = (s & fires_high) | (~s & fires_low);
      } else {
        o[w] = fires_high;
      }
    }
  }
}

// At most 64 decisions a row (one word): the signs and both thresholds are loaded once, into
// registers, for every row; C chunks of 16 lanes.
template <int C, bool kSelect>
SPINBAYES_AVX512 void threshold_rows_narrow(const std::int32_t* dots, int rows, int n, const std::int32_t* sign,
                                            const std::int32_t* high, const std::int32_t* low,
                                            const BitMatrix* select, BitMatrix& out) {
  __m512i signs[C], highs[C], lows[C];
  __mmask16 live[C];
  for (int c = 0; c < C; ++c) {
    const int lanes = std::min(16, n - 16 * c);
    live[c] = static_cast<__mmask16>(lanes == 16 ? 0xFFFFu : (1u << lanes) - 1);
    signs[c] = _mm512_maskz_loadu_epi32(live[c], sign + 16 * c);
    highs[c] = _mm512_maskz_loadu_epi32(live[c], high + 16 * c);
    lows[c] = kSelect ? _mm512_maskz_loadu_epi32(live[c], low + 16 * c) : highs[c];
  }
  BitWord* o = out.data.data();
  const std::size_t out_words = static_cast<std::size_t>(out.words);
  const BitWord* s = kSelect ? select->data.data() : nullptr;
  const std::size_t select_words = kSelect ? static_cast<std::size_t>(select->words) : 0;
  for (int m = 0; m < rows; ++m, dots += n, o += out_words) {
    BitWord fires_high = 0, fires_low = 0;
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const __m512i signed_dot = _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(live[c], dots + 16 * c), signs[c]);
      fires_high |= static_cast<BitWord>(_mm512_mask_cmpge_epi32_mask(live[c], signed_dot, highs[c])) << (16 * c);
      if constexpr (kSelect)
        fires_low |= static_cast<BitWord>(_mm512_mask_cmpge_epi32_mask(live[c], signed_dot, lows[c])) << (16 * c);
    }
    if constexpr (kSelect) {
      const BitWord chosen = s[static_cast<std::size_t>(m) * select_words];
      o[0] = (chosen & fires_high) | (~chosen & fires_low);
    } else {
      o[0] = fires_high;
    }
  }
}
#endif

void check_rows(int rows, int n, const BitMatrix* select, const BitMatrix& out) {
  if (out.rows < rows || out.bits != n || (select != nullptr && (select->rows < rows || select->bits != n)))
    throw Error("threshold_rows: " + std::to_string(rows) + " rows of " + std::to_string(n) + " decisions into " +
                std::to_string(out.rows) + " x " + std::to_string(out.bits) + " bits" +
                (select != nullptr ? ", selected by " + std::to_string(select->rows) + " x " +
                                         std::to_string(select->bits) + " bits"
                                   : std::string()));
}

using ThresholdRows = void (*)(const std::int32_t*, int, int, const std::int32_t*, const std::int32_t*,
                               const std::int32_t*, const BitMatrix*, BitMatrix&);

void threshold_rows_bits(const std::int32_t* dots, int rows, int n, const std::int32_t* sign,
                         const std::int32_t* high, const std::int32_t* low, const BitMatrix* select, BitMatrix& out) {
  // Row by row through threshold_bits, the two thresholds' words combined by the select word.
  std::vector<BitWord> fires_low(select != nullptr ? static_cast<std::size_t>(words_for_bits(n)) : 0);
  for (int m = 0; m < rows; ++m) {
    const std::int32_t* d = dots + static_cast<std::size_t>(m) * n;
    threshold_bits(d, sign, high, n, out.row(m));
    if (select == nullptr) continue;
    threshold_bits(d, sign, low, n, fires_low.data());
    for (int w = 0; w < out.words; ++w) {
      const BitWord s = select->row(m)[w];
      out.row(m)[w] = (s & out.row(m)[w]) | (~s & fires_low[static_cast<std::size_t>(w)]);
    }
  }
}

// The kernel for this CPU, chosen once.
ThresholdRows fastest_threshold_rows(bool select) {
#if SPINBAYES_X86
  if (cpu_features().avx512_vpopcntdq)
    return select ? threshold_rows_avx512<true> : threshold_rows_avx512<false>;
#endif
  return threshold_rows_bits;
}

}  // namespace

void threshold_bits_reference(const std::int32_t* dots, const std::int32_t* sign, const std::int32_t* bound, int n,
                              BitWord* out) {
  for (int w = 0; w < words_for_bits(n); ++w) out[w] = 0;
  for (int j = 0; j < n; ++j) {
    if (sign[j] * dots[j] >= bound[j]) out[j / kBitsPerWord] |= BitWord{1} << (j % kBitsPerWord);
  }
}

void threshold_bits(const std::int32_t* dots, const std::int32_t* sign, const std::int32_t* bound, int n,
                    BitWord* out) {
#if SPINBAYES_X86
  static const bool avx2 = cpu_features().avx2;
  if (avx2) {
    threshold_bits_avx2(dots, sign, bound, n, out);
    return;
  }
#endif
  threshold_bits_reference(dots, sign, bound, n, out);
}

void threshold_rows_reference(const std::int32_t* dots, int rows, int n, const std::int32_t* sign,
                              const std::int32_t* high, const std::int32_t* low, const BitMatrix* select,
                              BitMatrix& out) {
  check_rows(rows, n, select, out);
  std::vector<std::int32_t> bound(static_cast<std::size_t>(n));
  for (int m = 0; m < rows; ++m) {
    for (int j = 0; j < n; ++j)
      bound[static_cast<std::size_t>(j)] = select == nullptr || select->get(m, j) ? high[j] : low[j];
    threshold_bits_reference(dots + static_cast<std::size_t>(m) * n, sign, bound.data(), n, out.row(m));
  }
}

void threshold_rows(const std::int32_t* dots, int rows, int n, const std::int32_t* sign, const std::int32_t* high,
                    const std::int32_t* low, const BitMatrix* select, BitMatrix& out) {
  check_rows(rows, n, select, out);
  if (n <= 0) return;
#if SPINBAYES_X86
  static const bool avx512 = cpu_features().avx512_vpopcntdq;
  if (avx512 && n <= 64) {
    static constexpr ThresholdRows narrow[2][4] = {
        {threshold_rows_narrow<1, false>, threshold_rows_narrow<2, false>, threshold_rows_narrow<3, false>,
         threshold_rows_narrow<4, false>},
        {threshold_rows_narrow<1, true>, threshold_rows_narrow<2, true>, threshold_rows_narrow<3, true>,
         threshold_rows_narrow<4, true>}};
    narrow[select != nullptr ? 1 : 0][(n - 1) / 16](dots, rows, n, sign, high, low, select, out);
    return;
  }
#endif
  static const ThresholdRows plain = fastest_threshold_rows(false), selected = fastest_threshold_rows(true);
  (select != nullptr ? selected : plain)(dots, rows, n, sign, high, low, select, out);
}

}  // namespace spinbayes
