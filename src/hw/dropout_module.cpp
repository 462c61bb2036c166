#include "hw/dropout_module.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/counter_rng.h"
#include "core/streams.h"
#include "model/dropout_mask.h"

namespace spinbayes {

double DropoutBank::supply_level_probability(int level) {
  const auto cdf = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
  const double z = supply_z(level);
  const double low = level == 0 ? 0.0 : cdf(z - 0.125);
  const double high = level == kSupplyLevels - 1 ? 1.0 : cdf(z + 0.125);
  return high - low;
}

DropoutBank::DropoutBank(const HardwareConfig& hw, double p, int modules, std::uint64_t chip_seed, int site) : site_(site) {
  const auto n = static_cast<std::size_t>(modules);
  probability_.resize(n);
  const MtjParams& mtj = hw.mtj;
  const double pulse = hw.dropout_module.pulse_width_ns;
  // With per-temperature compensation the currents are set for the device as it is at the
  // operating temperature; otherwise at the reference temperature.
  const bool compensated = hw.dropout_module.temperature_compensation == TemperatureCompensation::per_temperature;
  const MtjSwitching reference = nominal_switching(mtj, /*at_reference=*/!compensated);
  const bool active = p > 0.0;
  write_current_ua_ = active ? write_current_for(reference, p, pulse) : 0.0;
  const bool per_module = hw.dropout_module.write_current == WriteCurrent::per_module;
  const DropoutModuleParams& circuit = hw.dropout_module;
  const FaultParams& faults = hw.faults;
  const double supply = circuit.supply_noise_relative;
  levels_ = active && supply > 0.0 ? kSupplyLevels : 1;
  bound_.resize(static_cast<std::size_t>(levels_) * n);
  const bool exact = mtj.sigma_delta == 0.0 && mtj.sigma_ic0 == 0.0 && mtj.temperature_k == mtj.reference_temperature_k &&
                     faults.module_ic0_drift == 0.0 && faults.module_delta_drift == 0.0 &&
                     (!per_module || circuit.trim_dac_bits == 0) && circuit.write_noise_relative == 0.0 && levels_ == 1;
  const double rho = mtj.delta_ic0_correlation, rho_rest = std::sqrt(std::max(0.0, 1.0 - rho * rho));
  std::vector<double> pm(static_cast<std::size_t>(levels_), p);
  const bool reset_errors = active && circuit.reset_errors == ResetErrors::applied;
  const MtjSwitching nominal = nominal_switching(mtj);  // as it switches, at the operating temperature
  for (int m = 0; m < modules; ++m) {
    const auto key = static_cast<std::uint64_t>(m);
    MtjSwitching device = nominal;  // this module as it switches
    if (active && !exact) {
      device = reference;
      const double z_delta = gaussian_at(chip_seed, streams::kModuleDelta, site, key);
      // Ic0's deviation shares rho of Delta's: z = rho z_Delta + sqrt(1 - rho^2) z_own.
      const double z_ic0 = rho * z_delta + rho_rest * gaussian_at(chip_seed, streams::kModuleIc0, site, key);
      device.delta = std::max(1.0, mtj.delta * (1.0 + mtj.sigma_delta * z_delta));
      device.ic0_ua = std::max(1e-3, mtj.ic0_ua * (1.0 + mtj.sigma_ic0 * z_ic0));
      // The temperature the currents are set at (the operating one if compensated).
      const double set_delta = compensated ? mtj.delta_temperature_factor() : 1.0;
      const double set_ic0 = compensated ? mtj.ic0_temperature_factor() : 1.0;
      device.delta *= set_delta;
      device.ic0_ua *= set_ic0;
      // A trim cannot go below no current: a module that switches more often than p on its own
      // (a very low Delta) is written with none (or the DAC's lowest code).
      double current = write_current_ua_;
      if (per_module) {
        const double wanted = switching_probability(device, 0.0, pulse) >= p ? 0.0 : write_current_for(device, p, pulse);
        current = trim_dac_current(wanted, write_current_ua_, circuit.trim_dac_bits == 0 ? 0.0 : circuit.trim_range_ua,
                                   circuit.trim_dac_bits);
      }
      // What the module is when it switches: at the operating temperature, after any drift since
      // its current was set.
      device.delta = std::max(1.0, device.delta * (1.0 + faults.module_delta_drift)) * (mtj.delta_temperature_factor() / set_delta);
      device.ic0_ua *= (1.0 + faults.module_ic0_drift) * (mtj.ic0_temperature_factor() / set_ic0);
      for (int l = 0; l < levels_; ++l) {
        const double level_current = levels_ == 1 ? current : current * (1.0 + supply * supply_z(l));
        pm[static_cast<std::size_t>(l)] =
            noisy_switching_probability(device, level_current, pulse, circuit.write_noise_relative);
      }
    }
    // At the nominal device and temperature the calibration inverts exactly: pm = p, bit for bit.
    // A reset fails (leaves an AP module in AP) with the module's own error rate: it drops with
    // the chain's steady state (mtj.h). Its passes are then correlated by (1 - q) WER, which the
    // masks (independent per pass) leave out.
    const double wer = reset_errors ? write_error_rate(device, circuit.reset_current_ua, circuit.reset_pulse_ns,
                                                       mtj.precession_time_ns)
                                    : 0.0;
    const double u = uniform_at(chip_seed, streams::kModuleFault, site, key);
    const bool stuck_p = u < faults.module_stuck_p, stuck_ap = !stuck_p && u < faults.module_stuck_p + faults.module_stuck_ap;
    double mean = 0.0;
    for (int l = 0; l < levels_; ++l) {
      const double q = stuck_p ? 0.0 : stuck_ap ? 1.0 : steady_drop_probability(pm[static_cast<std::size_t>(l)], wer);
      mean += (levels_ == 1 ? 1.0 : supply_level_probability(l)) * q;
      bound_[static_cast<std::size_t>(l) * n + static_cast<std::size_t>(m)] = DropoutDraws::bound_for(q);
    }
    probability_[static_cast<std::size_t>(m)] = mean;
  }
}

int DropoutBank::supply_level(std::uint64_t seed, std::uint64_t image, std::uint64_t sample) const {
  if (levels_ == 1) return 0;
  // The levels' upper cumulative probabilities, the same for every bank.
  static const std::array<double, kSupplyLevels> cdf = [] {
    std::array<double, kSupplyLevels> out{};
    double cumulative = 0.0;
    for (int l = 0; l < kSupplyLevels; ++l) out[static_cast<std::size_t>(l)] = cumulative += supply_level_probability(l);
    out.back() = 1.0;
    return out;
  }();
  const double u = uniform_at(stream_seed(seed, streams::kSupplyLevel), image, sample, static_cast<std::uint64_t>(site_));
  return std::min(kSupplyLevels - 1, static_cast<int>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin()));
}

const std::uint64_t* DropoutBank::pass_bounds(std::uint64_t seed, std::uint64_t image, std::uint64_t sample) const {
  return bound_.data() + static_cast<std::size_t>(supply_level(seed, image, sample)) * probability_.size();
}

}  // namespace spinbayes
