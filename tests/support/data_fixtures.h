#pragma once
// Shared by the data-layer tests: a temporary directory per test, byte and gzip writers, IDX bytes,
// one-line error checks and small synthetic image sets.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "error_checks.h"
#include "data/cifar.h"
#include "data/datasets.h"
#include "data/idx.h"
#include "data/image_set.h"
#include "data/mnist_json.h"


namespace spinbayes::testing {

namespace fs = std::filesystem;


// A fresh directory under the system temp dir, removed with everything in it at the end.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("spinbayes_test_data_" + std::to_string(::getpid()) + "_" +
                                        info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path path(const std::string& name) const { return dir_ / name; }

  fs::path dir_;
};

inline void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline void write_gzip(const fs::path& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

inline std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void append_be32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

// Raw IDX bytes with a chosen type byte, for both valid and corrupt files.
inline std::string idx_bytes(const std::vector<std::uint32_t>& dims, const std::string& data,
                      std::uint8_t type = 0x08) {
  std::string out{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (const auto d : dims) append_be32(out, d);
  return out + data;
}

inline std::string counting_bytes(std::size_t n) {
  std::string data(n, '\0');
  for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<char>(i % 256);
  return data;
}

// n images of shape c x h x w with deterministic pixel values in [0, 1] and labels i % 10.
inline ImageSet make_set(int n, int c, int h, int w) {
  ImageSet set;
  set.name = "synthetic";
  set.n = n;
  set.c = c;
  set.h = h;
  set.w = w;
  set.pixels.resize(static_cast<std::size_t>(n) * set.image_size());
  for (std::size_t i = 0; i < set.pixels.size(); ++i)
    set.pixels[i] = static_cast<float>((i * 37) % 256) / 255.0f;
  for (int i = 0; i < n; ++i) set.labels.push_back(i % 10);
  return set;
}

// A set whose single pixel per image holds the image's index, to track images through shuffles.
inline ImageSet indexed_set(int n) {
  ImageSet set;
  set.name = "indexed";
  set.n = n;
  set.c = set.h = set.w = 1;
  for (int i = 0; i < n; ++i) {
    set.pixels.push_back(static_cast<float>(i));
    set.labels.push_back(i);
  }
  return set;
}

// Pixels stored as bytes come back within half a step (ties such as 0.5 round up).
inline constexpr float kByteTolerance = 0.5f / 255.0f + 1e-6f;

inline std::vector<int> ids(const ImageSet& set) { return {set.labels.begin(), set.labels.end()}; }

inline void expect_in_unit_interval(const ImageSet& set) {
  for (const float p : set.pixels) {
    ASSERT_GE(p, 0.0f);
    ASSERT_LE(p, 1.0f);
  }
}


}  // namespace spinbayes::testing
