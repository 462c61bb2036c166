#include "core/counter_rng.h"

#include <cmath>
#include <numbers>

namespace spinbayes {

double SplitMix64::normal() {
  // u1 in (0, 1] so the log is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace spinbayes
