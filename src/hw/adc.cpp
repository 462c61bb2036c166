#include "hw/adc.h"

#include <algorithm>
#include <cmath>

#include "core/cpu_features.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SPINBAYES_ADC_AVX512 1
#else
#define SPINBAYES_ADC_AVX512 0
#endif

namespace spinbayes {

#if SPINBAYES_ADC_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {
// ADC codes of n tile sums, eight at a time: the same exact product, correctly rounded quotient
// and round-half-away as Adc::code().
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
}  // namespace
#pragma GCC diagnostic pop
#endif

Adc::Adc(int bits, int tile_rows, int cell_scale, double gain) : gain_(gain) {
  const int k = adc_codes_per_sign(bits);
  levels_ = std::min(k, tile_rows);
  step_ = k >= tile_rows ? 1.0 : static_cast<double>(tile_rows) / k;
  // code = round(gain x sum / cell_scale / step), with step = tile_rows / K, as one product over
  // one division (exact without a gain error; with one, the same rounded product on every path).
  multiplier_ = (k >= tile_rows ? 1.0 : static_cast<double>(k)) * gain;
  divisor_ = static_cast<double>(cell_scale) * (k >= tile_rows ? 1.0 : static_cast<double>(tile_rows));
  // Dividing by a power of two is multiplying by its exact reciprocal: the same quotient, faster.
  divisor_power_of_two_ = std::exp2(std::round(std::log2(divisor_))) == divisor_;
  simd_ = cpu_features().avx512_vnni;
}

std::int32_t Adc::code(std::int32_t sum) const {
  // The product is exact and the quotient correctly rounded, so every path gets the same code.
  const double x = static_cast<double>(sum) * multiplier_ / divisor_;
  const double code = x >= 0.0 ? std::floor(x + 0.5) : -std::floor(0.5 - x);
  return static_cast<std::int32_t>(std::clamp(code, static_cast<double>(-levels_), static_cast<double>(levels_)));
}

void Adc::codes(const std::int32_t* sums, int n, std::int32_t* out) const {
#if SPINBAYES_ADC_AVX512
  if (simd_) {
    adc_codes_avx512(sums, n, multiplier_, divisor_, divisor_power_of_two_, levels_, out);
    return;
  }
#endif
  for (int i = 0; i < n; ++i) out[i] = code(sums[i]);
}

}  // namespace spinbayes
