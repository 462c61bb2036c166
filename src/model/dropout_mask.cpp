#include "model/dropout_mask.h"

#include "core/cpu_features.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SPINBAYES_MASK_AVX512 1
#else
#define SPINBAYES_MASK_AVX512 0
#endif

namespace spinbayes {

std::uint64_t DropoutDraws::keep_bits_reference(std::uint64_t first, std::uint64_t stride, int count,
                                                 const std::uint64_t* bounds) const {
  std::uint64_t bits = 0;
  for (int i = 0; i < count; ++i) {
    const std::uint64_t bound = bounds != nullptr ? bounds[i] : bound_;
    bits |= static_cast<std::uint64_t>(draw53(first + i * stride) >= bound) << i;
  }
  return bits;
}

#if SPINBAYES_MASK_AVX512
// GCC 12's AVX-512 intrinsics trip -W(maybe-)uninitialized inside the system header once inlined
// (GCC bug 105593); off for these kernels only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {

// mix64 on eight lanes (AVX-512DQ has the 64-bit multiply).
__attribute__((target("avx512f,avx512dq"))) inline __m512i mix64_x8(__m512i z) {
  z = _mm512_add_epi64(z, _mm512_set1_epi64(static_cast<long long>(0x9e3779b97f4a7c15ULL)));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                         _mm512_set1_epi64(static_cast<long long>(0xbf58476d1ce4e5b9ULL)));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                         _mm512_set1_epi64(static_cast<long long>(0x94d049bb133111ebULL)));
  return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

__attribute__((target("avx512f,avx512dq"))) std::uint64_t keep_bits_avx512(std::uint64_t state, std::uint64_t bound,
                                                                           const std::uint64_t* bounds,
                                                                           std::uint64_t first, std::uint64_t stride,
                                                                           int count) {
  const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  const __m512i step = _mm512_set1_epi64(static_cast<long long>(stride));
  const __m512i fold = _mm512_set1_epi64(static_cast<long long>(kHashFold));
  const __m512i st = _mm512_set1_epi64(static_cast<long long>(state));
  const __m512i b = _mm512_set1_epi64(static_cast<long long>(bound));
  std::uint64_t bits = 0;
  for (int i = 0; i < count; i += 8) {
    // units first + (i + lane) * stride; 64-bit wrap-around as in the scalar code.
    const __m512i unit = _mm512_add_epi64(
        _mm512_set1_epi64(static_cast<long long>(first + static_cast<std::uint64_t>(i) * stride)),
        _mm512_mullo_epi64(lane, step));
    const __m512i h = mix64_x8(_mm512_xor_si512(st, _mm512_add_epi64(unit, fold)));
    const int valid = count - i < 8 ? count - i : 8;
    const auto lanes = static_cast<__mmask8>((1u << valid) - 1u);
    const __m512i lane_bound = bounds != nullptr ? _mm512_maskz_loadu_epi64(lanes, bounds + i) : b;
    const __mmask8 keep = _mm512_mask_cmpge_epu64_mask(lanes, _mm512_srli_epi64(h, 11), lane_bound);
    bits |= static_cast<std::uint64_t>(keep) << i;
  }
  return bits;
}


}  // namespace
#pragma GCC diagnostic pop
#endif

std::uint64_t DropoutDraws::keep_bits(std::uint64_t first, std::uint64_t stride, int count,
                                       const std::uint64_t* bounds) const {
#if SPINBAYES_MASK_AVX512
  if (cpu_features().avx512dq) return keep_bits_avx512(state_, bound_, bounds, first, stride, count);
#endif
  return keep_bits_reference(first, stride, count, bounds);
}

}  // namespace spinbayes
