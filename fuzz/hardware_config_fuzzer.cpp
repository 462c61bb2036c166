// Hardware config files (JSON with comments over the defaults): HardwareConfig::load. A file that
// loads must validate, and the table written back as commented JSON must load to the same values.
#include <cstdint>

#include "fuzz_input.h"
#include "hw/hardware_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const auto path = fuzz::write_input("hw.json", fuzz::as_text(data, size));
  return fuzz::run_parser([&] {
    HardwareConfig hw = HardwareConfig::load(path.string());
    hw.validate("fuzz");
    const std::string written = hw.table().to_commented_json();
    const auto again = fuzz::write_input("again.json", written);
    HardwareConfig reloaded = HardwareConfig::load(again.string());
    fuzz::require(reloaded.table().to_commented_json() == written, "commented JSON reads back to the same values");
  });
}
