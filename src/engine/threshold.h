#pragma once
// The sense decision of a row of dot products, packed: bit j of out (n bits, whole words written)
// is 1 iff sign[j] * dots[j] >= bound[j], with sign[j] = +1 or -1 (a flipped threshold:
// dot <= b is -dot >= -b).
#include <cstdint>

#include "engine/bit_matrix.h"

namespace spinbayes {

void threshold_bits_reference(const std::int32_t* dots, const std::int32_t* sign, const std::int32_t* bound, int n,
                              BitWord* out);
// The same bits, eight decisions per step with AVX2 where the CPU has it.
void threshold_bits(const std::int32_t* dots, const std::int32_t* sign, const std::int32_t* bound, int n,
                    BitWord* out);

// The decisions of `rows` rows of n dots (row-major) into rows [0, rows) of `out` (n bits a row):
// bit j of row m is 1 iff sign[j] * dot >= high[j] where bit j of row m of `select` is 1, else
// >= low[j]. Without `select` (nullptr) every decision uses `high` and `low` is not read. (A
// residual block's shortcut bit selects one of two thresholds per output channel.)
void threshold_rows_reference(const std::int32_t* dots, int rows, int n, const std::int32_t* sign,
                              const std::int32_t* high, const std::int32_t* low, const BitMatrix* select,
                              BitMatrix& out);
// The same bits, sixteen decisions per step with AVX-512 (eight with AVX2) where the CPU has it,
// the selection made on the packed words: (select & fires_high) | (~select & fires_low).
void threshold_rows(const std::int32_t* dots, int rows, int n, const std::int32_t* sign, const std::int32_t* high,
                    const std::int32_t* low, const BitMatrix* select, BitMatrix& out);

}  // namespace spinbayes
