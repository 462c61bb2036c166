#pragma once
// The CIFAR-10 binary format: records of 1 label byte followed by 3072 pixel bytes
// (1024 red, 1024 green, 1024 blue, each 32 x 32 row-major). data_batch_1.bin .. test_batch.bin.
#include <filesystem>
#include <vector>

#include "data/image_set.h"

namespace spinbayes {

// Reads and concatenates the given batch files into an N x 3 x 32 x 32 set scaled to [0, 1].
// Throws Error naming the file when it is missing, empty, not a whole number of records, or has a
// label outside 0..9.
ImageSet read_cifar10(const std::vector<std::filesystem::path>& batch_files);

}  // namespace spinbayes
