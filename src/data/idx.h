#pragma once
// The IDX format (LeCun et al., MNIST): big-endian magic 0x0000TTDD (TT = element type,
// DD = number of dimensions), DD big-endian uint32 sizes, then the data row-major.
// Files may be gzip-compressed (detected by the 0x1f 0x8b header, not by the file name).
#include <cstdint>
#include <filesystem>
#include <vector>

#include "data/image_set.h"

namespace spinbayes {

struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;  // element type 0x08 (unsigned byte) only
};

// Throws Error("<path>: <what is wrong>") on a missing, corrupt, truncated or oversized file.
// `max_items` > 0 reads only the first so many items (along the first dimension) and returns them
// as the array; memory and time follow what is read, not what the header announces (a gzip
// stream announcing millions of images costs nothing past the ones asked for).
IdxArray read_idx(const std::filesystem::path& path, std::uint32_t max_items = 0);
// Writes an uncompressed unsigned-byte IDX file atomically.
void write_idx(const std::filesystem::path& path, const std::vector<std::uint32_t>& dims,
               const std::vector<std::uint8_t>& data);

// Images from a 3-D (N x H x W) or 4-D (N x C x H x W) IDX file, scaled to [0, 1]; labels from
// an optional 1-D file whose length must match (an empty path means no labels).
// `max_images` > 0: only the first so many images (and labels) are read.
ImageSet load_idx_images(const std::filesystem::path& images, const std::filesystem::path& labels = {},
                         std::uint32_t max_images = 0);
// Writes an image set as IDX (pixels rounded to bytes) and, when it has labels, a label file.
void save_idx_images(const ImageSet& set, const std::filesystem::path& images,
                     const std::filesystem::path& labels);

}  // namespace spinbayes
