#include "core/counter_rng.h"

#include <cmath>
#include <numbers>

namespace spinbayes {

double gaussian_from_uniforms(double u1, double u2) {
  // 1 - u1 in (0, 1] so the log is finite.
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double SplitMix64::normal() {
  const double u1 = uniform();
  return gaussian_from_uniforms(u1, uniform());
}

}  // namespace spinbayes
