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
  const FaultParams& faults = hw.faults;
  const bool exact = mtj.sigma_delta == 0.0 && mtj.sigma_ic0 == 0.0 && mtj.temperature_k == mtj.reference_temperature_k &&
                     faults.module_ic0_drift == 0.0 && faults.module_delta_drift == 0.0;
  const double temperature_scale = mtj.reference_temperature_k / mtj.temperature_k;  // Delta ~ 1 / T
  for (int m = 0; m < modules; ++m) {
    const auto key = static_cast<std::uint64_t>(m);
    double pm = p;
    if (active && !exact) {
      MtjSwitching device = reference;
      device.delta = std::max(1.0, mtj.delta * (1.0 + mtj.sigma_delta * gaussian_at(chip_seed, streams::kModuleDelta, site, key)));
      device.ic0_ua = std::max(1e-3, mtj.ic0_ua * (1.0 + mtj.sigma_ic0 * gaussian_at(chip_seed, streams::kModuleIc0, site, key)));
      // A trim cannot go below no current: a module that switches more often than p on its own
      // (a very low Delta) is written with none.
      const double current = !per_module ? write_current_ua_
                             : switching_probability(device, 0.0, pulse) >= p ? 0.0
                                                                              : write_current_for(device, p, pulse);
      // What the module is when it switches: at the operating temperature, after any drift since
      // its current was set.
      device.delta = std::max(1.0, device.delta * (1.0 + faults.module_delta_drift)) * temperature_scale;
      device.ic0_ua *= 1.0 + faults.module_ic0_drift;
      pm = switching_probability(device, current, pulse);
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
