// The derived quantities `spinbayes hw` prints: each equals its closed form recomputed here from
// the parameters, the write current reaches its p, and the printed block reads back as a config.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>

#include "cost/technology.h"
#include "hw/derived.h"
#include "hw/mtj.h"

using namespace spinbayes;

namespace {

std::map<std::string, double> by_name(const DerivedQuantities& d) {
  std::map<std::string, double> out;
  for (const auto& q : d.quantities) out[q.name] = q.value;
  return out;
}

}  // namespace

TEST(Derived, QuantitiesEqualTheirClosedForms) {
  HardwareConfig hw = HardwareConfig::unwired();
  hw.mtj.diameter_nm = 50.0;
  hw.mtj.ra_ohm_um2 = 8.0;
  hw.mtj.tmr = 1.2;
  hw.crossbar.read_voltage_v = 0.2;
  hw.mtj.temperature_k = 330.0;
  hw.mtj.ic0_temp_coeff_per_k = 0.002;
  hw.mtj.barrier_temp_coeff_per_k = 0.0015;
  hw.mtj.tmr_temp_coeff_per_k = 0.001;
  hw.mtj.ra_temp_coeff_per_k = -0.0005;
  const double p = 0.25;
  const DerivedQuantities d = derived_quantities(hw, p);
  ASSERT_TRUE(d.unreachable.empty()) << d.unreachable;
  auto q = by_name(d);
  // At 330 K, 30 K above the reference: RA x (1 - 0.0005 x 30), TMR x (1 - 0.001 x 30).
  const double area = std::numbers::pi * 0.05 * 0.05 / 4.0;  // um^2
  const double rp = 8.0 * (1.0 - 0.015) / area, tmr_t = 1.2 * 0.97;
  const double tmr = tmr_t / (1.0 + (0.2 / hw.mtj.tmr_half_bias_v) * (0.2 / hw.mtj.tmr_half_bias_v));
  const double rap = rp * (1.0 + tmr);
  EXPECT_NEAR(q["mtj_area_um2"], area, 1e-12);
  EXPECT_NEAR(q["r_p_ohm"], rp, 1e-9 * rp);
  EXPECT_NEAR(q["tmr_at_temperature"], tmr_t, 1e-12);
  EXPECT_NEAR(q["r_ap_zero_bias_ohm"], rp * (1.0 + tmr_t), 1e-9 * rp);
  EXPECT_NEAR(q["r_ap_at_read_ohm"], rap, 1e-9 * rap);
  EXPECT_NEAR(q["on_off_ratio"], 1.0 + tmr, 1e-12);
  EXPECT_NEAR(q["dot_unit_ua"], 0.2 * 0.5 * (1e6 / rp - 1e6 / rap), 1e-9);
  EXPECT_NEAR(q["driven_row_current_ua"], 0.2 * 0.5 * (1e6 / rp + 1e6 / rap), 1e-9);
  // The sense thresholds stay at the reference's G_P - G_AP: the sums scale by the ratio.
  const double rp_ref = 8.0 / area,
               rap_ref = rp_ref * (1.0 + 1.2 / (1.0 + (0.2 / hw.mtj.tmr_half_bias_v) * (0.2 / hw.mtj.tmr_half_bias_v)));
  EXPECT_NEAR(q["crossbar_gain_at_temperature"], (1.0 / rp - 1.0 / rap) / (1.0 / rp_ref - 1.0 / rap_ref), 1e-12);
  // (Here R_P's fall offsets TMR's: G_half = TMR / ((1 + TMR) R_P). With R_P constant the sums shrink.)
  HardwareConfig constant_rp = hw;
  constant_rp.mtj.ra_temp_coeff_per_k = 0.0;
  EXPECT_LT(by_name(derived_quantities(constant_rp, p))["crossbar_gain_at_temperature"], 0.99);
  // Delta = E_b(T) / kT with E_b falling 0.15 %/K; Ic0 falling 0.2 %/K.
  EXPECT_NEAR(q["delta_at_temperature_kt"], hw.mtj.delta * 300.0 / 330.0 * (1.0 - 0.0015 * 30.0), 1e-12);
  EXPECT_NEAR(q["ic0_at_temperature_ua"], hw.mtj.ic0_ua * (1.0 - 0.002 * 30.0), 1e-12);
  // The write current, calibrated at the reference temperature, gives p there in the pulse.
  const double iw = q["write_current_ua"], t = hw.dropout_module.pulse_width_ns;
  const double tau = hw.mtj.tau0_ns * std::exp(hw.mtj.delta * (1.0 - iw / hw.mtj.ic0_ua));
  EXPECT_NEAR(1.0 - std::exp(-t / tau), p, 1e-12);
  EXPECT_NEAR(q["switching_time_ns"], tau, 1e-9 * tau);
  EXPECT_NEAR(q["effective_barrier_kt"], hw.mtj.delta * (1.0 - iw / hw.mtj.ic0_ua), 1e-12);
  EXPECT_NEAR(q["write_mtj_energy_fj"], iw * iw * 1e-12 * rp * t * 1e-9 * 1e15, 1e-9);
  EXPECT_NEAR(q["write_voltage_v"], iw * 1e-6 * rp, 1e-12);
  // Hotter, the barrier is lower and the same current switches more often.
  EXPECT_GT(q["p_at_temperature"], p);
  const double delta_t = q["delta_at_temperature_kt"], ic0_t = q["ic0_at_temperature_ua"];
  EXPECT_NEAR(q["p_at_temperature"], 1.0 - std::exp(-t / (hw.mtj.tau0_ns * std::exp(delta_t * (1.0 - iw / ic0_t)))), 1e-12);
  EXPECT_NEAR(q["write_over_ic0_at_temperature"], iw / ic0_t, 1e-12);
}

// With the perpendicular macrospin's exponent n = 2: tau = tau0 exp(Delta (1 - I / Ic0)^2), so
// the current for p is Ic0 (1 - sqrt(ln(tau / tau0) / Delta)), lower than the linear law's for the
// same effective barrier.
TEST(Derived, SwitchingExponentTwoInvertsItsOwnLaw) {
  HardwareConfig hw = HardwareConfig::defaults();
  const double linear = by_name(derived_quantities(hw, 0.1))["write_current_ua"];
  hw.mtj.switching_exponent = 2.0;
  auto q = by_name(derived_quantities(hw, 0.1));
  const double t = hw.dropout_module.pulse_width_ns, tau = -t / std::log(0.9);
  const double expected = hw.mtj.ic0_ua * (1.0 - std::sqrt(std::log(tau / hw.mtj.tau0_ns) / hw.mtj.delta));
  EXPECT_NEAR(q["write_current_ua"], expected, 1e-9);
  EXPECT_NEAR(q["effective_barrier_kt"], std::log(tau / hw.mtj.tau0_ns), 1e-9);
  EXPECT_LT(q["write_current_ua"], linear - 5.0);  // 31.8 uA against 41.1 uA
  EXPECT_NEAR(switching_probability(nominal_switching(hw.mtj, true), q["write_current_ua"], t), 0.1, 1e-12);
}

// A trim DAC of b bits over a range R: step R / (2^b - 1); the nominal module's p is left within
// P_sw(I -+ step / 2). Driver noise: p is the mean of P_sw over the current's normal spread.
TEST(Derived, TrimStepAndWriteNoiseBoundTheNominalModulesP) {
  HardwareConfig hw = HardwareConfig::defaults();
  hw.dropout_module.trim_dac_bits = 5;
  hw.dropout_module.trim_range_ua = 12.4;
  hw.dropout_module.write_noise_relative = 0.01;
  auto q = by_name(derived_quantities(hw, 0.1));
  EXPECT_NEAR(q["trim_step_ua"], 0.4, 1e-12);
  EXPECT_LT(q["p_at_half_trim_step_low"], 0.1);
  EXPECT_GT(q["p_at_half_trim_step_high"], 0.1);
  // d ln tau / dI = -Delta / Ic0 = -1 per uA: half a step moves tau by e^-+0.2.
  EXPECT_NEAR(q["p_at_half_trim_step_high"], 1.0 - std::pow(0.9, std::exp(0.2)), 1e-9);
  EXPECT_NEAR(q["p_at_half_trim_step_low"], 1.0 - std::pow(0.9, std::exp(-0.2)), 1e-9);
  // P_sw is convex in I here: noise raises the mean p (Jensen), by about P'' sigma_I^2 / 2.
  EXPECT_GT(q["p_with_write_noise"], 0.1);
  EXPECT_LT(q["p_with_write_noise"], 0.12);
}

// An access transistor in series: the cell's ON/OFF ratio and dot unit against the closed form
// with the AP MTJ's TMR at its own share of the read voltage (a fixed point), and the default
// device at 2 kOhm: ON/OFF 2.44 -> 1.97 (1.96 with TMR taken at the whole 0.1 V, as the hardware
// audit did), dot unit 7.4 -> about 4.1 uA.
TEST(Derived, AccessTransistorInSeriesWithTheMtj) {
  HardwareConfig hw = HardwareConfig::unwired();
  hw.crossbar.access_resistance_ohm = 2000.0;
  auto q = by_name(derived_quantities(hw, 0.1));
  const double rp = hw.mtj.rp_ohm(), v = hw.crossbar.read_voltage_v, ra = 2000.0;
  const double v_ap = q["ap_mtj_read_voltage_v"];
  const double tmr = hw.mtj.tmr / (1.0 + std::pow(v_ap / hw.mtj.tmr_half_bias_v, 2));
  const double rap = rp * (1.0 + tmr);
  EXPECT_NEAR(v_ap, v * rap / (rap + ra), 1e-12);  // the fixed point holds
  EXPECT_NEAR(q["tmr_at_read"], tmr, 1e-12);
  EXPECT_NEAR(q["on_off_ratio"], (rap + ra) / (rp + ra), 1e-12);
  EXPECT_NEAR(q["dot_unit_ua"], v * 0.5 * (1e6 / (rp + ra) - 1e6 / (rap + ra)), 1e-9);
  EXPECT_NEAR(q["read_current_p_ua"], v * 1e6 / (rp + ra), 1e-9);
  EXPECT_NEAR(q["on_off_ratio"], 1.971, 0.001);
  EXPECT_NEAR(q["dot_unit_ua"], 4.1, 0.05);
  // The read energy of a cell is the supply's: V^2 (G_P + G_AP) / 2 t, transistor included.
  const Technology with = Technology::defaults(hw), without = Technology::defaults(HardwareConfig::unwired());
  EXPECT_NEAR(with.crossbar.cell_read_fj / without.crossbar.cell_read_fj,
              (1.0 / (rp + ra) + 1.0 / (rap + ra)) /
                  (1.0 / rp + 1.0 / (rp * (1.0 + hw.mtj.tmr / (1.0 + std::pow(v / hw.mtj.tmr_half_bias_v, 2))))),
              1e-12);
}

TEST(Derived, UnreachableProbabilityLeavesTheWriteOutAndSaysWhy) {
  HardwareConfig hw = HardwareConfig::defaults();
  hw.dropout_module.pulse_width_ns = 0.05;  // shorter than tau0: p = 0.1 needs I >= Ic0
  const DerivedQuantities d = derived_quantities(hw, 0.1);
  EXPECT_NE(d.unreachable.find("pulse_width_ns"), std::string::npos) << d.unreachable;
  EXPECT_EQ(by_name(d).count("write_current_ua"), 0u);
  EXPECT_EQ(by_name(d).count("dot_unit_ua"), 1u);
  EXPECT_NE(derived_comment(d, 0.1).find("no write current"), std::string::npos);
  // Nor below what the device does with no current (no inf, no NaN, no negative current printed).
  for (const double p : {1e-20, 5e-324}) {
    const DerivedQuantities low = derived_quantities(HardwareConfig::defaults(), p);
    EXPECT_NE(low.unreachable.find("below what the device does with no write current"), std::string::npos) << p;
    for (const auto& q : low.quantities) EXPECT_TRUE(std::isfinite(q.value)) << q.name;
    EXPECT_EQ(by_name(low).count("write_current_ua"), 0u);
  }
}

// What `hw` prints (the config and the derived block) is itself a config that loads.
TEST(Derived, PrintedBlockReadsBackAsAConfig) {
  HardwareConfig hw = HardwareConfig::defaults();
  const auto path = std::filesystem::temp_directory_path() / ("spinbayes-derived-" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream out(path);
    out << hw.table().to_commented_json() << derived_comment(derived_quantities(hw, 0.1), 0.1);
  }
  HardwareConfig back = HardwareConfig::load(path.string());
  EXPECT_EQ(back.table().to_commented_json(), hw.table().to_commented_json());
  std::filesystem::remove(path);
}
