#pragma once
// The dropout mask as a pure function of (seed, image, sample, site, unit): every backend
// (LibTorch, the bit-packed engine, the hardware simulator fed software masks) draws the same bits,
// whatever the thread count or batch order.
//   spatial dropout: unit = input channel, one draw broadcast over the H x W map;
//   element dropout: unit = flat element index (c * H + y) * W + x of the layer input;
//   linear layers:   unit = input feature (spatial and element coincide).
#include <cstdint>

#include "core/counter_rng.h"

namespace spinbayes {

inline bool dropout_keeps(std::uint64_t seed, std::uint64_t image, std::uint64_t sample, int site,
                          std::uint64_t unit, double p) {
  return uniform_at(seed, image, sample, static_cast<std::uint64_t>(site), unit) >= p;
}

// Seeds of different evaluation streams (test set, validation set, each OOD set, training) are
// derived from the user's seed and a tag so their masks are independent.
inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t tag) { return hash_key(seed, tag); }

// FNV-1a of a name: a stable tag for stream_seed.
constexpr std::uint64_t name_tag(const char* s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s != 0; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 0x100000001b3ULL;
  return h;
}

}  // namespace spinbayes
