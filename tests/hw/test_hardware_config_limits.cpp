// Hardware keys at their limits: integer keys given as whole reals (as a sweep gives them), and an
// ADC too coarse to compute with.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "error_checks.h"
#include "hw/hardware_config.h"

using namespace spinbayes;
using spinbayes::testing::expect_error;

TEST(HardwareConfigLimits, IntegerKeysTakeWholeRealsAsASweepGivesThem) {
  HardwareConfig hw = HardwareConfig::defaults();
  hw.table().apply(nlohmann::json{{"crossbar.adc_bits", 6.0}}, "--values");
  EXPECT_EQ(hw.crossbar.adc_bits, 6);
  hw.table().apply(nlohmann::json{{"crossbar.tile_rows", 256.0}}, "--values");
  EXPECT_EQ(hw.crossbar.tile_rows, 256);
  expect_error([&] { hw.table().apply(nlohmann::json{{"crossbar.adc_bits", 6.5}}, "--values"); },
               {"crossbar.adc_bits", "integer"});
  expect_error([&] { hw.table().apply(nlohmann::json{{"crossbar.adc_bits", 1e300}}, "--values"); },
               {"crossbar.adc_bits", "out of range"});
}

TEST(HardwareConfigLimits, AnAdcOfOneBitIsOutOfRange) {
  // K = (2^1 - 1) / 2 = 0 levels: the ADC step would divide by zero and every figure be NaN.
  HardwareConfig hw = HardwareConfig::defaults();
  expect_error([&] { hw.table().apply(nlohmann::json::parse(R"({"crossbar":{"adc_bits":1}})"), "hw.json"); },
               {"hw.json", "crossbar.adc_bits", "out of range"});
  hw.table().apply(nlohmann::json::parse(R"({"crossbar":{"adc_bits":2}})"), "hw.json");
  EXPECT_EQ(hw.crossbar.adc_bits, 2);
}

TEST(HardwareConfigLimits, AValueJustOutsideItsRangeIsPrintedAsGiven) {
  // Six significant digits would print 100.0000001 as 100, inside [0, 100].
  HardwareConfig hw = HardwareConfig::defaults();
  expect_error([&] { hw.table().apply(nlohmann::json::parse(R"({"crossbar":{"wire_resistance_ohm":100.0000001}})"), "hw.json"); },
               {"hw.json", "crossbar.wire_resistance_ohm = 100.0000001 is out of range [0, 100]"});
  expect_error([&] { hw.table().apply(nlohmann::json::parse(R"({"mtj":{"sigma_rp":-1e-300}})"), "hw.json"); },
               {"mtj.sigma_rp = -1e-300 is out of range"});
}

TEST(HardwareConfigLimits, WiresThinnerThanAMicroOhmAreRefusedAndZeroIsNone) {
  // 1 / r_w of a subnormal resistance overflows: the nodal solution would be NaN.
  for (const double thin : {1e-310, 1e-9}) {
    HardwareConfig hw = HardwareConfig::defaults();
    hw.crossbar.wire_resistance_ohm = thin;
    expect_error([&] { hw.validate("hw.json"); }, {"hw.json", "crossbar.wire_resistance_ohm", "below"});
  }
  HardwareConfig hw = HardwareConfig::defaults();
  hw.crossbar.wire_resistance_ohm = 0.0;
  hw.validate("hw.json");
  hw.crossbar.wire_resistance_ohm = 1e-6;
  hw.validate("hw.json");
}

TEST(HardwareConfigLimits, ReferenceErrorAndResetErrorsAreValidatedLikeTheOthers) {
  HardwareConfig hw = HardwareConfig::defaults();
  expect_error([&] { hw.table().apply(nlohmann::json::parse(R"({"crossbar":{"reference_error_relative":0.21}})"), "hw.json"); },
               {"hw.json: crossbar.reference_error_relative = 0.21 is out of range [0, 0.2] relative"});
  expect_error([&] { hw.table().apply(nlohmann::json::parse(R"({"crossbar":{"reference_error_relative":"0.01"}})"), "hw.json"); },
               {"hw.json", "crossbar.reference_error_relative", "number"});
  expect_error([&] { hw.table().apply(nlohmann::json::parse(R"({"dropout_module":{"reset_errors":"Applied"}})"), "hw.json"); },
               {"hw.json: dropout_module.reset_errors = 'Applied' is not one of: applied, none"});
  expect_error([&] { hw.table().apply(nlohmann::json::parse(R"({"dropout_module":{"reset_pulse_ns":0}})"), "hw.json"); },
               {"hw.json", "dropout_module.reset_pulse_ns", "out of range"});
  hw.table().apply(nlohmann::json::parse(R"({"crossbar":{"reference_error_relative":0.2},"dropout_module":{"reset_errors":"none"}})"),
                   "hw.json");
  EXPECT_EQ(hw.crossbar.reference_error_relative, 0.2);
  EXPECT_EQ(hw.dropout_module.reset_errors, ResetErrors::none);
}
