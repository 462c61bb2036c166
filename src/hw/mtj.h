#pragma once
// The magnetic tunnel junction as the simulator sees it: resistance by state and bias, and
// thermally activated stochastic switching.
//
// Resistance: R_P = RA / area; R_AP = R_P (1 + TMR(V)), TMR(V) = TMR0 / (1 + (V / V_h)^2).
// Switching below the critical current (thermal activation, Neel-Brown with spin-torque-lowered
// barrier):  P_sw(I, t) = 1 - exp(-t / tau),  tau = tau0 exp(Delta (1 - I / Ic0)^n), n the
// switching exponent (1: Koch et al. 2004; 2: perpendicular macrospin, Butler et al. 2012).
// Its inverse gives the write current for a target probability p:
//   tau = -t / ln(1 - p),  I = Ic0 (1 - (ln(tau / tau0) / Delta)^(1/n)),  valid while I < Ic0.
// Past Ic0 the barrier term is continued with its sign, Delta sgn(x) |x|^n, x = 1 - I / Ic0.
#include "hw/hardware_config.h"

namespace spinbayes {

enum class MtjState { parallel, antiparallel };

// One device's switching parameters (after variation, at the operating temperature).
struct MtjSwitching {
  double delta = 45.0, ic0_ua = 45.0, tau0_ns = 1.0, exponent = 1.0;
};

// The nominal device of a config, with Delta and Ic0 at the operating temperature (or at the
// reference temperature when `at_reference` is set: that is where write currents are calibrated).
MtjSwitching nominal_switching(const MtjParams& mtj, bool at_reference = false);

double tmr_at_bias(const MtjParams& mtj, double volts);
double resistance_ohm(const MtjParams& mtj, MtjState state, double volts);
// A crossbar cell read at `volts` through an access transistor of access_ohm in series: the MTJ
// sees volts R / (R + access_ohm), and an AP MTJ's TMR is taken at that voltage (a fixed point:
// R_AP = R_P (1 + TMR(V R_AP / (R_AP + access_ohm)))). The MTJ's TMR at its read, and the cell's
// resistance, MTJ and transistor.
double cell_tmr_at_read(const MtjParams& mtj, double volts, double access_ohm);
double cell_resistance_ohm(const MtjParams& mtj, MtjState state, double volts, double access_ohm);

// The barrier under current I, Delta sgn(x) |x|^n with x = 1 - I / Ic0 (kT).
double effective_barrier_kt(const MtjSwitching& device, double current_ua);
double switching_probability(const MtjSwitching& device, double current_ua, double pulse_ns);
// The current that switches `device` with probability p in a pulse of pulse_ns. Throws Error when
// p is outside (0, 1), needs I >= Ic0 (outside the thermal-activation regime) or is below the
// probability with no current at all.
double write_current_for(const MtjSwitching& device, double p, double pulse_ns);

// Above the critical current (I > Ic0) the macrospin precesses out of its thermal initial angle
// theta0 and switches after t = tau_D ln(pi / (2 theta0)) / (I / Ic0 - 1) (Sun, PRB 62, 570,
// 2000). theta0 is thermal, P(theta0 > x) = exp(-Delta x^2), so the probability that a pulse of
// t has not switched the device (the write error rate) is
//   WER = 1 - exp(-Delta (pi / 2)^2 exp(-2 (I / Ic0 - 1) t / tau_D))   (Butler et al. 2012),
// and the switching time from the rms angle theta0 = 1 / sqrt(2 Delta) is the regime's mean.
// Below Ic0 both come from thermal activation: WER = exp(-t / tau), time tau.
double precessional_switching_time_ns(const MtjSwitching& device, double current_ua, double tau_d_ns);
double write_error_rate(const MtjSwitching& device, double current_ua, double pulse_ns, double tau_d_ns);
// A module written with probability p to AP whose reset back to P fails with probability `wer`
// carries AP into the next pass: after a pass's write it is AP with q = p + (1 - p) wer q, the
// chain's steady state q = p / (1 - (1 - p) wer), computed as p / (p + (1 - p)(1 - wer)) so that
// it cannot cancel (p tiny, wer 1 gives 1).
double steady_drop_probability(double p, double wer);

// First-order (delta-method) standard deviation of P_sw across devices whose Delta and Ic0 have
// relative spreads sigma_delta and sigma_ic0 with correlation rho, written with a fixed current I:
//   dP = (1 - P) ln(1/(1 - P)) * (-d ln tau),
//   d ln tau = x^n dDelta + Delta n x^(n-1) (I / Ic0) dIc0 / Ic0,  x = 1 - I / Ic0.
double switching_probability_spread(const MtjSwitching& nominal, double current_ua, double pulse_ns,
                                    double sigma_delta, double sigma_ic0, double rho = 0.0);

// The mean switching probability of writes whose current is I (1 + sigma z), z standard normal
// and independent between writes (driver noise): the integral of P_sw over the normal density
// (composite Simpson on z in [-8, 8]); sigma = 0 gives switching_probability.
double noisy_switching_probability(const MtjSwitching& device, double current_ua, double pulse_ns, double sigma);

// A current DAC of 2^bits codes spanning range_ua centred on center_ua (bits = 0: continuous):
// the code nearest current_ua, saturating at the ends.
double trim_dac_current(double current_ua, double center_ua, double range_ua, int bits);

}  // namespace spinbayes
