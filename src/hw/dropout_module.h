#pragma once
// Dropout modules: an MTJ reset to P, written with a current pulse that switches it to AP with
// probability p, then sensed; AP means "drop". Each module's own Delta and Ic0 (device-to-device
// variation, drawn once per chip seed) and the operating temperature set its actual switching
// probability under the write current, which is calibrated either once for the nominal device at
// the reference temperature (per_chip) or for each module (per_module, a trimmed design).
// Stuck-at-P modules always keep; stuck-at-AP modules always drop. Under a per-pass supply
// fluctuation (dropout_module.supply_noise_relative) every module of the bank is written in a pass
// with I (1 + sigma z), one z for the pass: z takes one of kSupplyLevels levels 0.25 apart on
// [-4, 4], each with the normal probability of its quarter-wide bin (the ends take the tails).
// A reset that fails leaves the module in AP for the next pass (dropout_module.reset_errors): its
// drop probability is the steady state p / (1 - (1 - p) WER), WER its own reset error rate.
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

  static constexpr int kSupplyLevels = 33;

  int size() const { return static_cast<int>(probability_.size()); }
  // Module m's drop probability, averaged over the supply levels.
  double probability(int m) const { return probability_[static_cast<std::size_t>(m)]; }
  // Module m drops iff the pass's uniform draw u (as u * 2^53) is below its bound: the same
  // comparison as the software masks (DropoutDraws), so a module with p_m = p draws exactly the
  // software bit. The bounds of every module in the pass (seed, image, sample), at its supply level.
  const std::uint64_t* pass_bounds(std::uint64_t seed, std::uint64_t image, std::uint64_t sample) const;
  // Without a supply fluctuation the bounds are the same in every pass.
  bool fluctuates() const { return levels_ > 1; }
  std::uint64_t drop_bound(int m) const { return bound_[static_cast<std::size_t>(m)]; }  // !fluctuates()
  double write_current_ua() const { return write_current_ua_; }  // the per-chip current (nominal device)
  // The supply level of a pass (0 .. levels - 1; the middle one is z = 0) and its z.
  int supply_level(std::uint64_t seed, std::uint64_t image, std::uint64_t sample) const;
  static double supply_z(int level) { return -4.0 + 0.25 * level; }
  // The probability of each level: the normal mass of [z - 1/8, z + 1/8], the ends with the tails.
  static double supply_level_probability(int level);

 private:
  std::vector<double> probability_;
  std::vector<std::uint64_t> bound_;  // levels x modules
  int levels_ = 1, site_ = 0;
  double write_current_ua_ = 0.0;
};

}  // namespace spinbayes
