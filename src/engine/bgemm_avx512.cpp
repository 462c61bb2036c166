// The GEMM's row blocks with the AVX-512 microkernel (xnor_avx512.h).
#include "engine/bgemm_blocks.h"
#include "engine/xnor_avx512.h"

#if SPINBAYES_X86
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace spinbayes::xnor {
namespace {

constexpr int kBlockVectors512 = 4;

// kSharedKeep: the R rows have one keep row, k, and its words are broadcast once for all of them.
template <int R, int V, bool kSharedKeep>
SPINBAYES_AVX512 void bgemm_columns512(const BitWord* a, const BitWord* k, int words, const BitWord* bt, int npad,
                                       const std::int32_t* kept, std::int32_t* out, int n, int j) {
  for (; j + 8 * V <= npad; j += 8 * V) xnor_block512<R, V, true, kSharedKeep>(a, k, words, bt, npad, kept, out, n, j);
  if constexpr (V > 1) bgemm_columns512<R, V - 1, kSharedKeep>(a, k, words, bt, npad, kept, out, n, j);
}

template <int R, int V>
SPINBAYES_AVX512 void bgemm_rows512(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                                    const BitWord* bt, int npad, int n, std::int32_t* out, int m, int rows,
                                    BitWord* gathered) {
  if (rows == R) {
    const BitWord* arow = a.row(m);
    std::int32_t* orow = out + static_cast<std::size_t>(m) * n;
    bool shared = !keep.index.empty();
    for (int r = 1; r < R && shared; ++r)
      shared = keep.index[static_cast<std::size_t>(m + r)] == keep.index[static_cast<std::size_t>(m)];
    if (shared) {
      bgemm_columns512<R, V, true>(arow, keep.row(m), a.words, bt, npad, kept + m, orow, n, 0);
    } else {
      bgemm_columns512<R, V, false>(arow, block_keep(keep, m, R, a.words, gathered), a.words, bt, npad, kept + m,
                                    orow, n, 0);
    }
  } else if constexpr (R > 1) {
    bgemm_rows512<R - 1, V>(a, keep, kept, bt, npad, n, out, m, rows, gathered);
  }
}

// The narrow products (at most 32 columns, rows of at most 5 words: the 16- and 32-channel 3x3 and
// 1x1 convolutions of a resnet): all of b, W words x V vectors, is held in registers, and each
// row of a is one pass over its W words with V counters, so no per-block loads of b, and no
// blocks of rows to assemble.
template <int W, int V>
SPINBAYES_AVX512 void bgemm_resident512(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                                        const PackedOperand& b, std::int32_t* out, int first, int last, BitWord*) {
  __m512i bv[W][V];
#pragma GCC unroll 8
  for (int w = 0; w < W; ++w)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v)
      bv[w][v] = _mm512_loadu_si512(b.data.data() + static_cast<std::size_t>(w) * b.padded_rows + 8 * v);
  const int n = b.rows;
  const int end = std::min(a.rows, last * kBlockRowsResident512);
  for (int m = first * kBlockRowsResident512; m < end; ++m) {
    const BitWord* x = a.row(m);
    const BitWord* k = keep.row(m);
    __m512i count[V];
#pragma GCC unroll 8
    for (int w = 0; w < W; ++w) {
      const __m512i av = _mm512_set1_epi64(static_cast<long long>(x[w]));
      const __m512i kv = _mm512_set1_epi64(static_cast<long long>(k[w]));
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) {
        const __m512i differ = _mm512_popcnt_epi64(_mm512_and_si512(_mm512_xor_si512(av, bv[w][v]), kv));
        count[v] = w == 0 ? differ : _mm512_add_epi64(count[v], differ);
      }
    }
    store_dots512<V>(count, kept[m], out + static_cast<std::size_t>(m) * n, n, 0);
  }
}

// Rows of at most 32 bits (a 1x1 convolution of at most 32 channels: a shortcut's): one 32-bit
// lane per column and VPOPCNTD, so that a row's counts come out in the order its dots are
// stored, 16 columns a vector, with no lanes of padding bits to count. b, V vectors of 16
// columns (the low halves of its words), is held in registers.
template <int V, bool kOneKeep>
SPINBAYES_AVX512 void bgemm_dwords512_rows(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                                           const PackedOperand& b, std::int32_t* out, int first, int last) {
  __m512i bv[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    const BitWord* words = b.data.data() + 16 * v;
    const __m256i low = _mm512_cvtepi64_epi32(_mm512_loadu_si512(words));
    const __m256i high =
        16 * v + 8 < b.padded_rows ? _mm512_cvtepi64_epi32(_mm512_loadu_si512(words + 8)) : _mm256_setzero_si256();
    bv[v] = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
  }
  const int n = b.rows;
  const int begin = first * kBlockRowsResident512, end = std::min(a.rows, last * kBlockRowsResident512);
  const __m512i one_keep = _mm512_set1_epi32(begin < end ? static_cast<std::int32_t>(keep.row(begin)[0]) : 0);
  const BitWord* x = a.data.data();
  for (int m = begin; m < end; ++m) {
    const __m512i av = _mm512_set1_epi32(static_cast<std::int32_t>(x[static_cast<std::size_t>(m)]));
    const __m512i kv = kOneKeep ? one_keep : _mm512_set1_epi32(static_cast<std::int32_t>(keep.row(m)[0]));
    const __m512i base = _mm512_set1_epi32(kept[m]);
    std::int32_t* row = out + static_cast<std::size_t>(m) * n;
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __m512i count = _mm512_popcnt_epi32(_mm512_and_si512(_mm512_xor_si512(av, bv[v]), kv));
      const __m512i dot = _mm512_sub_epi32(base, _mm512_add_epi32(count, count));
      const int lanes = std::min(16, n - 16 * v);
      if (lanes == 16) {
        _mm512_storeu_si512(row + 16 * v, dot);
      } else {
        _mm512_mask_storeu_epi32(row + 16 * v, static_cast<__mmask16>((1u << lanes) - 1), dot);
      }
    }
  }
}

// Rows that all read one keep row (a 1x1 convolution's single rectangle of taps) broadcast it once.
template <int V>
SPINBAYES_AVX512 void bgemm_dwords512(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                                      const PackedOperand& b, std::int32_t* out, int first, int last, BitWord*) {
  if (!keep.index.empty() && keep.rows.rows == 1) {
    bgemm_dwords512_rows<V, true>(a, keep, kept, b, out, first, last);
  } else {
    bgemm_dwords512_rows<V, false>(a, keep, kept, b, out, first, last);
  }
}

template <int W>
constexpr GemmBlocks resident_for_vectors(int vectors) {
  switch (vectors) {
    case 1: return bgemm_resident512<W, 1>;
    case 2: return bgemm_resident512<W, 2>;
    case 3: return bgemm_resident512<W, 3>;
    default: return bgemm_resident512<W, 4>;
  }
}

}  // namespace

SPINBAYES_AVX512 void bgemm_blocks_avx512(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                                          const PackedOperand& b, std::int32_t* out, int first, int last,
                                          BitWord* gathered) {
  for (int m = first * kBlockRowsAvx512; m < std::min(a.rows, last * kBlockRowsAvx512); m += kBlockRowsAvx512)
    bgemm_rows512<kBlockRowsAvx512, kBlockVectors512>(a, keep, kept, b.data.data(), b.padded_rows, b.rows, out, m,
                                                      std::min(kBlockRowsAvx512, a.rows - m), gathered);
}

GemmBlocks bgemm_resident_avx512(int bits, int words, int padded_rows) {
  if (bits > 0 && bits <= 32 && padded_rows <= 64) {
    switch ((padded_rows + 15) / 16) {
      case 1: return bgemm_dwords512<1>;
      case 2: return bgemm_dwords512<2>;
      case 3: return bgemm_dwords512<3>;
      case 4: return bgemm_dwords512<4>;
      default: break;  // no columns: the general kernel
    }
  }
  const int vectors = padded_rows / 8;
  if (words < 1 || words > kResidentWords512 || vectors < 1 || vectors > kResidentVectors512) return nullptr;
  switch (words) {
    case 1: return resident_for_vectors<1>(vectors);
    case 2: return resident_for_vectors<2>(vectors);
    case 3: return resident_for_vectors<3>(vectors);
    case 4: return resident_for_vectors<4>(vectors);
    default: return resident_for_vectors<5>(vectors);
  }
}

}  // namespace spinbayes::xnor
#pragma GCC diagnostic pop
#endif
