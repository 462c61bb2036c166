#pragma once
// What a hardware config's parameters imply for its devices: resistances and conductances at the
// read bias, the dot unit, the dropout modules' write current and regime. Not parameters: each is
// recomputed by the formula printed beside it from the parameters `spinbayes hw` prints.
#include <string>
#include <vector>

#include "hw/hardware_config.h"

namespace spinbayes {

struct DerivedQuantity {
  std::string name;     // snake_case with its unit, as in the config (r_p_ohm)
  double value = 0.0;
  std::string unit;
  std::string formula;  // how it follows from the parameters (and the quantities above it)
};

struct DerivedQuantities {
  std::vector<DerivedQuantity> quantities;
  std::string unreachable;  // why the write quantities are missing: p cannot be reached (else empty)
};
// For dropout probability p (the write current's target).
DerivedQuantities derived_quantities(const HardwareConfig& hw, double p);
// The list as comment lines (// name = value unit: formula), which a config file may hold.
std::string derived_comment(const DerivedQuantities& derived, double p);

}  // namespace spinbayes
