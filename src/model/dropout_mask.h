#pragma once
// The dropout mask as a pure function of (seed, image, sample, site, unit): every backend
// (LibTorch, the bit-packed engine, the hardware simulator fed software masks) draws the same bits,
// whatever the thread count or batch order.
//   spatial dropout: unit = input channel, one draw broadcast over the H x W map;
//   element dropout: unit = flat element index (c * H + y) * W + x of the layer input;
//   linear layers:   unit = input feature (spatial and element coincide).
#include <cmath>
#include <cstdint>

#include "core/counter_rng.h"
#include "core/streams.h"

namespace spinbayes {

inline bool dropout_keeps(std::uint64_t seed, std::uint64_t image, std::uint64_t sample, int site,
                          std::uint64_t unit, double p) {
  return uniform_at(seed, image, sample, static_cast<std::uint64_t>(site), unit) >= p;
}

// The draws of one (seed, image, sample, site) for many units, bit-identical to dropout_keeps():
// hash_key folds its words in order, so the first four are folded once and each unit costs one
// mixer call; and u >= p is compared on the integer u * 2^53 against ceil(p * 2^53), exactly.
class DropoutDraws {
 public:
  DropoutDraws(std::uint64_t seed, std::uint64_t image, std::uint64_t sample, int site, double p)
      : state_(mix64(hash_key_state(seed, image, sample, static_cast<std::uint64_t>(site)))),
        bound_(bound_for(p)) {}
  bool keeps(std::uint64_t unit) const { return draw53(unit) >= bound_; }
  // The draw itself, u * 2^53 as an integer: a unit is kept iff draw53(unit) >= bound_for(p).
  std::uint64_t draw53(std::uint64_t unit) const { return mix64(state_ ^ (unit + kHashFold)) >> 11; }
  static std::uint64_t bound_for(double p) { return static_cast<std::uint64_t>(std::ceil(p * 0x1.0p53)); }
  // Up to 64 draws at once: bit i of the result is keeps(first + i * stride), i < count (<= 64),
  // or, given `bounds`, draw53(first + i * stride) >= bounds[i] (units with their own
  // probability, as the chip's dropout modules). Eight lanes at a time with AVX-512 where the CPU
  // has it; keep_bits_reference is the plain loop.
  std::uint64_t keep_bits(std::uint64_t first, std::uint64_t stride, int count,
                          const std::uint64_t* bounds = nullptr) const;
  std::uint64_t keep_bits_reference(std::uint64_t first, std::uint64_t stride, int count,
                                    const std::uint64_t* bounds = nullptr) const;

 private:
  // hash_key(a, b, c, d, unit) = mix64(mix64(x) ^ (unit + kHashFold)) with x as computed here.
  static constexpr std::uint64_t hash_key_state(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) {
    return mix64(mix64(mix64(a) ^ (b + kHashFold)) ^ (c + kHashFold)) ^ (d + kHashFold);
  }
  std::uint64_t state_, bound_;
};

}  // namespace spinbayes
