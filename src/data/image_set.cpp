#include "data/image_set.h"

#include <cmath>

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>

#include "core/counter_rng.h"
#include "core/error.h"

namespace spinbayes {
namespace {

// Unbiased integer in [0, bound) by rejection: draws below 2^64 mod bound are discarded so every
// residue is equally likely. Spelled out so that shuffles are identical on every standard library.
std::uint64_t uniform_below(SplitMix64& rng, std::uint64_t bound) {
  const std::uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    const std::uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

// The first `count` entries of a seeded permutation of 0..n-1 (forward Fisher-Yates stopped
// after `count` steps, so a shorter draw is always a prefix of a longer one with the same seed).
std::vector<int> permutation_prefix(int n, int count, std::uint64_t seed) {
  std::vector<int> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 rng(seed);
  for (int i = 0; i < count && i + 1 < n; ++i) {
    const auto j = i + static_cast<int>(uniform_below(rng, static_cast<std::uint64_t>(n - i)));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  order.resize(static_cast<std::size_t>(count));
  return order;
}

}  // namespace

ImageSet select_images(const ImageSet& set, const std::vector<int>& indices) {
  ImageSet out;
  out.name = set.name;
  out.n = static_cast<int>(indices.size());
  out.c = set.c;
  out.h = set.h;
  out.w = set.w;
  const std::size_t size = set.image_size();
  out.pixels.reserve(indices.size() * size);
  if (set.has_labels()) out.labels.reserve(indices.size());
  for (const int i : indices) {
    if (i < 0 || i >= set.n) {
      throw Error(set.name + ": image index " + std::to_string(i) + " out of range 0.." +
                  std::to_string(set.n - 1));
    }
    const float* image = set.image(i);
    out.pixels.insert(out.pixels.end(), image, image + size);
    if (set.has_labels()) out.labels.push_back(set.labels[static_cast<std::size_t>(i)]);
  }
  return out;
}

std::pair<ImageSet, ImageSet> split_train_validation(const ImageSet& set, int validation_count,
                                                     std::uint64_t seed) {
  if (validation_count < 0 || validation_count > set.n) {
    throw Error(set.name + ": validation size " + std::to_string(validation_count) +
                " must be in 0.." + std::to_string(set.n));
  }
  const std::vector<int> validation = permutation_prefix(set.n, validation_count, seed);
  std::vector<bool> in_validation(static_cast<std::size_t>(set.n), false);
  for (const int i : validation) in_validation[static_cast<std::size_t>(i)] = true;
  std::vector<int> train;
  train.reserve(static_cast<std::size_t>(set.n - validation_count));
  for (int i = 0; i < set.n; ++i) {
    if (!in_validation[static_cast<std::size_t>(i)]) train.push_back(i);
  }
  return {select_images(set, train), select_images(set, validation)};
}

ImageSet random_subset(const ImageSet& set, int count, std::uint64_t seed) {
  if (count < 0) throw Error(set.name + ": subset size " + std::to_string(count) + " is negative");
  if (count >= set.n) return set;
  return select_images(set, permutation_prefix(set.n, count, seed));
}

// The first min(count, set.n) images, with their labels.
ImageSet first_images(const ImageSet& set, int count) {
  ImageSet out;
  out.name = set.name;
  out.n = std::min(count, set.n);
  out.c = set.c;
  out.h = set.h;
  out.w = set.w;
  const auto n = static_cast<std::ptrdiff_t>(out.n);
  out.pixels.assign(set.pixels.begin(),
                    set.pixels.begin() + n * static_cast<std::ptrdiff_t>(set.image_size()));
  if (set.has_labels()) out.labels.assign(set.labels.begin(), set.labels.begin() + n);
  return out;
}

namespace {

PixelStatistics statistics_of(double sum, double sum_sq, std::size_t count) {
  const auto total = static_cast<double>(std::max<std::size_t>(count, 1));
  const double mean = sum / total;
  return {mean, std::sqrt(std::max(0.0, sum_sq / total - mean * mean))};
}

}  // namespace

PixelStatistics pixel_statistics(const ImageSet& set) {
  double sum = 0.0, sum_sq = 0.0;
  for (const float p : set.pixels) {
    sum += p;
    sum_sq += static_cast<double>(p) * p;
  }
  return statistics_of(sum, sum_sq, set.pixels.size());
}

std::vector<PixelStatistics> channel_statistics(const ImageSet& set) {
  const std::size_t plane = static_cast<std::size_t>(set.h) * set.w;
  std::vector<PixelStatistics> out;
  for (int ch = 0; ch < set.c; ++ch) {
    double sum = 0.0, sum_sq = 0.0;
    for (int i = 0; i < set.n; ++i) {
      const float* p = set.image(i) + static_cast<std::size_t>(ch) * plane;
      for (std::size_t k = 0; k < plane; ++k) {
        sum += p[k];
        sum_sq += static_cast<double>(p[k]) * p[k];
      }
    }
    out.push_back(statistics_of(sum, sum_sq, static_cast<std::size_t>(set.n) * plane));
  }
  return out;
}

}  // namespace spinbayes
