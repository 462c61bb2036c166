#pragma once
// A set of images in memory: pixels as floats in [0, 1], layout N x C x H x W (row-major),
// and labels (empty when the source has none, e.g. an unlabeled OOD file).
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace spinbayes {

struct ImageSet {
  std::string name;  // where it came from, for messages and reports
  int n = 0, c = 0, h = 0, w = 0;
  std::vector<float> pixels;     // n*c*h*w values in [0, 1]
  std::vector<std::int32_t> labels;  // n labels, or empty

  std::size_t image_size() const { return static_cast<std::size_t>(c) * h * w; }
  bool has_labels() const { return !labels.empty(); }
  const float* image(int i) const { return pixels.data() + static_cast<std::size_t>(i) * image_size(); }
};

// The first min(count, set.n) images, with their labels.
ImageSet first_images(const ImageSet& set, int count);

// Mean and standard deviation of all pixel values (for input normalization and noise sets).
struct PixelStatistics {
  double mean = 0.0, std = 0.0;
};
PixelStatistics pixel_statistics(const ImageSet& set);
// The same per channel (C entries).
std::vector<PixelStatistics> channel_statistics(const ImageSet& set);

// Picks the listed images (in that order) into a new set.
ImageSet select_images(const ImageSet& set, const std::vector<int>& indices);

// Seeded split of a set into (train, validation): `validation_count` images drawn without
// replacement go to validation, the rest keep their order in train.
std::pair<ImageSet, ImageSet> split_train_validation(const ImageSet& set, int validation_count,
                                                     std::uint64_t seed);

// The first `count` images of a seeded permutation (count >= n returns the set unchanged).
ImageSet random_subset(const ImageSet& set, int count, std::uint64_t seed);

}  // namespace spinbayes
