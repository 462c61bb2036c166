#pragma once
// NumPy's .npy format (version 1.0 to 3.0), the way arrays travel between spinbayes and Python:
// images in (`predict --images`), probabilities and logits out.
//   "\x93NUMPY", u8 major, u8 minor, header length (u16 for 1.x, u32 for 2.x and 3.x), then a
//   Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, C, H, W), } padded
//   with spaces and a newline, then the data in C order.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace spinbayes {

struct NpyArray {
  std::vector<std::int64_t> shape;
  std::vector<float> values;  // C order
};

// Reads float32 or float64 arrays (little-endian, C order; float64 narrowed to float) of rank
// 1..8. Throws Error("<origin>: <cause>") for anything else: a bad magic, a header that does not
// parse, another dtype, Fortran order, a length that does not match the shape, a value that is not
// finite.
NpyArray parse_npy(const std::string& bytes, const std::string& origin);
NpyArray read_npy(const std::filesystem::path& path);

// The .npy (version 1.0) of a float32 array.
std::string npy_bytes(const std::vector<std::int64_t>& shape, const std::vector<float>& values);

}  // namespace spinbayes
