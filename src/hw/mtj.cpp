#include "hw/mtj.h"

#include <cmath>

#include <fmt/format.h>

#include "core/error.h"

namespace spinbayes {

MtjSwitching nominal_switching(const MtjParams& mtj, bool at_reference) {
  return {at_reference ? mtj.delta : mtj.delta_at_temperature(), mtj.ic0_ua, mtj.tau0_ns};
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
  const double tau = d.tau0_ns * std::exp(d.delta * (1.0 - current_ua / d.ic0_ua));
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
  const double current = d.ic0_ua * (1.0 - std::log(tau / d.tau0_ns) / d.delta);
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
                                    double sigma_ic0) {
  const double p = switching_probability(d, current_ua, pulse_ns);
  const double i_ratio = current_ua / d.ic0_ua;
  // d ln tau / d Delta = 1 - I/Ic0;  d ln tau / d Ic0 = Delta I / Ic0^2, so per relative change
  // of Ic0 it is Delta I / Ic0.
  const double a = (1.0 - i_ratio) * d.delta * sigma_delta;
  const double b = d.delta * i_ratio * sigma_ic0;
  return (1.0 - p) * -std::log1p(-p) * std::sqrt(a * a + b * b);
}

}  // namespace spinbayes
