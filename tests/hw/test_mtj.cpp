// The MTJ switching model against its closed form, write-current calibration, and the dropout
// modules' spread of probabilities and stuck faults.
#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/counter_rng.h"
#include "core/error.h"
#include "engine/im2col.h"
#include "engine/threshold.h"
#include "hw/chip.h"
#include "hw/dropout_module.h"
#include "hw/hardware_config.h"
#include "hw/mtj.h"
#include "model/dropout_mask.h"
#include "random_networks.h"

using namespace spinbayes;

namespace {

double standard_deviation(const std::vector<double>& v, double* mean_out = nullptr) {
  double mean = 0.0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double var = 0.0;
  for (double x : v) var += (x - mean) * (x - mean);
  if (mean_out != nullptr) *mean_out = mean;
  return std::sqrt(var / static_cast<double>(v.size() - 1));
}

}  // namespace

TEST(Mtj, SwitchingProbabilityMatchesClosedForm) {
  // tau = tau0 exp(Delta (1 - I / Ic0)); P = 1 - exp(-t / tau), values computed by hand.
  EXPECT_NEAR(switching_probability({40.0, 40.0, 1.0}, 30.0, 1000.0), 0.044384773569994485, 1e-15);
  EXPECT_NEAR(switching_probability({60.0, 50.0, 2.0}, 30.0, 50.0), 9.437836356244107e-10, 1e-22);
  EXPECT_NEAR(write_current_for({45.0, 45.0, 1.0}, 0.1, 5.0), 41.14019476025346, 1e-9);
  // R_P = RA / (pi d^2 / 4): 5 Ohm um^2 over a 40 nm disc.
  EXPECT_NEAR(MtjParams{}.rp_ohm(), 3978.8735772973837, 1e-6);
  MtjParams mtj;
  EXPECT_NEAR(tmr_at_bias(mtj, 0.5), mtj.tmr / 2.0, 1e-12);  // V = V_h halves the TMR
  EXPECT_NEAR(resistance_ohm(mtj, MtjState::antiparallel, 0.0), mtj.rp_ohm() * (1.0 + mtj.tmr), 1e-9);
  // More current, more switching; a hotter device (lower Delta) switches more.
  EXPECT_LT(switching_probability({45, 45, 1}, 40.0, 5.0), switching_probability({45, 45, 1}, 42.0, 5.0));
  EXPECT_LT(switching_probability({45, 45, 1}, 40.0, 5.0), switching_probability({40, 45, 1}, 40.0, 5.0));
}

TEST(Mtj, WriteCurrentInvertsTheSwitchingProbability) {
  const MtjSwitching device{45.0, 45.0, 1.0};
  for (double p : {0.01, 0.1, 0.25, 0.5, 0.9}) {
    const double current = write_current_for(device, p, 5.0);
    EXPECT_LT(current, device.ic0_ua);
    EXPECT_NEAR(switching_probability(device, current, 5.0), p, 1e-12) << p;
  }
  EXPECT_THROW(write_current_for(device, 0.0, 5.0), Error);
  EXPECT_THROW(write_current_for(device, 1.0, 5.0), Error);
  EXPECT_THROW(write_current_for(device, 0.999, 0.5), Error);  // would need I >= Ic0
  // Below what the device does with no current, p0 = 1 - exp(-t / (tau0 e^Delta)): no write current.
  const MtjSwitching leaky{10.0, 45.0, 1.0};
  const double p0 = -std::expm1(-10000.0 / std::exp(10.0));
  EXPECT_NEAR(switching_probability(leaky, 0.0, 10000.0), p0, 1e-15);
  try {
    write_current_for(leaky, 0.5 * p0, 10000.0);
    ADD_FAILURE() << "a negative write current returned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("below what the device does with no write current"), std::string::npos) << e.what();
  }
  EXPECT_GT(write_current_for(leaky, 2.0 * p0, 10000.0), 0.0);
  EXPECT_THROW(write_current_for(device, 5e-324, 5.0), Error);
}

TEST(Mtj, CalibratedCurrentReproducesTargetOverSimulatedWrites) {
  // 10^5 writes of the nominal device at the calibrated current, each simulated as a thermally
  // activated switching event: the waiting time is exponential with mean tau, and the module
  // switches iff it comes before the end of the pulse.
  const HardwareConfig hw = HardwareConfig::defaults();
  const MtjSwitching device = nominal_switching(hw.mtj, true);
  const double pulse = hw.dropout_module.pulse_width_ns;
  for (double p : {0.05, 0.1, 0.3, 0.5}) {
    const double current = write_current_for(device, p, pulse);
    const double tau = device.tau0_ns * std::exp(device.delta * (1.0 - current / device.ic0_ua));
    SplitMix64 rng(static_cast<std::uint64_t>(p * 1000));
    int switched = 0;
    const int writes = 100000;
    for (int i = 0; i < writes; ++i) switched += -tau * std::log(1.0 - rng.uniform()) < pulse ? 1 : 0;
    EXPECT_NEAR(static_cast<double>(switched) / writes, p, 0.01) << p;
  }
}

TEST(DropoutModules, SpreadOfProbabilityMatchesAnalyticSpread) {
  HardwareConfig hw = HardwareConfig::defaults();
  hw.dropout_module.write_current = WriteCurrent::per_chip;  // one current for every module: their p spreads
  // Small spreads, where the first-order formula holds (ln tau varies by about 0.09).
  hw.mtj.sigma_delta = 0.01;
  hw.mtj.sigma_ic0 = 0.002;
  const double p = 0.1;
  const DropoutBank bank(hw, p, 20000, 7, 3);
  std::vector<double> probs;
  for (int m = 0; m < bank.size(); ++m) probs.push_back(bank.probability(m));
  double mean = 0.0;
  const double measured = standard_deviation(probs, &mean);
  const MtjSwitching nominal = nominal_switching(hw.mtj, true);
  const double analytic = switching_probability_spread(nominal, bank.write_current_ua(),
                                                       hw.dropout_module.pulse_width_ns, 0.01, 0.002);
  EXPECT_GT(analytic, 0.005);  // the spread is not negligible at these sigmas
  EXPECT_NEAR(measured / analytic, 1.0, 0.05);
  EXPECT_NEAR(mean, p, 0.3 * analytic);

  // Trimmed currents (per_module) cancel the device spread at the calibration temperature.
  hw.dropout_module.write_current = WriteCurrent::per_module;
  const DropoutBank trimmed(hw, p, 2000, 7, 3);
  for (int m = 0; m < trimmed.size(); ++m) ASSERT_NEAR(trimmed.probability(m), p, 1e-9);
  // ...but not the temperature: hotter chips switch more.
  hw.mtj.temperature_k = 330.0;
  const DropoutBank hot(hw, p, 10, 7, 3);
  for (int m = 0; m < hot.size(); ++m) EXPECT_GT(hot.probability(m), p + 0.01);
}

TEST(DropoutModules, StuckModulesAlwaysKeepOrAlwaysDrop) {
  HardwareConfig hw = HardwareConfig::ideal();
  hw.faults.module_stuck_p = 0.2;
  hw.faults.module_stuck_ap = 0.3;
  const DropoutBank bank(hw, 0.1, 10000, 1, 1);
  int keep = 0, drop = 0;
  for (int m = 0; m < bank.size(); ++m) {
    keep += bank.probability(m) == 0.0 ? 1 : 0;
    drop += bank.probability(m) == 1.0 ? 1 : 0;
  }
  EXPECT_NEAR(keep / 10000.0, 0.2, 0.02);
  EXPECT_NEAR(drop / 10000.0, 0.3, 0.02);
}

