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
#include "hw/derived.h"
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
  HardwareConfig hw = HardwareConfig::unwired();
  hw.dropout_module.reset_errors = ResetErrors::none;  // the write alone
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


// The perpendicular macrospin's law, n = 2: tau = tau0 exp(Delta (1 - I / Ic0)^2).
TEST(Mtj, SwitchingExponentTwoMatchesItsClosedForm) {
  const MtjSwitching square{45.0, 45.0, 1.0, 2.0};
  // I = 30 uA: x = 1/3, barrier 45 / 9 = 5 kT, tau = e^5 ns; p = 1 - exp(-5 / e^5).
  EXPECT_NEAR(switching_probability(square, 30.0, 5.0), -std::expm1(-5.0 / std::exp(5.0)), 1e-15);
  for (const double p : {0.01, 0.1, 0.5}) {
    EXPECT_NEAR(switching_probability(square, write_current_for(square, p, 5.0), 5.0), p, 1e-12) << p;
  }
  // Past Ic0 the barrier is continued with its sign: it keeps falling with I.
  EXPECT_GT(switching_probability(square, 46.0, 0.5), switching_probability(square, 45.0, 0.5));
}

// The audit's case: a module trimmed for p = 0.1 at 300 K, run at 360 K. With Delta ~ 1 / T
// alone, Delta = 37.5 and p = 0.182; with Ic0 and E_b both falling 0.05 %/K, Delta = 36.375,
// Ic0 = 43.65 uA and p = 0.461. Each from P = 1 - exp(-t / (tau0 exp(Delta (1 - I / Ic0)))).
TEST(DropoutModules, TemperatureLawsOfIc0AndTheBarrier) {
  HardwareConfig hw = HardwareConfig::ideal();
  hw.mtj.ic0_temp_coeff_per_k = hw.mtj.barrier_temp_coeff_per_k = 0.0;
  hw.mtj.temperature_k = 360.0;
  const double pulse = hw.dropout_module.pulse_width_ns;
  const double current = write_current_for(nominal_switching(hw.mtj, true), 0.1, pulse);
  const auto closed_form = [&](double delta, double ic0) {
    return 1.0 - std::exp(-pulse / (hw.mtj.tau0_ns * std::exp(delta * (1.0 - current / ic0))));
  };
  const DropoutBank inverse_t(hw, 0.1, 4, 1, 0);
  EXPECT_NEAR(inverse_t.probability(0), closed_form(37.5, 45.0), 1e-12);
  EXPECT_NEAR(inverse_t.probability(0), 0.182, 0.001);
  hw.mtj.ic0_temp_coeff_per_k = hw.mtj.barrier_temp_coeff_per_k = 0.0005;
  const DropoutBank falling(hw, 0.1, 4, 1, 0);
  EXPECT_NEAR(falling.probability(3), closed_form(45.0 * 300.0 / 360.0 * 0.97, 45.0 * 0.97), 1e-12);
  EXPECT_NEAR(falling.probability(3), 0.461, 0.001);
  // Colder, the same laws raise Delta and Ic0: p falls.
  hw.mtj.temperature_k = 260.0;
  const DropoutBank cold(hw, 0.1, 4, 1, 0);
  EXPECT_NEAR(cold.probability(1), closed_form(45.0 * 300.0 / 260.0 * 1.02, 45.0 * 1.02), 1e-12);
  EXPECT_LT(cold.probability(1), 0.1);
  // A law that would leave no device at the operating temperature is refused by name.
  hw.mtj.temperature_k = 500.0;
  hw.mtj.ic0_temp_coeff_per_k = 0.005;
  try {
    hw.validate("hw.json");
    FAIL() << "Ic0 at 500 K would be 0";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hw.json: mtj.ic0_temp_coeff_per_k: Ic0 at temperature_k = 500 K"),
              std::string::npos)
        << e.what();
  }
}

// The trim DAC's codes, and the spread it leaves: each trimmed module's ln tau is off by its
// quantization error, uniform over one step, so the sd of p is (1 - p) ln(1 / (1 - p)) times
// (Delta / Ic0) step / sqrt(12) (to first order, where the modules' currents spread over many
// steps).
TEST(DropoutModules, TrimDacQuantizesEachModulesCurrent) {
  // Two bits over 3 uA about 10 uA: codes 8.5, 9.5, 10.5, 11.5; saturating at the ends.
  EXPECT_DOUBLE_EQ(trim_dac_current(9.9, 10.0, 3.0, 2), 9.5);
  EXPECT_DOUBLE_EQ(trim_dac_current(10.1, 10.0, 3.0, 2), 10.5);
  EXPECT_DOUBLE_EQ(trim_dac_current(20.0, 10.0, 3.0, 2), 11.5);
  EXPECT_DOUBLE_EQ(trim_dac_current(0.0, 10.0, 3.0, 2), 8.5);
  EXPECT_DOUBLE_EQ(trim_dac_current(9.9, 10.0, 3.0, 0), 9.9);  // continuous

  HardwareConfig hw = HardwareConfig::defaults();
  hw.dropout_module.reset_errors = ResetErrors::none;  // the write alone
  hw.mtj.sigma_delta = 0.0;
  hw.mtj.sigma_ic0 = 0.03;
  hw.dropout_module.trim_dac_bits = 6;
  hw.dropout_module.trim_range_ua = 20.0;
  const double p = 0.1, step = 20.0 / 63.0;
  const DropoutBank bank(hw, p, 20000, 5, 2);
  std::vector<double> probs;
  for (int m = 0; m < bank.size(); ++m) probs.push_back(bank.probability(m));
  double mean = 0.0;
  const double measured = standard_deviation(probs, &mean);
  // Delta / Ic0 per module: Delta (1 + 0) / (Ic0 (1 + 0.03 z)) ~ 1 per uA at the nominal device.
  const double analytic = (1.0 - p) * -std::log1p(-p) * (hw.mtj.delta / hw.mtj.ic0_ua) * step / std::sqrt(12.0);
  EXPECT_NEAR(measured / analytic, 1.0, 0.08) << measured << " vs " << analytic;
  EXPECT_NEAR(mean, p, 0.002);
  // A continuous trim leaves every module at p.
  hw.dropout_module.trim_dac_bits = 0;
  const DropoutBank exact(hw, p, 200, 5, 2);
  for (int m = 0; m < exact.size(); ++m) ASSERT_NEAR(exact.probability(m), p, 1e-9);
}

// Driver noise: the module switches with the mean of P_sw(I (1 + sigma z)); checked against 10^6
// simulated writes, each with its own current and its own thermally activated waiting time.
TEST(DropoutModules, WriteNoiseAveragesTheSwitchingProbability) {
  const MtjSwitching device{45.0, 45.0, 1.0};
  const double pulse = 5.0, current = write_current_for(device, 0.1, pulse), sigma = 0.02;
  const double p = noisy_switching_probability(device, current, pulse, sigma);
  SplitMix64 rng(11);
  const int writes = 1000000;
  int switched = 0;
  for (int i = 0; i < writes; ++i) {
    const double z = gaussian_from_uniforms(rng.uniform(), rng.uniform());
    const double tau = device.tau0_ns * std::exp(device.delta * (1.0 - current * (1.0 + sigma * z) / device.ic0_ua));
    switched += -tau * std::log(1.0 - rng.uniform()) < pulse ? 1 : 0;
  }
  const double simulated = static_cast<double>(switched) / writes;
  EXPECT_NEAR(simulated, p, 4.0 * std::sqrt(p * (1.0 - p) / writes)) << simulated << " vs " << p;
  EXPECT_GT(p, 0.12);  // 2 % of 41 uA is 0.82 kT of barrier: the convex P_sw rises on average
  EXPECT_EQ(noisy_switching_probability(device, current, pulse, 0.0), switching_probability(device, current, pulse));
  // Trimmed nominal modules under the noise are all at that mean.
  HardwareConfig hw = HardwareConfig::unwired();
  hw.dropout_module.reset_errors = ResetErrors::none;  // the write alone
  hw.dropout_module.write_noise_relative = sigma;
  hw.mtj.sigma_delta = hw.mtj.sigma_ic0 = 0.0;
  const DropoutBank nominal(hw, 0.1, 3, 1, 0);
  for (int m = 0; m < 3; ++m) EXPECT_NEAR(nominal.probability(m), p, 1e-12);
}

// Correlated Delta and Ic0 deviations: the untrimmed modules' spread follows the delta method with
// the cross term 2 rho a b (a, b the two parts of d ln tau), larger for rho = 1 than for rho = -1.
TEST(DropoutModules, CorrelatedDeltaAndIc0Spread) {
  HardwareConfig hw = HardwareConfig::defaults();
  hw.dropout_module.write_current = WriteCurrent::per_chip;
  hw.mtj.sigma_delta = 0.01;
  hw.mtj.sigma_ic0 = 0.002;
  const MtjSwitching nominal = nominal_switching(hw.mtj, true);
  double spreads[2];
  for (int i = 0; i < 2; ++i) {
    const double rho = i == 0 ? 0.9 : -0.9;
    hw.mtj.delta_ic0_correlation = rho;
    const DropoutBank bank(hw, 0.1, 20000, 7, 3);
    std::vector<double> probs;
    for (int m = 0; m < bank.size(); ++m) probs.push_back(bank.probability(m));
    spreads[i] = standard_deviation(probs);
    const double analytic = switching_probability_spread(nominal, bank.write_current_ua(), hw.dropout_module.pulse_width_ns,
                                                         0.01, 0.002, rho);
    EXPECT_NEAR(spreads[i] / analytic, 1.0, 0.06) << rho;
  }
  EXPECT_GT(spreads[0], 1.3 * spreads[1]);
}

// Write currents set again at the operating temperature (an on-die sensor choosing the trim) give
// every trimmed module its p there, as the reference-temperature trim does at 300 K; without it a
// hot chip's modules drop far more often.
TEST(DropoutModules, TemperatureCompensationKeepsTrimmedModulesAtP) {
  HardwareConfig hw = HardwareConfig::unwired();
  hw.dropout_module.reset_errors = ResetErrors::none;  // the write alone
  hw.mtj.temperature_k = 340.0;
  const DropoutBank hot(hw, 0.1, 500, 3, 1);
  double mean = 0.0;
  for (int m = 0; m < hot.size(); ++m) mean += hot.probability(m) / hot.size();
  EXPECT_GT(mean, 0.4);  // 0.55 for the nominal module at 0.1 %/K
  hw.dropout_module.temperature_compensation = TemperatureCompensation::per_temperature;
  const DropoutBank compensated(hw, 0.1, 500, 3, 1);
  for (int m = 0; m < compensated.size(); ++m) ASSERT_NEAR(compensated.probability(m), 0.1, 1e-9) << m;
  // One current for all, set for the nominal device at 340 K.
  hw.dropout_module.write_current = WriteCurrent::per_chip;
  const DropoutBank chip_wide(hw, 0.1, 1, 3, 1);
  EXPECT_NEAR(chip_wide.write_current_ua(), write_current_for(nominal_switching(hw.mtj), 0.1, hw.dropout_module.pulse_width_ns),
              1e-12);
}

// The precessional regime against its closed forms (Sun 2000; Butler et al. 2012), and the
// thermal regime below Ic0.
// A failed reset leaves an AP module in AP for the next pass: the chain (reset: AP stays AP with
// WER; write: P -> AP with p) settles at p / (1 - (1 - p) WER), which the bank applies with each
// module's own WER; a simulation of the chain agrees. At the default 18 ns reset WER is 6.5e-7.
TEST(DropoutModules, FailedResetsRaiseTheDropRateToTheChainsSteadyState) {
  HardwareConfig hw = HardwareConfig::unwired();
  hw.mtj.sigma_delta = hw.mtj.sigma_ic0 = 0.0;  // nominal modules: each writes exactly p
  hw.dropout_module.reset_pulse_ns = 6.0;
  const double p = 0.1;
  const double wer = write_error_rate(nominal_switching(hw.mtj), hw.dropout_module.reset_current_ua, 6.0,
                                      hw.mtj.precession_time_ns);
  ASSERT_GT(wer, 0.05);
  ASSERT_LT(wer, 0.5);
  const double steady = p / (1.0 - (1.0 - p) * wer);
  const DropoutBank bank(hw, p, 8, 1, 0);
  for (int m = 0; m < bank.size(); ++m) EXPECT_NEAR(bank.probability(m), steady, 1e-12);
  hw.dropout_module.reset_errors = ResetErrors::none;
  EXPECT_EQ(DropoutBank(hw, p, 8, 1, 0).probability(0), p);

  std::mt19937_64 gen(3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  bool ap = false;
  long drops = 0;
  const long passes = 2000000;
  for (long t = 0; t < passes; ++t) {
    if (ap && u(gen) >= wer) ap = false;  // the reset switched it back to P
    if (!ap && u(gen) < p) ap = true;     // the stochastic write
    drops += ap ? 1 : 0;
  }
  // Standard error of the mean of a two-state chain with lag-1 correlation rho = (1 - p) WER.
  const double rho = (1.0 - p) * wer;
  const double se = std::sqrt(steady * (1.0 - steady) / passes * (1.0 + rho) / (1.0 - rho));
  EXPECT_NEAR(static_cast<double>(drops) / passes, steady, 5.0 * se);
  EXPECT_GT(steady - p, 10.0 * se);  // the effect is resolved

  // A reset that never works (WER = 1): every module that can switch ends in AP, however small its
  // p (no cancellation in the steady state), and `hw`'s shift stays 1 - p.
  HardwareConfig never = HardwareConfig::unwired();
  never.dropout_module.reset_pulse_ns = 0.01;
  ASSERT_EQ(write_error_rate(nominal_switching(never.mtj), never.dropout_module.reset_current_ua, 0.01,
                             never.mtj.precession_time_ns),
            1.0);
  for (const double tiny : {0.1, 1e-12, 1e-17}) {
    const DropoutBank stuck(never, tiny, 16, 1, 0);
    for (int m = 0; m < stuck.size(); ++m) EXPECT_EQ(stuck.probability(m), 1.0) << tiny << " " << m;
    for (const DerivedQuantity& q : derived_quantities(never, tiny).quantities) {
      if (q.name == "p_shift_by_reset_errors") {
        EXPECT_NEAR(q.value, 1.0 - tiny, 1e-15) << tiny;
      }
    }
  }

  // The default reset: no module's p moves by as much as 1e-4 of itself (its WER is 1e-6 or so).
  HardwareConfig defaults = HardwareConfig::unwired();
  const double wer_default = write_error_rate(nominal_switching(defaults.mtj), defaults.dropout_module.reset_current_ua,
                                              defaults.dropout_module.reset_pulse_ns, defaults.mtj.precession_time_ns);
  EXPECT_LT(wer_default, 1e-6);
  EXPECT_GT(wer_default, 1e-7);
  const DropoutBank applied(defaults, p, 64, 1, 0);
  defaults.dropout_module.reset_errors = ResetErrors::none;
  const DropoutBank none(defaults, p, 64, 1, 0);
  for (int m = 0; m < applied.size(); ++m) {
    EXPECT_GE(applied.probability(m), none.probability(m));
    EXPECT_LT(applied.probability(m) - none.probability(m), 1e-4 * none.probability(m));
  }
}

TEST(Mtj, PrecessionalSwitchingTimeAndWriteErrorRate) {
  const MtjSwitching device{45.0, 45.0, 1.0};
  const double tau_d = 1.9, theta0 = 1.0 / std::sqrt(90.0);
  // At 2 Ic0: t = tau_D ln(pi / (2 theta0)) / 1 = 1.9 x 2.7015 = 5.13 ns.
  EXPECT_NEAR(precessional_switching_time_ns(device, 90.0, tau_d), tau_d * std::log(std::numbers::pi / (2.0 * theta0)),
              1e-12);
  EXPECT_NEAR(precessional_switching_time_ns(device, 90.0, tau_d), 5.133, 0.001);
  EXPECT_NEAR(precessional_switching_time_ns(device, 135.0, tau_d), 0.5 * precessional_switching_time_ns(device, 90.0, tau_d),
              1e-12);  // twice the overdrive, half the time
  // WER at 2 Ic0: 2 ns leaves nearly every AP module in AP; 20 ns about 8e-8.
  const double qp2 = 0.25 * std::numbers::pi * std::numbers::pi;
  EXPECT_NEAR(write_error_rate(device, 90.0, 2.0, tau_d), 1.0 - std::exp(-45.0 * qp2 * std::exp(-2.0 * 2.0 / tau_d)), 1e-12);
  EXPECT_GT(write_error_rate(device, 90.0, 2.0, tau_d), 0.99);
  EXPECT_NEAR(write_error_rate(device, 90.0, 20.0, tau_d), 45.0 * qp2 * std::exp(-2.0 * 20.0 / tau_d), 1e-9);
  EXPECT_LT(write_error_rate(device, 90.0, 20.0, tau_d), 1e-6);
  // Below Ic0 the reset is thermally activated: WER = 1 - P_sw.
  EXPECT_NEAR(write_error_rate(device, 41.0, 5.0, tau_d), 1.0 - switching_probability(device, 41.0, 5.0), 1e-15);
  EXPECT_NEAR(precessional_switching_time_ns(device, 41.0, tau_d), std::exp(45.0 * (1.0 - 41.0 / 45.0)), 1e-9);
}
