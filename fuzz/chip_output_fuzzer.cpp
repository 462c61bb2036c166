// test-chip's chip records (DIR/chips/*.json): parse_chip_output either returns n finite
// entropies and n classes that read back from their own JSON, or throws a one-line Error.
#include <cmath>
#include <cstdint>
#include <string>

#include "fuzz_input.h"
#include "population/field_test.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  return fuzz::run_parser([&] {
    const ChipOutput c = parse_chip_output(fuzz::as_text(data, size), "9f2c61e0a4b3d587", 3, "chip-1.json");
    fuzz::require(c.entropy.size() == 3 && c.predicted.size() == 3, "n images");
    for (double e : c.entropy) fuzz::require(std::isfinite(e) && e >= 0.0, "finite entropies");
    const ChipOutput back = parse_chip_output(chip_output_json(c, "9f2c61e0a4b3d587"), "9f2c61e0a4b3d587", 3, "again");
    fuzz::require(back.entropy == c.entropy && back.predicted == c.predicted, "the record reads back");
  });
}
