#pragma once
// The AVX2 XNOR-popcount microkernel, shared by the GEMM (bgemm_avx2.cpp) and the popcount roof
// (bench/popcount_roof.cpp) so that the roof measures the kernel the GEMM runs.
#include <algorithm>
#include <cstdint>

#include "engine/bit_matrix.h"
#include "engine/simd.h"

#if SPINBAYES_X86
namespace spinbayes::xnor {

// Per-byte popcount of a 256-bit vector by nibble lookup (Mula, Kurz, Lemire, "Faster population
// counts using AVX2 instructions", 2018): vpshufb looks up the count of each 4-bit half in a
// 16-entry table, and the two halves are added, giving 0..8 per byte.
SPINBAYES_AVX2 inline __m256i popcount_bytes(__m256i v) {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_and_si256(v, nibble);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
  return _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi));
}

// A byte counter gains at most 8 per word: flush the byte counters into 64-bit lanes (vpsadbw
// against zero) every 31 words, before they pass 255.
constexpr int kFlushWords = 31;

// The AVX2 microkernel. b is transposed (bt: words x npad, column j of word w at w * npad + j, npad
// a multiple of 4, zero columns past n), so that one 256-bit vector holds word w of 4 rows of b:
// XOR with a word of a broadcast to all 4 lanes gives 4 dot products at once, and vpsadbw leaves
// each one's count in its own 64-bit lane. No horizontal sums, no scalar tail, any `words`.
//
// Computes out[r * n + j] = kept[r] - 2 * popcount((a_r XOR b_j) AND k_r) (no AND when !kMasked)
// for R consecutive rows of a and k (`words` apart) and the 4 * V columns from j0 (those below n).
template <int R, int V, bool kMasked>
SPINBAYES_AVX2 void xnor_block(const BitWord* a, const BitWord* k, int words, const BitWord* bt, int npad,
                               const std::int32_t* kept, std::int32_t* out, int n, int j0) {
  __m256i count[R][V];  // 64-bit lanes: the popcount of each (row, column) pair
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) count[r][v] = _mm256_setzero_si256();

  for (int w = 0; w < words;) {
    const int end = std::min(words, w + kFlushWords);
    __m256i bytes[R][V];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) bytes[r][v] = _mm256_setzero_si256();
    for (; w < end; ++w) {
      const BitWord* b_words = bt + static_cast<std::size_t>(w) * npad + j0;
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const std::size_t i = static_cast<std::size_t>(r) * words + w;
        const __m256i av = _mm256_set1_epi64x(static_cast<long long>(a[i]));
        const __m256i kv = kMasked ? _mm256_set1_epi64x(static_cast<long long>(k[i])) : __m256i{};
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) {
          const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b_words + 4 * v));
          __m256i x = _mm256_xor_si256(av, bv);
          if constexpr (kMasked) x = _mm256_and_si256(x, kv);
          bytes[r][v] = _mm256_add_epi8(bytes[r][v], popcount_bytes(x));
        }
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
        count[r][v] = _mm256_add_epi64(count[r][v], _mm256_sad_epu8(bytes[r][v], _mm256_setzero_si256()));
  }

  // kept - 2 * count in 64-bit lanes, then the low halves of the lanes gathered into 4 int32.
  const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const __m256i base = _mm256_set1_epi64x(kept[r]);
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __m256i dot = _mm256_sub_epi64(base, _mm256_add_epi64(count[r][v], count[r][v]));
      const __m128i dot32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(dot, low_halves));
      const int j = j0 + 4 * v;
      std::int32_t* o = out + static_cast<std::size_t>(r) * n + j;
      if (j + 4 <= n) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o), dot32);
      } else if (j < n) {  // the last, partial group of columns (padding columns are dropped)
        alignas(16) std::int32_t lanes[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(lanes), dot32);
        std::copy(lanes, lanes + (n - j), o);
      }
    }
  }
}

}  // namespace spinbayes::xnor
#endif
