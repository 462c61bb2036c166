// A chip population's files (DIR/chips/*.json and DIR/population.json): parse_chip_record and
// parse_population_manifest either return what their writers could have written or throw a
// one-line Error; what they return is written back to the same bytes.
#include <cmath>
#include <cstdint>
#include <string>

#include "fuzz_input.h"
#include "population/chip_record.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const auto text = fuzz::as_text(data, size);
  fuzz::run_parser([&] {
    const ChipRecord record = parse_chip_record(text, "chip-1.json");
    for (const auto& [name, value] : record.metrics) fuzz::require(std::isfinite(value), "finite metrics");
    const std::string written = chip_record_json(record);
    fuzz::require(chip_record_json(parse_chip_record(written, "again")) == written, "the record reads back");
  });
  return fuzz::run_parser([&] {
    const std::string identity = parse_population_manifest(text, "population.json");
    const std::string written = population_manifest_json(identity);
    fuzz::require(parse_population_manifest(written, "again") == identity, "the manifest reads back");
    fuzz::require(identity_difference(identity, identity).empty(), "an identity equals itself");
  });
}
