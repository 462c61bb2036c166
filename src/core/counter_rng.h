#pragma once
// Counter-based random numbers: every draw is a pure function of (seed, stream, counters), so a
// result never depends on thread count, batch order or how work is split. Used for dropout masks
// (seed, image, sample, site, index), data shuffles and synthetic data.
#include <cstdint>

namespace spinbayes {

// SplitMix64 finalizer (Steele, Lea, Flood 2014): a bijective 64-bit mixer with full avalanche.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Hash of a key tuple; each word is folded in through the mixer so that (a, b) != (b, a):
// hash_key(a, b, ...) = hash_key(mix64(a) ^ (b + kHashFold), ...), hash_key(x) = mix64(x).
constexpr std::uint64_t kHashFold = 0x632be59bd9b4e019ULL;
constexpr std::uint64_t hash_key(std::uint64_t a) { return mix64(a); }
template <typename... Rest>
constexpr std::uint64_t hash_key(std::uint64_t a, std::uint64_t b, Rest... rest) {
  return hash_key(mix64(a) ^ (b + kHashFold), static_cast<std::uint64_t>(rest)...);
}

// Uniform double in [0, 1) from the top 53 bits of a 64-bit word.
constexpr double to_unit_double(std::uint64_t bits) {
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

template <typename... Keys>
constexpr double uniform_at(Keys... keys) {
  return to_unit_double(hash_key(static_cast<std::uint64_t>(keys)...));
}

// Standard normal at a key, by Box-Muller on two uniforms drawn at (keys..., 0) and (keys..., 1).
double gaussian_from_uniforms(double u1, double u2);
template <typename... Keys>
double gaussian_at(Keys... keys) {
  return gaussian_from_uniforms(uniform_at(keys..., 0), uniform_at(keys..., 1));
}

// A small sequential generator (SplitMix64 stream) for code that wants std::shuffle and friends.
// Seeded explicitly; satisfies UniformRandomBitGenerator.
class SplitMix64 {
 public:
  using result_type = std::uint64_t;
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }
  result_type operator()() {
    state_ += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return to_unit_double((*this)()); }
  // Standard normal by Box-Muller (one of the pair; simple and exact enough for synthetic data).
  double normal();

 private:
  std::uint64_t state_;
};

}  // namespace spinbayes
