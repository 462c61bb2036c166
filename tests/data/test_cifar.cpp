// The CIFAR-10 binary batch reader: records, labels and malformed files.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>

#include "data_fixtures.h"

using namespace spinbayes;
using namespace spinbayes::testing;

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
