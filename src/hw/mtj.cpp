#include "hw/mtj.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "core/error.h"

namespace spinbayes {

MtjSwitching nominal_switching(const MtjParams& mtj, bool at_reference) {
  if (at_reference) return {mtj.delta, mtj.ic0_ua, mtj.tau0_ns, mtj.switching_exponent};
  return {mtj.delta_at_temperature(), mtj.ic0_at_temperature_ua(), mtj.tau0_ns, mtj.switching_exponent};
}

// n = 1 exactly as the linear law.
double effective_barrier_kt(const MtjSwitching& d, double current_ua) {
  const double x = 1.0 - current_ua / d.ic0_ua;
  if (d.exponent == 1.0) return d.delta * x;
  return d.delta * std::copysign(std::pow(std::fabs(x), d.exponent), x);
}

double tmr_at_bias(const MtjParams& mtj, double volts) {
  const double v = volts / mtj.tmr_half_bias_v;
  return mtj.tmr / (1.0 + v * v);
}

double resistance_ohm(const MtjParams& mtj, MtjState state, double volts) {
  const double rp = mtj.rp_ohm();
  return state == MtjState::parallel ? rp : rp * (1.0 + tmr_at_bias(mtj, volts));
}

double cell_tmr_at_read(const MtjParams& mtj, double volts, double access_ohm) {
  const double rp = mtj.rp_ohm();
  double tmr = tmr_at_bias(mtj, volts);
  // The MTJ's share of the voltage only rises with R_AP, and TMR(V) falls with V: the iteration
  // contracts (|dV/dTMR| x |dTMR/dV| < 1 at these biases); 30 steps settle it to rounding.
  for (int step = 0; step < 30 && access_ohm > 0.0; ++step) {
    const double rap = rp * (1.0 + tmr);
    tmr = tmr_at_bias(mtj, volts * rap / (rap + access_ohm));
  }
  return tmr;
}

double cell_resistance_ohm(const MtjParams& mtj, MtjState state, double volts, double access_ohm) {
  const double rp = mtj.rp_ohm();
  const double r = state == MtjState::parallel ? rp : rp * (1.0 + cell_tmr_at_read(mtj, volts, access_ohm));
  return r + access_ohm;
}

double switching_probability(const MtjSwitching& d, double current_ua, double pulse_ns) {
  const double tau = d.tau0_ns * std::exp(effective_barrier_kt(d, current_ua));
  return -std::expm1(-pulse_ns / tau);
}

double write_current_for(const MtjSwitching& d, double p, double pulse_ns) {
  if (!(p > 0.0 && p < 1.0)) throw Error(fmt::format("dropout module: target probability {:g} is not in (0, 1)", p));
  const double tau = -pulse_ns / std::log1p(-p);
  if (tau <= d.tau0_ns) {
    throw Error(fmt::format("dropout_module.pulse_width_ns: p = {:g} in {:g} ns needs I >= Ic0 "
                            "(outside thermal activation); use a longer pulse",
                            p, pulse_ns));
  }
  const double x = std::log(tau / d.tau0_ns) / d.delta;  // x^n, x = 1 - I / Ic0
  const double current = d.ic0_ua * (1.0 - (d.exponent == 1.0 ? x : std::pow(x, 1.0 / d.exponent)));
  // Below the zero-current floor, p0 = 1 - exp(-t / (tau0 e^Delta)), the device switches on its
  // own more often than asked: only a current of the other polarity would lower p.
  if (!(current > 0.0)) {
    throw Error(fmt::format("dropout_module.pulse_width_ns: p = {:g} in {:g} ns is below what the device does with "
                            "no write current ({:.3g}); use a shorter pulse",
                            p, pulse_ns, switching_probability(d, 0.0, pulse_ns)));
  }
  return current;
}

double switching_probability_spread(const MtjSwitching& d, double current_ua, double pulse_ns, double sigma_delta,
                                    double sigma_ic0, double rho) {
  const double p = switching_probability(d, current_ua, pulse_ns);
  const double i_ratio = current_ua / d.ic0_ua;
  const double x = std::max(0.0, 1.0 - i_ratio), n = d.exponent;
  // d ln tau / d Delta = x^n;  d ln tau / d Ic0 = Delta n x^(n-1) I / Ic0^2, so per relative
  // change of Ic0 it is Delta n x^(n-1) I / Ic0.
  const double a = std::pow(x, n) * d.delta * sigma_delta;
  const double b = d.delta * n * std::pow(x, n - 1.0) * i_ratio * sigma_ic0;
  return (1.0 - p) * -std::log1p(-p) * std::sqrt(std::max(0.0, a * a + b * b + 2.0 * rho * a * b));
}

double precessional_switching_time_ns(const MtjSwitching& d, double current_ua, double tau_d_ns) {
  const double i = current_ua / d.ic0_ua;
  if (!(i > 1.0)) return d.tau0_ns * std::exp(effective_barrier_kt(d, current_ua));  // thermal: the mean waiting time
  const double theta0 = 1.0 / std::sqrt(2.0 * d.delta);
  return tau_d_ns * std::log(std::numbers::pi / (2.0 * theta0)) / (i - 1.0);
}

double write_error_rate(const MtjSwitching& d, double current_ua, double pulse_ns, double tau_d_ns) {
  const double i = current_ua / d.ic0_ua;
  if (!(i > 1.0)) return 1.0 - switching_probability(d, current_ua, pulse_ns);
  const double quarter_pi2 = 0.25 * std::numbers::pi * std::numbers::pi;
  return -std::expm1(-d.delta * quarter_pi2 * std::exp(-2.0 * (i - 1.0) * pulse_ns / tau_d_ns));
}

double steady_drop_probability(double p, double wer) {
  if (!(p > 0.0) || !(wer > 0.0)) return p;
  return std::min(1.0, p / (p + (1.0 - p) * (1.0 - wer)));
}

double noisy_switching_probability(const MtjSwitching& d, double current_ua, double pulse_ns, double sigma) {
  if (sigma == 0.0) return switching_probability(d, current_ua, pulse_ns);
  // Simpson's rule on [-8, 8] with 320 intervals: the normal tail beyond 8 sigma is 1e-15, and
  // P_sw is smooth in z.
  constexpr int kIntervals = 320;
  constexpr double kSpan = 8.0, h = 2.0 * kSpan / kIntervals;
  const double norm = 1.0 / std::sqrt(2.0 * std::numbers::pi);
  double sum = 0.0;
  for (int k = 0; k <= kIntervals; ++k) {
    const double z = -kSpan + h * k;
    const double weight = (k == 0 || k == kIntervals) ? 1.0 : (k % 2 == 1 ? 4.0 : 2.0);
    sum += weight * norm * std::exp(-0.5 * z * z) * switching_probability(d, current_ua * (1.0 + sigma * z), pulse_ns);
  }
  return std::clamp(sum * h / 3.0, 0.0, 1.0);
}

double trim_dac_current(double current_ua, double center_ua, double range_ua, int bits) {
  if (bits <= 0) return current_ua;
  const double codes = std::ldexp(1.0, bits) - 1.0;  // the highest code
  const double step = range_ua / codes, low = center_ua - 0.5 * range_ua;
  const double code = std::clamp(std::nearbyint((current_ua - low) / step), 0.0, codes);
  return low + code * step;
}

}  // namespace spinbayes
