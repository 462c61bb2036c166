// Hardware config files (JSON with comments over the defaults): HardwareConfig::load. A file that
// loads must validate, the table written back as commented JSON must load to the same values, and
// what it implies (the derived quantities, IR drop's nodal solution on small tiles, a bank of dropout
// modules) must be finite numbers.
#include <cmath>
#include <cstdint>

#include "fuzz_input.h"
#include "hw/derived.h"
#include "hw/dropout_module.h"
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
    for (const DerivedQuantity& q : derived_quantities(hw, 0.1).quantities) {
      fuzz::require(std::isfinite(q.value), "derived quantities are finite");
      // IR drop (small tiles): a cell's share of the read voltage, from the nodal solver.
      if (q.name.rfind("ir_drop_", 0) == 0 && q.unit == "ratio") {
        fuzz::require(q.value > 0.0 && q.value <= 1.0, "IR-drop voltage fractions are in (0, 1]");
      }
    }
    const DropoutBank bank(hw, 0.1, 16, 1, 0);  // may refuse the write current (Error), never NaN
    for (int m = 0; m < bank.size(); ++m) {
      fuzz::require(bank.probability(m) >= 0.0 && bank.probability(m) <= 1.0, "module probabilities are in [0, 1]");
    }
  });
}
