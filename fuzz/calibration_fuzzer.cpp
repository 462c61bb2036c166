// A run's calibration.json (temperature scaling): parse_calibration. A record that parses holds
// positive finite temperatures and reads back from its own JSON to the same record.
#include <cmath>
#include <cstdint>

#include "fuzz_input.h"
#include "uncertainty/calibration.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  return fuzz::run_parser([&] {
    const CalibrationRecord record = parse_calibration(fuzz::as_text(data, size), "calibration.json");
    fuzz::require(record.mc || record.deterministic, "at least one temperature");
    for (const auto* fit : {&record.mc, &record.deterministic}) {
      if (*fit) fuzz::require(std::isfinite((*fit)->temperature) && (*fit)->temperature > 0, "positive finite temperature");
    }
    const std::string written = calibration_json(record);
    fuzz::require(calibration_json(parse_calibration(written, "again")) == written, "the record reads back");
  });
}
