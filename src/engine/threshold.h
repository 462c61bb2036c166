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

}  // namespace spinbayes
