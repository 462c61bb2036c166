#include "hw/fault_campaign.h"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text.h"

namespace spinbayes {

const std::vector<FaultClass>& fault_classes() {
  // Severities: shares of devices for stuck-at faults (the published campaigns inject 1-20 %);
  // drifts as relative changes; the offset against the default spread of 0.5 uA; whole tiles.
  static const std::vector<FaultClass> classes = {
      {"module_stuck_p", "faults.module_stuck_p", "share of modules", 1e-6, 0.5, {0.01, 0.05, 0.2},
       "dropout modules stuck at P: always keep"},
      {"module_stuck_ap", "faults.module_stuck_ap", "share of modules", 1e-6, 0.5, {0.01, 0.05, 0.2},
       "dropout modules stuck at AP: always drop"},
      {"module_ic0", "faults.module_ic0_drift", "relative Ic0 change", -0.5, 0.5, {0.01, 0.02, 0.05},
       "every module's Ic0 drifted after trimming: p falls as Ic0 rises"},
      {"module_delta", "faults.module_delta_drift", "relative Delta change", -0.5, 0.5, {0.1, 0.2, 0.5},
       "every module's Delta drifted after trimming: p falls as Delta rises"},
      {"cell_stuck_p", "faults.cell_stuck_p", "share of crossbar MTJs", 1e-6, 0.5, {0.001, 0.01, 0.05},
       "crossbar MTJs stuck at P"},
      {"cell_stuck_ap", "faults.cell_stuck_ap", "share of crossbar MTJs", 1e-6, 0.5, {0.001, 0.01, 0.05},
       "crossbar MTJs stuck at AP"},
      {"rp_drift", "faults.rp_drift", "relative R_P change", -0.5, 1.0, {0.05, 0.1, 0.2},
       "R_P of every crossbar MTJ drifted (reference columns alike): a gain on every column"},
      {"tmr_drift", "faults.tmr_drift", "relative TMR change", -0.9, 1.0, {-0.1, -0.2, -0.4},
       "TMR of every crossbar MTJ fell (reference columns alike): a gain on every column"},
      {"sense_offset", "faults.sense_offset_ua", "uA", 1e-6, 100.0, {2.0, 5.0, 10.0},
       "an extra offset of random sign on every sense amplifier"},
      {"adc_gain", "faults.adc_gain_error", "relative gain error", -0.5, 0.5, {-0.05, -0.1, -0.2},
       "gain error of every partial-sum ADC (the output layer's logits included)"},
      {"dead_tile", "faults.dead_tiles", "tiles", 1.0, 1000000.0, {1.0, 2.0, 4.0},
       "crossbar tiles that conduct nothing, drawn per chip"},
  };
  return classes;
}

const FaultClass& fault_class(const std::string& name) {
  for (const FaultClass& c : fault_classes()) {
    if (c.name == name) return c;
  }
  std::vector<std::string> names;
  for (const FaultClass& c : fault_classes()) names.push_back(c.name);
  throw Error(fmt::format("--faults: unknown fault class '{}' (one of: all, {})", printable(name), fmt::join(names, ", ")));
}

std::vector<FaultCell> parse_fault_list(const std::string& text) {
  std::vector<FaultCell> cells;
  const auto add = [&](const FaultCell& cell) {
    for (const FaultCell& c : cells) {
      if (c.fault == cell.fault && c.severity == cell.severity) {
        throw Error(fmt::format("--faults: {}:{:g} is given twice", cell.fault, cell.severity));
      }
    }
    cells.push_back(cell);
  };
  const std::vector<std::string> items = split_list(text);
  if (items.empty()) throw Error("--faults: empty list");
  for (const std::string& item : items) {
    if (item == "all") {
      for (const FaultClass& c : fault_classes()) {
        for (double s : c.severities) add({c.name, s});
      }
      continue;
    }
    const std::size_t colon = item.find(':');
    const FaultClass& c = fault_class(item.substr(0, colon));
    if (colon == std::string::npos) {
      for (double s : c.severities) add({c.name, s});
      continue;
    }
    const double severity = parse_number("--faults: " + c.name + ": severity", item.substr(colon + 1));
    if (severity == 0.0 || severity < c.low || severity > c.high) {
      throw Error(fmt::format("--faults: {}: severity {} is outside [{:g}, {:g}] {} (0 is no fault)", c.name, severity,
                              c.low, c.high, c.unit));
    }
    if (c.key == "faults.dead_tiles" && severity != std::floor(severity)) {
      throw Error(fmt::format("--faults: {}: severity {} is not a whole number of tiles", c.name, severity));
    }
    add({c.name, severity});
  }
  return cells;
}

HardwareConfig with_fault(const HardwareConfig& hw, const FaultCell& cell) {
  const FaultClass& c = fault_class(cell.fault);
  HardwareConfig out = hw;
  const nlohmann::json value = c.key == "faults.dead_tiles" ? nlohmann::json(static_cast<int>(cell.severity))
                                                             : nlohmann::json(cell.severity);
  out.table().apply(nlohmann::json{{c.key, value}}, "--faults");
  out.validate("--faults");
  return out;
}

}  // namespace spinbayes
