// `test-chip --faults` and `--vectors`: parse_fault_list either returns cells of known classes at
// severities inside their ranges, each giving a valid hardware config, that read back from their
// own text, or throws a one-line Error; parse_vector_count returns 1..training images or throws.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "fuzz_input.h"
#include "hw/fault_campaign.h"
#include "population/field_test.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const std::string text(fuzz::as_text(data, size));
  fuzz::run_parser([&] {
    const std::vector<FaultCell> cells = parse_fault_list(text);
    fuzz::require(!cells.empty(), "a list holds a cell");
    std::string again;
    for (const FaultCell& c : cells) {
      const FaultClass& f = fault_class(c.fault);
      fuzz::require(std::isfinite(c.severity) && c.severity != 0.0 && c.severity >= f.low && c.severity <= f.high,
                    "severities inside their class's range");
      with_fault(HardwareConfig::defaults(), c);
      again += fmt::format("{}{}:{:.17g}", again.empty() ? "" : ",", c.fault, c.severity);
    }
    const std::vector<FaultCell> back = parse_fault_list(again);
    fuzz::require(back.size() == cells.size(), "the cells read back from their text");
    for (std::size_t i = 0; i < cells.size(); ++i) {
      fuzz::require(back[i].fault == cells[i].fault && back[i].severity == cells[i].severity, "the same cells");
    }
  });
  return fuzz::run_parser([&] {
    const int k = parse_vector_count(text, 55000);
    fuzz::require(k >= 1 && k <= 55000, "a count within the training images");
  });
}
