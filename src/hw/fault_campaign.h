#pragma once
// The fault classes a field test injects, each one hardware parameter set to a severity over the
// chip's config: the class's name as the user writes it, the key it sets, the severity's unit and
// range, and three default severities (mild, moderate, severe) for a campaign.
#include <array>
#include <string>
#include <vector>

#include "hw/hardware_config.h"

namespace spinbayes {

struct FaultClass {
  std::string name;  // "module_stuck_p", ...
  std::string key;   // the hardware parameter it sets, "faults.module_stuck_p"
  std::string unit;  // of the severity
  double low = 0, high = 0;                // the severities accepted (0 excluded: no fault)
  std::array<double, 3> severities{};      // the campaign's defaults
  std::string what;                        // one line for tables and --help
};

// Every class, in campaign order.
const std::vector<FaultClass>& fault_classes();

// One cell of a campaign: a class at a severity.
struct FaultCell {
  std::string fault;
  double severity = 0;
};

// "CLASS[:SEVERITY],..." or "all": a class without a severity stands for its three defaults.
// Throws Error("--faults: ...") on an unknown class, a severity that is not a number, zero or out
// of its range, or a cell given twice.
std::vector<FaultCell> parse_fault_list(const std::string& text);

const FaultClass& fault_class(const std::string& name);  // throws Error on an unknown name
// `hw` with the cell's fault set (over what it already holds: a severity replaces the key's value).
HardwareConfig with_fault(const HardwareConfig& hw, const FaultCell& cell);

}  // namespace spinbayes
