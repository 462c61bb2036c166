#pragma once
// Dropout modules: an MTJ reset to P, written with a current pulse that switches it to AP with
// probability p, then sensed; AP means "drop". Each module's own Delta and Ic0 (device-to-device
// variation, drawn once per chip seed) and the operating temperature set its actual switching
// probability under the write current, which is calibrated either once for the nominal device at
// the reference temperature (per_chip) or for each module (per_module, a trimmed design).
// Stuck-at-P modules always keep; stuck-at-AP modules always drop.
#include <cstdint>
#include <vector>

#include "hw/hardware_config.h"
#include "hw/mtj.h"

namespace spinbayes {

class DropoutBank {
 public:
  DropoutBank() = default;
  // `modules` modules for dropout site `site` with target probability p.
  DropoutBank(const HardwareConfig& hw, double p, int modules, std::uint64_t chip_seed, int site);

  int size() const { return static_cast<int>(probability_.size()); }
  double probability(int m) const { return probability_[static_cast<std::size_t>(m)]; }
  // Module m drops iff the pass's uniform draw u (as u * 2^53) is below this: the same comparison
  // as the software masks (DropoutDraws), so a module with p_m = p draws exactly the software bit.
  std::uint64_t drop_bound(int m) const { return bound_[static_cast<std::size_t>(m)]; }
  const std::uint64_t* drop_bounds() const { return bound_.data(); }  // all of them, by module
  double write_current_ua() const { return write_current_ua_; }  // the per-chip current (nominal device)

 private:
  std::vector<double> probability_;
  std::vector<std::uint64_t> bound_;
  double write_current_ua_ = 0.0;
};

}  // namespace spinbayes
