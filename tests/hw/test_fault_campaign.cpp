// Fault cells as the user writes them: each class sets its own parameter, its defaults are three
// valid severities, and bad cells are one-line errors naming --faults.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>

#include "core/error.h"
#include "hw/fault_campaign.h"

using namespace spinbayes;

namespace {
std::string text_of(HardwareConfig hw) { return hw.table().to_commented_json(); }
}  // namespace

TEST(FaultCampaign, EveryClassSetsItsParameterAndNothingElse) {
  // The field each class must set, by hand.
  const std::map<std::string, std::function<void(HardwareConfig&, double)>> sets = {
      {"module_stuck_p", [](HardwareConfig& h, double s) { h.faults.module_stuck_p = s; }},
      {"module_stuck_ap", [](HardwareConfig& h, double s) { h.faults.module_stuck_ap = s; }},
      {"module_ic0", [](HardwareConfig& h, double s) { h.faults.module_ic0_drift = s; }},
      {"module_delta", [](HardwareConfig& h, double s) { h.faults.module_delta_drift = s; }},
      {"cell_stuck_p", [](HardwareConfig& h, double s) { h.faults.cell_stuck_p = s; }},
      {"cell_stuck_ap", [](HardwareConfig& h, double s) { h.faults.cell_stuck_ap = s; }},
      {"rp_drift", [](HardwareConfig& h, double s) { h.faults.rp_drift = s; }},
      {"tmr_drift", [](HardwareConfig& h, double s) { h.faults.tmr_drift = s; }},
      {"sense_offset", [](HardwareConfig& h, double s) { h.faults.sense_offset_ua = s; }},
      {"adc_gain", [](HardwareConfig& h, double s) { h.faults.adc_gain_error = s; }},
      {"dead_tile", [](HardwareConfig& h, double s) { h.faults.dead_tiles = static_cast<int>(s); }},
  };
  ASSERT_EQ(fault_classes().size(), sets.size());
  const HardwareConfig base = HardwareConfig::defaults();
  for (const FaultClass& c : fault_classes()) {
    ASSERT_EQ(sets.count(c.name), 1u) << c.name;
    for (double s : c.severities) {
      EXPECT_TRUE(s >= c.low && s <= c.high && s != 0.0) << c.name << " " << s;
      HardwareConfig expected = base;
      sets.at(c.name)(expected, s);
      EXPECT_EQ(text_of(with_fault(base, {c.name, s})), text_of(expected)) << c.name;
      EXPECT_NE(text_of(expected), text_of(base)) << c.name;
    }
  }
}

TEST(FaultCampaign, ParsesCellsAndDefaults) {
  const std::vector<FaultCell> cells = parse_fault_list("module_stuck_p:0.1,dead_tile,tmr_drift:-0.3");
  ASSERT_EQ(cells.size(), 5u);
  EXPECT_EQ(cells[0].fault, "module_stuck_p");
  EXPECT_EQ(cells[0].severity, 0.1);
  EXPECT_EQ(cells[1].fault, "dead_tile");
  EXPECT_EQ(cells[3].severity, 4.0);
  EXPECT_EQ(cells[4].severity, -0.3);
  EXPECT_EQ(parse_fault_list("all").size(), 3 * fault_classes().size());
}

TEST(FaultCampaign, BadCellsAreOneLineErrors) {
  for (const char* bad : {"", ",", "stuck", "all2", "module_stuck_p:", "module_stuck_p:x", "module_stuck_p:0",
                          "module_stuck_p:0.6", "module_stuck_p:-0.1", "tmr_drift:-1", "dead_tile:1.5", "dead_tile:0",
                          "module_ic0:nan", "module_ic0:inf", "sense_offset:1e3", "adc_gain:0.2junk",
                          "module_stuck_p:0.1,module_stuck_p:0.1", "module_stuck_p,module_stuck_p:0.05",
                          "Module_Stuck_P", "module_stuck_p:0.1:0.2"}) {
    try {
      parse_fault_list(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("--faults: ", 0), 0u) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
}
