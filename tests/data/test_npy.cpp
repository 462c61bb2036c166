// The .npy reader and writer: arrays of any size (an empty one included) write back to themselves,
// float64 narrows to float, and malformed bytes are one-line errors naming the origin.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/npy.h"

using namespace spinbayes;

namespace {

std::string npy_error(const std::string& bytes) {
  try {
    parse_npy(bytes, "a.npy");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A version 1.0 file with the given header dict and data bytes.
std::string npy_with(std::string header, const std::string& data) {
  header.append(128 - 10 - header.size() - 1, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

}  // namespace

TEST(Npy, ArraysWriteBackToThemselves) {
  const std::vector<std::int64_t> shape{2, 1, 2, 3};
  std::vector<float> values(12);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.25f * static_cast<float>(i) - 1.0f;
  const std::string bytes = npy_bytes(shape, values);
  EXPECT_EQ((bytes.size() - values.size() * 4) % 64, 0u);  // the header padded to a multiple of 64
  const NpyArray back = parse_npy(bytes, "a.npy");
  EXPECT_EQ(back.shape, shape);
  EXPECT_EQ(back.values, values);
}

TEST(Npy, AnEmptyArrayWritesAndReadsBack) {
  // An empty vector's data() may be null: writing it must not hand that to memcpy.
  for (const auto& shape : {std::vector<std::int64_t>{0}, std::vector<std::int64_t>{0, 3}, std::vector<std::int64_t>{2, 0}}) {
    const NpyArray back = parse_npy(npy_bytes(shape, {}), "empty.npy");
    EXPECT_EQ(back.shape, shape);
    EXPECT_TRUE(back.values.empty());
  }
  // A float64 file of shape (0,), as numpy writes it.
  const NpyArray f64 = parse_npy(npy_with("{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }", ""), "e.npy");
  EXPECT_EQ(f64.shape, std::vector<std::int64_t>{0});
  const NpyArray back = parse_npy(npy_bytes(f64.shape, f64.values), "back");
  EXPECT_EQ(back.shape, f64.shape);
}

TEST(Npy, Float64NarrowsToFloat) {
  const double v[2] = {0.25, -1.5};
  const NpyArray a = parse_npy(
      npy_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", std::string(reinterpret_cast<const char*>(v), 16)),
      "a.npy");
  EXPECT_EQ(a.values, (std::vector<float>{0.25f, -1.5f}));
}

// A non-finite value is named by its flat index and what it is.
TEST(Npy, NonFiniteValuesAreNamedByIndexAndValue) {
  const float v[3] = {0.5f, 0.0f, INFINITY};
  const std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  EXPECT_EQ(npy_error(npy_with(header, std::string(reinterpret_cast<const char*>(v), 12))),
            "a.npy: element 2 is inf, not a finite float");
  const double big[2] = {1e39, 0.0};
  EXPECT_EQ(npy_error(npy_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                               std::string(reinterpret_cast<const char*>(big), 16))),
            "a.npy: element 0 is 1e+39, not a finite float");
}

TEST(Npy, MalformedBytesAreOneLineErrorsNamingTheOrigin) {
  const std::string four_floats(16, '\0');
  const std::vector<std::string> bad{
      "",
      "\x93NUMPX",
      npy_with("{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", four_floats),
      npy_with("{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }", four_floats),
      npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", four_floats),
      npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", four_floats),
      npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", four_floats),
      npy_with("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", four_floats),
      npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", four_floats),
      npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", std::string("\x00\x00\xc0\x7f", 4)),  // NaN
  };
  for (const auto& bytes : bad) {
    const std::string message = npy_error(bytes);
    EXPECT_EQ(message.rfind("a.npy: ", 0), 0u) << "'" << message << "'";
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}
