// The IDX reader and writer: plain and gzip files, every malformed header and truncation as a
// one-line error naming the file, and no allocation beyond what the file holds.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>

#include "data_fixtures.h"

using namespace spinbayes;
using namespace spinbayes::testing;

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
