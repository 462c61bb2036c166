#pragma once
// Inside the GEMM: the per-instruction-set block loops (bgemm_avx2.cpp, bgemm_avx512.cpp) and what
// they share. bgemm.cpp's driver splits a product's row blocks across threads and calls one of them.
#include <algorithm>
#include <cstdint>

#include "engine/bgemm.h"
#include "engine/simd.h"

namespace spinbayes::xnor {

// A SIMD GEMM kernel's blocks [first, last) of block_rows output rows each; `gathered` holds
// block_rows keep rows side by side, for blocks whose keep rows come through an index.
using GemmBlocks = void (*)(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                            const PackedOperand& b, std::int32_t* out, int first, int last, BitWord* gathered);

// The R keep rows of the block of rows from m, `words` apart: in place when they come without an
// index, else gathered side by side into `gathered`.
inline const BitWord* block_keep(const KeepRows& keep, int m, int rows, int words, BitWord* gathered) {
  if (keep.index.empty()) return keep.rows.row(m);
  for (int r = 0; r < rows; ++r) std::copy_n(keep.row(m + r), words, gathered + static_cast<std::size_t>(r) * words);
  return gathered;
}

// Blocks of 2 rows of a x 8 rows of b: 4 byte counters and 4 lane counters in registers. (2x8,
// 3x8, 4x8, 2x12, 4x4 are within noise of each other on the 3x3 conv shapes.)
constexpr int kBlockRowsAvx2 = 2;
#if SPINBAYES_X86
SPINBAYES_AVX2 void bgemm_blocks_avx2(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept, const PackedOperand& b,
                       std::int32_t* out, int first, int last, BitWord* gathered);
#endif

// 5 rows of a x 32 columns: 20 counters in registers. (5x32 and 6x32 beat 4x16, 4x32 and 8x16 on
// the 3x3 convolutions of vgg-small: the short rows of narrow layers make the epilogue count.)
constexpr int kBlockRowsAvx512 = 5;
// Products whose b fits in registers (rows of at most kResidentWords512 words and at most
// 8 * kResidentVectors512 columns, or rows of at most 32 bits and at most 64 columns) run
// bgemm_resident_avx512's kernel instead, in blocks of kBlockRowsResident512 rows for the threads.
constexpr int kResidentWords512 = 5, kResidentVectors512 = 4, kBlockRowsResident512 = 16;
#if SPINBAYES_X86
// The resident kernel for rows of `bits` bits in `words` words and b padded to `padded_rows`
// columns, or nullptr where b does not fit.
GemmBlocks bgemm_resident_avx512(int bits, int words, int padded_rows);
SPINBAYES_AVX512 void bgemm_blocks_avx512(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept, const PackedOperand& b,
                         std::int32_t* out, int first, int last, BitWord* gathered);
#endif

}  // namespace spinbayes::xnor
