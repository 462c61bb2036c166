#pragma once
// The tile sums of a window: for each listed column, the sum over each row tile of the values its
// driven rows pick (the cell array's bytes, 1 / cell_scale dot units). With AVX-512 VNNI a masked
// byte load picks 64 rows' values per instruction and VPDPBUSD adds them.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "engine/bit_matrix.h"

namespace spinbayes {

constexpr int kMaxTiles = 1024;  // row tiles one column may span
// Tile sums of `count` columns are kept in groups of kColumnGroup columns, tile by tile: column
// i's sum in tile t is at tile_sum_index(i, t, count, tiles).
constexpr int kColumnGroup = 4;
inline std::size_t tile_sum_index(int i, int t, int count, int tiles) {
  const int first = i - i % kColumnGroup, n = std::min(kColumnGroup, count - first);
  return static_cast<std::size_t>(first) * tiles + static_cast<std::size_t>(t) * n + i % kColumnGroup;
}

// IR drop's relief (cell_array.h) as bytes the sums take with the values: per column tile, a byte
// per padded row, beta of that row for the window's driven rows (1 / cell_scale units; 0 in tiles
// that give nothing back); a column adds 2 beta over the rows it matches and the window drives,
// the set bits of ~(x ^ w) & keep, w its weight bits, and to each tile's sum its tile's base.
struct ReliefBytes {
  const std::int8_t* beta = nullptr;  // column tile ct's bytes at beta + ct * tile_stride
  std::size_t tile_stride = 0;
  int tile_cols = 1;
  const BitWord* weights = nullptr;  // column j's weight bits at weights + j * weight_stride
  std::size_t weight_stride = 0;
  const std::int32_t* base = nullptr;  // row tile t, column tile ct: base[t * col_tiles + ct]
  int col_tiles = 1;
};

// The tile sums of the listed columns of one window (x: its input bits, keep: its driven rows,
// `words` 64-row words, tiles of tile_words words) from `values` (column_bytes a column, bytes at
// CellArray::value_index), with the relief's matched rows added where `relief` is given. False
// where this build has no AVX-512 kernel (nothing written).
bool tile_sums_vnni(const BitWord* x, const BitWord* keep, const std::int8_t* values, std::size_t column_bytes,
                    const int* columns, int count, int words, int tile_words, int tiles, std::int32_t* sums,
                    const ReliefBytes* relief = nullptr);

// Stuck cells on driven rows with input bit 0, those at +1 less those at -1: the popcounts of
// plus AND keep AND NOT x less those of minus AND keep AND NOT x over `words` words. The plain
// loop, and with the AVX-512 vector popcount (false where this build has none: nothing written).
std::int32_t stuck_difference(const BitWord* plus, const BitWord* minus, const BitWord* keep, const BitWord* x,
                              int words);
bool stuck_difference_avx512(const BitWord* plus, const BitWord* minus, const BitWord* keep, const BitWord* x,
                             int words, std::int32_t& difference);

// IR drop's relief (cell_array.h): the sum of beta over the rows a column matches and a window
// drives, the set bits of ~(x ^ w) & keep over `words` words (beta: 64 integers a word). The plain
// loop, and 16 lanes at a time under the mask (false where this build has no AVX-512 kernel).
std::int32_t matched_sum(const BitWord* x, const BitWord* w, const BitWord* keep, const std::int32_t* beta, int words);
bool matched_sum_avx512(const BitWord* x, const BitWord* w, const BitWord* keep, const std::int32_t* beta, int words,
                        std::int32_t& sum);

}  // namespace spinbayes
