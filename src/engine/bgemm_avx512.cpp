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

}  // namespace

SPINBAYES_AVX512 void bgemm_blocks_avx512(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                                          const PackedOperand& b, std::int32_t* out, int first, int last,
                                          BitWord* gathered) {
  for (int m = first * kBlockRowsAvx512; m < std::min(a.rows, last * kBlockRowsAvx512); m += kBlockRowsAvx512)
    bgemm_rows512<kBlockRowsAvx512, kBlockVectors512>(a, keep, kept, b.data.data(), b.padded_rows, b.rows, out, m,
                                                      std::min(kBlockRowsAvx512, a.rows - m), gathered);
}

}  // namespace spinbayes::xnor
#pragma GCC diagnostic pop
#endif
