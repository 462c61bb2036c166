#include "engine/threshold.h"

#include <algorithm>

#include "core/cpu_features.h"
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
#endif

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
  if (cpu_features().avx2) {
    threshold_bits_avx2(dots, sign, bound, n, out);
    return;
  }
#endif
  threshold_bits_reference(dots, sign, bound, n, out);
}

}  // namespace spinbayes
