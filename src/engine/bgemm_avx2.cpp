// The GEMM's row blocks with the AVX2 microkernel (xnor_avx2.h).
#include "engine/bgemm_blocks.h"
#include "engine/xnor_avx2.h"

#if SPINBAYES_X86
namespace spinbayes::xnor {
namespace {

constexpr int kBlockVectors = 2;

// Rows [m, m + R) of the output, columns from j on: V vectors of columns at a time, then the rest
// with narrower blocks.
template <int R, int V>
SPINBAYES_AVX2 void bgemm_columns(const BitWord* a, const BitWord* k, int words, const BitWord* bt, int npad,
                                  const std::int32_t* kept, std::int32_t* out, int n, int j) {
  for (; j + 4 * V <= npad; j += 4 * V) xnor_block<R, V, true>(a, k, words, bt, npad, kept, out, n, j);
  if constexpr (V > 1) bgemm_columns<R, V - 1>(a, k, words, bt, npad, kept, out, n, j);
}

// Rows [m, m + rows) of the output, rows <= R.
template <int R, int V>
SPINBAYES_AVX2 void bgemm_rows(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                               const BitWord* bt, int npad, int n, std::int32_t* out, int m, int rows,
                               BitWord* gathered) {
  if (rows == R) {
    bgemm_columns<R, V>(a.row(m), block_keep(keep, m, R, a.words, gathered), a.words, bt, npad, kept + m,
                        out + static_cast<std::size_t>(m) * n, n, 0);
  } else if constexpr (R > 1) {
    bgemm_rows<R - 1, V>(a, keep, kept, bt, npad, n, out, m, rows, gathered);
  }
}

}  // namespace

// Blocks [first, last) of kBlockRowsAvx2 rows of the output.
SPINBAYES_AVX2 void bgemm_blocks_avx2(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                                      const PackedOperand& b, std::int32_t* out, int first, int last,
                                      BitWord* gathered) {
  for (int m = first * kBlockRowsAvx2; m < std::min(a.rows, last * kBlockRowsAvx2); m += kBlockRowsAvx2)
    bgemm_rows<kBlockRowsAvx2, kBlockVectors>(a, keep, kept, b.data.data(), b.padded_rows, b.rows, out, m,
                                              std::min(kBlockRowsAvx2, a.rows - m), gathered);
}

}  // namespace spinbayes::xnor
#endif
