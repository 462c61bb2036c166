// Technology files (the cost model's energies, times and areas; JSON with comments over the
// defaults derived from a hardware config): Technology::load. A file that loads must read back
// from its commented JSON to the same values.
#include <cstdint>

#include "cost/technology.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  static const HardwareConfig hw = HardwareConfig::defaults();
  const auto path = fuzz::write_input("tech.json", fuzz::as_text(data, size));
  return fuzz::run_parser([&] {
    Technology tech = Technology::load(path.string(), hw);
    const std::string written = tech.table().to_commented_json();
    const auto again = fuzz::write_input("again.json", written);
    Technology reloaded = Technology::load(again.string(), hw);
    fuzz::require(reloaded.table().to_commented_json() == written, "commented JSON reads back to the same values");
  });
}
