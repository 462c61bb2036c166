#include "hw/tile_sums.h"

#include <bit>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SPINBAYES_TILE_SUMS_AVX512 1
#else
#define SPINBAYES_TILE_SUMS_AVX512 0
#endif

namespace spinbayes {

#if SPINBAYES_TILE_SUMS_AVX512
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

// The relief's bytes and weight bits of a group's columns (kRelief).
struct GroupRelief {
  const std::int8_t* beta[kColumnGroup];
  const BitWord* w[kColumnGroup];
  const std::int32_t* base[kColumnGroup];  // tile t's at base[q][t * base_stride]
  int base_stride = 1;
};

// One 64-row word of kColumns columns: each driven row's value for its input bit, summed into acc;
// with kRelief, twice the relief's byte of each driven row the column matches too.
template <int kColumns, bool kRelief>
inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni"))) void pick_and_add(
    __m512i* acc, const std::int8_t* const* v, const GroupRelief& relief, int word, BitWord keep, BitWord x,
    __m512i ones, __m512i twos) {
  if (keep == 0) return;  // no row driven: dropped channels, padding
  const __mmask64 bit0 = keep & ~x, bit1 = keep & x;
  const std::size_t b = 128 * static_cast<std::size_t>(word);
#pragma GCC unroll 8
  for (int q = 0; q < kColumns; ++q) {
    const __m512i picked = _mm512_mask_loadu_epi8(_mm512_maskz_loadu_epi8(bit0, v[q] + b), bit1, v[q] + b + 64);
    acc[q] = _mm512_dpbusd_epi32(acc[q], ones, picked);
    if constexpr (kRelief) {
      const __mmask64 matched = keep & ~(x ^ relief.w[q][word]);
      acc[q] = _mm512_dpbusd_epi32(acc[q], twos, _mm512_maskz_loadu_epi8(matched, relief.beta[q] + 64 * static_cast<std::size_t>(word)));
    }
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
template <int kColumns, bool kRelief>
inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni"))) void group_tile_sums(
    const BitWord* x, const BitWord* keep, const std::int8_t* const* v, const GroupRelief& relief, int n, int words,
    int tile_words, int tiles, __m512i ones, __m512i twos, __m512i* ring, int& filled, std::int32_t*& sums) {
  for (int t = 0; t < tiles; ++t) {
    __m512i even[kColumns], odd[kColumns];
#pragma GCC unroll 8
    for (int q = 0; q < kColumns; ++q) even[q] = odd[q] = _mm512_setzero_si512();
    const int end = std::min(words, (t + 1) * tile_words);
    int word = t * tile_words;
    for (; word + 1 < end; word += 2) {
      pick_and_add<kColumns, kRelief>(even, v, relief, word, keep[word], x[word], ones, twos);
      pick_and_add<kColumns, kRelief>(odd, v, relief, word + 1, keep[word + 1], x[word + 1], ones, twos);
    }
    if (word < end) pick_and_add<kColumns, kRelief>(even, v, relief, word, keep[word], x[word], ones, twos);
#pragma GCC unroll 8
    for (int q = 0; q < kColumns; ++q) {
      ring[filled + q] = _mm512_add_epi32(even[q], odd[q]);
      if constexpr (kRelief) {  // the tile's base in the first lane
        const std::int32_t base = relief.base[q][static_cast<std::size_t>(t) * relief.base_stride];
        ring[filled + q] = _mm512_add_epi32(ring[filled + q], _mm512_zextsi128_si512(_mm_cvtsi32_si128(base)));
      }
    }
    filled += n;
    if (filled >= 16) flush_ring(ring, filled, sums);
  }
}

// Tile sums of the listed columns: per 64-row word, a masked load picks each driven row's MTJ2
// value (input bit 0) and a merging masked load its MTJ1 value (bit 1); VPDPBUSD against bytes of
// ones adds the 64 picks into sixteen 32-bit lanes (with the relief, a second VPDPBUSD adds its
// matched rows' bytes against bytes of twos). Four columns at a time (the last group one, two or
// four), two accumulators each, so eight independent chains hide the instruction's latency;
// sixteen tiles' lanes are summed at a time, in tile_sum_index order.
// Every index into the accumulators is a constant, so that they live in registers.
template <bool kRelief>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void column_sums_vnni512(
    const BitWord* x, const BitWord* keep, const std::int8_t* values, std::size_t column_bytes, const int* columns,
    int count, int words, int tile_words, int tiles, std::int32_t* sums, const ReliefBytes* relief) {
  constexpr int kColumns = kColumnGroup;
  const __m512i ones = _mm512_set1_epi8(1), twos = _mm512_set1_epi8(2);
  __m512i ring[16 + kColumns];
  int filled = 0;
  for (int i0 = 0; i0 < count; i0 += kColumns) {
    const int n = std::min(kColumns, count - i0);
    const std::int8_t* v[kColumns];
    GroupRelief group{};
    for (int q = 0; q < kColumns; ++q) {
      const int j = columns[i0 + std::min(q, n - 1)];
      v[q] = values + static_cast<std::size_t>(j) * column_bytes;
      if constexpr (kRelief) {
        const int ct = j / relief->tile_cols;
        group.beta[q] = relief->beta + static_cast<std::size_t>(ct) * relief->tile_stride;
        group.w[q] = relief->weights + static_cast<std::size_t>(j) * relief->weight_stride;
        group.base[q] = relief->base + ct;
        group.base_stride = relief->col_tiles;
      }
    }
    if (n == 1) {
      group_tile_sums<1, kRelief>(x, keep, v, group, n, words, tile_words, tiles, ones, twos, ring, filled, sums);
    } else if (n == 2) {
      group_tile_sums<2, kRelief>(x, keep, v, group, n, words, tile_words, tiles, ones, twos, ring, filled, sums);
    } else {
      group_tile_sums<kColumns, kRelief>(x, keep, v, group, n, words, tile_words, tiles, ones, twos, ring, filled, sums);
    }
  }
  if (filled > 0) {
    for (int i = filled; i < 16; ++i) ring[i] = _mm512_setzero_si512();
    _mm512_mask_storeu_epi32(sums, static_cast<__mmask16>((1u << filled) - 1), sums_of_16(ring));
  }
}
}  // namespace
#pragma GCC diagnostic pop
#endif

bool tile_sums_vnni(const BitWord* x, const BitWord* keep, const std::int8_t* values, std::size_t column_bytes,
                    const int* columns, int count, int words, int tile_words, int tiles, std::int32_t* sums,
                    const ReliefBytes* relief) {
#if SPINBAYES_TILE_SUMS_AVX512
  // Tiles start on word boundaries (tile_rows is a multiple of 64); rows past the layer's are never
  // driven.
  if (relief != nullptr) {
    column_sums_vnni512<true>(x, keep, values, column_bytes, columns, count, words, tile_words, tiles, sums, relief);
  } else {
    column_sums_vnni512<false>(x, keep, values, column_bytes, columns, count, words, tile_words, tiles, sums, nullptr);
  }
  return true;
#else
  (void)x, (void)keep, (void)values, (void)column_bytes, (void)columns, (void)count, (void)words, (void)tile_words,
      (void)tiles, (void)sums, (void)relief;
  return false;
#endif
}

std::int32_t stuck_difference(const BitWord* plus, const BitWord* minus, const BitWord* keep, const BitWord* x,
                              int words) {
  std::int32_t difference = 0;
  for (int w = 0; w < words; ++w) {
    const BitWord low = keep[w] & ~x[w];
    difference += std::popcount(plus[w] & low) - std::popcount(minus[w] & low);
  }
  return difference;
}

#if SPINBAYES_TILE_SUMS_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {
__attribute__((target("avx512f,avx512vpopcntdq"))) std::int32_t stuck_difference512(const BitWord* plus,
                                                                                   const BitWord* minus,
                                                                                   const BitWord* keep,
                                                                                   const BitWord* x, int words) {
  __m512i acc = _mm512_setzero_si512();
  for (int w = 0; w < words; w += 8) {
    const auto lanes = static_cast<__mmask8>(words - w >= 8 ? 0xffu : (1u << (words - w)) - 1);
    const __m512i low = _mm512_andnot_si512(_mm512_maskz_loadu_epi64(lanes, x + w), _mm512_maskz_loadu_epi64(lanes, keep + w));
    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_and_si512(low, _mm512_maskz_loadu_epi64(lanes, plus + w))));
    acc = _mm512_sub_epi64(acc, _mm512_popcnt_epi64(_mm512_and_si512(low, _mm512_maskz_loadu_epi64(lanes, minus + w))));
  }
  return static_cast<std::int32_t>(_mm512_reduce_add_epi64(acc));
}
}  // namespace
#pragma GCC diagnostic pop
#endif

bool stuck_difference_avx512(const BitWord* plus, const BitWord* minus, const BitWord* keep, const BitWord* x,
                             int words, std::int32_t& difference) {
#if SPINBAYES_TILE_SUMS_AVX512
  difference = stuck_difference512(plus, minus, keep, x, words);
  return true;
#else
  (void)plus, (void)minus, (void)keep, (void)x, (void)words, (void)difference;
  return false;
#endif
}

std::int32_t matched_sum(const BitWord* x, const BitWord* w, const BitWord* keep, const std::int32_t* beta, int words) {
  std::int32_t sum = 0;
  for (int word = 0; word < words; ++word) {
    for (BitWord bits = ~(x[word] ^ w[word]) & keep[word]; bits != 0; bits &= bits - 1) {
      sum += beta[word * kBitsPerWord + std::countr_zero(bits)];
    }
  }
  return sum;
}

#if SPINBAYES_TILE_SUMS_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {
__attribute__((target("avx512f"))) std::int32_t matched_sum512(const BitWord* x, const BitWord* w, const BitWord* keep,
                                                                const std::int32_t* beta, int words) {
  __m512i acc = _mm512_setzero_si512();
  for (int word = 0; word < words; ++word) {
    const BitWord bits = ~(x[word] ^ w[word]) & keep[word];
    for (int k = 0; k < 4; ++k) {
      const auto lanes = static_cast<__mmask16>(bits >> (16 * k));
      acc = _mm512_mask_add_epi32(acc, lanes, acc, _mm512_loadu_si512(beta + word * kBitsPerWord + 16 * k));
    }
  }
  return _mm512_reduce_add_epi32(acc);
}
}  // namespace
#pragma GCC diagnostic pop
#endif

bool matched_sum_avx512(const BitWord* x, const BitWord* w, const BitWord* keep, const std::int32_t* beta, int words,
                        std::int32_t& sum) {
#if SPINBAYES_TILE_SUMS_AVX512
  sum = matched_sum512(x, w, keep, beta, words);
  return true;
#else
  (void)x, (void)w, (void)keep, (void)beta, (void)words, (void)sum;
  return false;
#endif
}

}  // namespace spinbayes
