// `predict --images X.npy`: parse_npy either returns an array whose values fill its shape and which
// writes back (as float32) to an array that parses to the same, or throws a one-line Error.
#include <cstdint>
#include <string>

#include "data/npy.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  return fuzz::run_parser([&] {
    const NpyArray a = parse_npy(bytes, "images.npy");
    std::int64_t n = 1;
    for (const auto d : a.shape) n *= d;
    fuzz::require(static_cast<std::size_t>(n) == a.values.size(), "the values fill the shape");
    const NpyArray back = parse_npy(npy_bytes(a.shape, a.values), "back");
    fuzz::require(back.shape == a.shape && back.values == a.values, "the array writes back to itself");
  });
}
