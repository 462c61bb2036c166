#pragma once
// The AVX-512 XNOR-popcount microkernel, shared by the GEMM (bgemm_avx512.cpp) and the popcount
// roof (bench/popcount_roof.cpp).
#include <algorithm>
#include <cstdint>

#include "engine/bit_matrix.h"
#include "engine/simd.h"

#if SPINBAYES_X86
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as merge sources, which -Wuninitialized
// flags inside the system header once inlined here (GCC bug 105593); the warning is off for the
// AVX-512 kernels only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace spinbayes::xnor {

// The AVX-512 microkernel: the same transposed b (npad a multiple of 8), one 512-bit vector holding
// word w of 8 rows of b, and VPOPCNTQ counting each 64-bit lane directly, so there are no byte
// counters to flush. R rows of a x 8 * V columns from j0. The XOR and the AND compile to one
// VPTERNLOGQ.
//
// Word w's popcounts of (a XOR b) AND k into R x V counters: the first word sets them, the
// others add to them.
template <int R, int V, bool kMasked, bool kFirst, bool kSharedKeep>
SPINBAYES_AVX512 inline __attribute__((always_inline)) void xnor_step512(__m512i (&count)[R][V], const BitWord* a,
                                                                        const BitWord* k, int words,
                                                                        const BitWord* b_words, int w) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const std::size_t i = static_cast<std::size_t>(r) * words + w;
    const __m512i av = _mm512_set1_epi64(static_cast<long long>(a[i]));
    const __m512i kv = kMasked ? _mm512_set1_epi64(static_cast<long long>(k[kSharedKeep ? w : i])) : __m512i{};
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      const __m512i bv = _mm512_loadu_si512(b_words + 8 * v);
      __m512i x = _mm512_xor_si512(av, bv);
      if constexpr (kMasked) x = _mm512_and_si512(x, kv);
      if constexpr (kFirst) {
        count[r][v] = _mm512_popcnt_epi64(x);
      } else {
        count[r][v] = _mm512_add_epi64(count[r][v], _mm512_popcnt_epi64(x));
      }
    }
  }
}

// dot = kept - 2 * count for the 8 * V columns from j0 of one row (columns past n not stored).
// Two counters of 8 lanes (their low halves: the counts are < 2^31) go into one vector of 16
// int32, stored with a lane mask where it runs past column n.
template <int V>
SPINBAYES_AVX512 inline __attribute__((always_inline)) void store_dots512(const __m512i (&count)[V], std::int32_t kept,
                                                                         std::int32_t* row, int n, int j0) {
  const __m512i low_halves = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i base = _mm512_set1_epi32(kept);
#pragma GCC unroll 8
  for (int v = 0; v < V; v += 2) {
    const int j = j0 + 8 * v;
    if (j >= n) break;  // padding columns only
    const int lanes = std::min(v + 2 <= V ? 16 : 8, n - j);
    const __m512i counts = v + 1 < V ? _mm512_permutex2var_epi32(count[v], low_halves, count[v + 1])
                                     : _mm512_permutexvar_epi32(low_halves, count[v]);
    const __m512i dot = _mm512_sub_epi32(base, _mm512_add_epi32(counts, counts));
    if (lanes == 16) {
      _mm512_storeu_si512(row + j, dot);
    } else {
      _mm512_mask_storeu_epi32(row + j, static_cast<__mmask16>((1u << lanes) - 1), dot);
    }
  }
}

template <int R, int V, bool kMasked, bool kSharedKeep = false>
SPINBAYES_AVX512 void xnor_block512(const BitWord* a, const BitWord* k, int words, const BitWord* bt, int npad,
                                    const std::int32_t* kept, std::int32_t* out, int n, int j0) {
  __m512i count[R][V];
  xnor_step512<R, V, kMasked, true, kSharedKeep>(count, a, k, words, bt + j0, 0);
  for (int w = 1; w < words; ++w)
    xnor_step512<R, V, kMasked, false, kSharedKeep>(count, a, k, words, bt + static_cast<std::size_t>(w) * npad + j0,
                                                    w);

#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) store_dots512<V>(count[r], kept[r], out + static_cast<std::size_t>(r) * n, n, j0);
}

}  // namespace spinbayes::xnor
#pragma GCC diagnostic pop
#endif
