// CIFAR-10 binary reader: the input is one batch file, read alone and twice in a row
// (concatenation).
#include <cstdint>

#include "data/cifar.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const auto batch = fuzz::write_input("data_batch_1.bin", fuzz::as_text(data, size));
  return fuzz::run_parser([&] {
    const ImageSet one = read_cifar10({batch});
    fuzz::require(one.c == 3 && one.h == 32 && one.w == 32 && one.n > 0, "32 x 32 RGB images");
    fuzz::require(one.pixels.size() == static_cast<std::size_t>(one.n) * 3072 &&
                      one.labels.size() == static_cast<std::size_t>(one.n),
                  "one label and 3072 pixels per record");
    for (const auto label : one.labels) fuzz::require(label >= 0 && label <= 9, "labels in 0..9");
    for (const float p : one.pixels) fuzz::require(p >= 0.0f && p <= 1.0f, "pixels in [0, 1]");
    const ImageSet two = read_cifar10({batch, batch});
    fuzz::require(two.n == 2 * one.n, "two batches hold twice the records");
  });
}
