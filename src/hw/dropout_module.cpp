#include "hw/dropout_module.h"

#include <algorithm>
#include <cmath>

#include "core/counter_rng.h"
#include "model/dropout_mask.h"

namespace spinbayes {

DropoutBank::DropoutBank(const HardwareConfig& hw, double p, int modules, std::uint64_t chip_seed, int site) {
  probability_.resize(static_cast<std::size_t>(modules));
  bound_.resize(static_cast<std::size_t>(modules));
  const MtjParams& mtj = hw.mtj;
  const double pulse = hw.dropout_module.pulse_width_ns;
  const MtjSwitching reference = nominal_switching(mtj, /*at_reference=*/true);
  const bool active = p > 0.0;
  write_current_ua_ = active ? write_current_for(reference, p, pulse) : 0.0;
  const bool per_module = hw.dropout_module.write_current == WriteCurrent::per_module;
  const DropoutModuleParams& circuit = hw.dropout_module;
  const FaultParams& faults = hw.faults;
  const bool exact = mtj.sigma_delta == 0.0 && mtj.sigma_ic0 == 0.0 && mtj.temperature_k == mtj.reference_temperature_k &&
                     faults.module_ic0_drift == 0.0 && faults.module_delta_drift == 0.0 &&
                     (!per_module || circuit.trim_dac_bits == 0) && circuit.write_noise_relative == 0.0;
  const double rho = mtj.delta_ic0_correlation, rho_rest = std::sqrt(std::max(0.0, 1.0 - rho * rho));
  for (int m = 0; m < modules; ++m) {
    const auto key = static_cast<std::uint64_t>(m);
    double pm = p;
    if (active && !exact) {
      MtjSwitching device = reference;
      const double z_delta = gaussian_at(chip_seed, streams::kModuleDelta, site, key);
      // Ic0's deviation shares rho of Delta's: z = rho z_Delta + sqrt(1 - rho^2) z_own.
      const double z_ic0 = rho * z_delta + rho_rest * gaussian_at(chip_seed, streams::kModuleIc0, site, key);
      device.delta = std::max(1.0, mtj.delta * (1.0 + mtj.sigma_delta * z_delta));
      device.ic0_ua = std::max(1e-3, mtj.ic0_ua * (1.0 + mtj.sigma_ic0 * z_ic0));
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
      device.delta = std::max(1.0, device.delta * (1.0 + faults.module_delta_drift)) * mtj.delta_temperature_factor();
      device.ic0_ua *= (1.0 + faults.module_ic0_drift) * mtj.ic0_temperature_factor();
      pm = noisy_switching_probability(device, current, pulse, circuit.write_noise_relative);
    }
    // At the nominal device and temperature the calibration inverts exactly: pm = p, bit for bit.
    const double u = uniform_at(chip_seed, streams::kModuleFault, site, key);
    if (u < faults.module_stuck_p) {
      pm = 0.0;
    } else if (u < faults.module_stuck_p + faults.module_stuck_ap) {
      pm = 1.0;
    }
    probability_[static_cast<std::size_t>(m)] = pm;
    bound_[static_cast<std::size_t>(m)] = DropoutDraws::bound_for(pm);
  }
}

}  // namespace spinbayes
