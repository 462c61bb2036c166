#include "hw/derived.h"

#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "hw/cell_array.h"
#include "hw/ir_drop.h"
#include "hw/mtj.h"

namespace spinbayes {

DerivedQuantities derived_quantities(const HardwareConfig& hw, double p) {
  const MtjParams& m = hw.mtj;
  const MtjParams mt = m.crossbar_at_temperature();  // RA and TMR at temperature_k
  const double v = hw.crossbar.read_voltage_v;
  const double ra = hw.crossbar.access_resistance_ohm;
  const double rp = mt.rp_ohm(), tmr_read = cell_tmr_at_read(mt, v, ra);
  const double rap0 = rp * (1.0 + mt.tmr), rap = rp * (1.0 + tmr_read);
  const double gp_us = 1e6 / (rp + ra), gap_us = 1e6 / (rap + ra);
  const double g_half_us = 0.5 * (gp_us - gap_us);
  DerivedQuantities out;
  out.quantities = {
      {"mtj_area_um2", m.area_um2(), "um^2", "pi diameter^2 / 4"},
      {"r_p_ohm", rp, "Ohm", "ra_ohm_um2 (1 + ra_temp_coeff_per_k (T - T_ref)) / area, at temperature_k"},
      {"tmr_at_temperature", mt.tmr, "ratio", "tmr (1 - tmr_temp_coeff_per_k (T - T_ref))"},
      {"r_ap_zero_bias_ohm", rap0, "Ohm", "R_P (1 + TMR(T))"},
      {"ap_mtj_read_voltage_v", v * rap / (rap + ra), "V",
       "read_voltage_v R_AP / (R_AP + access_resistance_ohm): the AP MTJ's share of the read (with R_AP at it: a "
       "fixed point)"},
      {"tmr_at_read", tmr_read, "ratio", "TMR(T) / (1 + (V_AP / tmr_half_bias_v)^2), V_AP the AP MTJ's read voltage"},
      {"r_ap_at_read_ohm", rap, "Ohm", "R_P (1 + TMR(V_AP))"},
      {"on_off_ratio", (rap + ra) / (rp + ra), "ratio", "(R_AP + access_resistance_ohm) / (R_P + access_resistance_ohm): the cell's"},
      {"g_p_us", gp_us, "uS", "1 / (R_P + access_resistance_ohm)"},
      {"g_ap_us", gap_us, "uS", "1 / (R_AP(V_AP) + access_resistance_ohm)"},
      {"dot_unit_ua", v * g_half_us, "uA", "read_voltage_v (G_P - G_AP) / 2: a column's current per unit of dot product"},
      {"crossbar_gain_at_temperature", crossbar_gain(hw), "ratio",
       "(G_P - G_AP) at temperature_k (and after faults.rp_drift, tmr_drift) over the same at "
       "reference_temperature_k: the factor on every column's sum read against thresholds set at the reference (the "
       "reference columns cancel the mean conductance)"},
      {"driven_row_current_ua", 0.5 * v * (gp_us + gap_us), "uA",
       "read_voltage_v (G_P + G_AP) / 2: a driven row's mean current; a single-tile column's sense amplifier compares "
       "rows x this, and crossbar.sense_offset_relative is a share of it"},
      {"read_current_p_ua", v * gp_us, "uA", "read_voltage_v G_P"},
      {"ic0_at_temperature_ua", m.ic0_at_temperature_ua(), "uA", "ic0_ua (1 - ic0_temp_coeff_per_k (T - T_ref))"},
      {"read_current_over_ic0", v * gp_us / m.ic0_at_temperature_ua(), "ratio",
       "read current (P) / Ic0(T): the read's share of the switching current"},
      {"delta_at_temperature_kt", m.delta_at_temperature(), "kT",
       "delta (T_ref / T) (1 - barrier_temp_coeff_per_k (T - T_ref))"},
  };
  if (hw.crossbar.reference_error_relative > 0.0) {
    out.quantities.push_back(
        {"reference_error_full_tile_units",
         hw.crossbar.reference_error_relative * hw.crossbar.tile_rows * (gp_us + gap_us) / (gp_us - gap_us), "dot units",
         "reference_error_relative tile_rows (G_P + G_AP) / (G_P - G_AP): one sigma of what a tile's reference error "
         "moves each of its columns by with every row driven (fewer driven rows, proportionally less)"});
  }
  const MtjSwitching reference = nominal_switching(m, true), operating = nominal_switching(m);
  const double t = hw.dropout_module.pulse_width_ns;
  double iw = 0.0;
  try {
    iw = write_current_for(reference, p, t);
  } catch (const Error& e) {
    out.unreachable = e.what();
    return out;
  }
  const double ratio = iw / m.ic0_ua;
  const double barrier = effective_barrier_kt(reference, iw);
  const double tau_ns = m.tau0_ns * std::exp(barrier);
  const double ratio_t = iw / operating.ic0_ua;
  const std::vector<DerivedQuantity> write = {
      {"write_current_ua", iw, "uA",
       fmt::format("ic0 (1 - (ln(tau / tau0) / delta)^(1/n)), tau = -pulse / ln(1 - p), p = {:g}, n = switching_exponent", p)},
      {"write_over_ic0", ratio, "ratio", "write current / ic0_ua (thermal activation needs < 1)"},
      {"effective_barrier_kt", barrier, "kT", "delta (1 - I / Ic0)^n at the reference temperature"},
      {"switching_time_ns", tau_ns, "ns", "tau0 exp(effective barrier): mean time to switch under the write current"},
      {"write_over_ic0_at_temperature", ratio_t, "ratio",
       "write current / Ic0(T): the regime at temperature_k (thermal activation while < 1)"},
      {"effective_barrier_at_temperature_kt", effective_barrier_kt(operating, iw), "kT", "Delta(T) (1 - I / Ic0(T))^n"},
      {"p_at_temperature", switching_probability(operating, iw, t), "probability",
       "1 - exp(-pulse / tau) with Delta(T) and Ic0(T) under the current set at the reference (no temperature "
       "compensation)"},
      {"write_voltage_v", iw * 1e-6 * rp, "V", "write current x R_P (the module starts in P)"},
      {"write_mtj_energy_fj", iw * 1e-6 * iw * 1e-6 * rp * t * 1e-9 * 1e15, "fJ", "I^2 R_P pulse: the MTJ's own dissipation in a write"},
      {"module_p_spread_untrimmed",
       switching_probability_spread(reference, iw, t, m.sigma_delta, m.sigma_ic0, m.delta_ic0_correlation), "probability",
       "first-order sd of p over modules written with one current (per_chip), from sigma_delta, sigma_ic0 and "
       "delta_ic0_correlation"},
  };
  out.quantities.insert(out.quantities.end(), write.begin(), write.end());
  // The reset to P: its regime, switching time and the share of resets that leave the module in AP.
  {
    const double ir = hw.dropout_module.reset_current_ua, tr = hw.dropout_module.reset_pulse_ns, tau_d = m.precession_time_ns;
    const double ratio_r = ir / operating.ic0_ua;
    const bool precessional = ratio_r > 1.0;
    out.quantities.push_back({"reset_over_ic0", ratio_r, "ratio",
                              fmt::format("reset_current_ua / Ic0(T): {} regime", precessional ? "precessional (> 1)"
                                                                                              : "thermal-activation (< 1)")});
    out.quantities.push_back(
        {"reset_switching_time_ns", precessional_switching_time_ns(operating, ir, tau_d), "ns",
         precessional ? "precession_time_ns ln(pi / (2 theta0)) / (I / Ic0 - 1), theta0 = 1 / sqrt(2 Delta) (Sun 2000)"
                      : "tau0 exp(Delta (1 - I / Ic0)^n)"});
    const double wer = write_error_rate(operating, ir, tr, tau_d);
    out.quantities.push_back(
        {"reset_error_rate", wer, "probability",
         precessional ? "1 - exp(-Delta (pi/2)^2 exp(-2 (I / Ic0 - 1) reset_pulse_ns / precession_time_ns)): resets that "
                        "leave an AP module in AP (Butler et al. 2012)"
                      : "exp(-reset_pulse_ns / tau): resets that leave an AP module in AP"});
    if (hw.dropout_module.reset_errors == ResetErrors::applied) {
      out.quantities.push_back({"p_shift_by_reset_errors", steady_drop_probability(p, wer) - p, "probability",
                                "p / (1 - (1 - p) reset_error_rate) - p: what a failed reset, which carries AP into the "
                                "next pass, adds to the nominal module's drop probability (reset_errors = applied)"});
    }
  }
  // What a per-temperature compensation writes with (when p is reachable at temperature_k).
  try {
    out.quantities.push_back({"write_current_at_temperature_ua", write_current_for(operating, p, t), "uA",
                              "Ic0(T) (1 - (ln(tau / tau0) / Delta(T))^(1/n)): the current set at temperature_k by "
                              "dropout_module.temperature_compensation = per_temperature, which keeps p there"});
  } catch (const Error&) {
    // Unreachable at temperature: a compensated bank says why when it is built.
  }
  const DropoutModuleParams& c = hw.dropout_module;
  if (c.trim_dac_bits > 0) {
    const double step = c.trim_range_ua / (std::ldexp(1.0, c.trim_dac_bits) - 1.0);
    out.quantities.push_back({"trim_step_ua", step, "uA", "trim_range_ua / (2^trim_dac_bits - 1)"});
    out.quantities.push_back({"p_at_half_trim_step_low", switching_probability(reference, iw - 0.5 * step, t), "probability",
                              "P_sw(I - step / 2): the lowest p a trimmed nominal module can be left at"});
    out.quantities.push_back({"p_at_half_trim_step_high", switching_probability(reference, iw + 0.5 * step, t),
                              "probability", "P_sw(I + step / 2): the highest"});
  }
  if (c.write_noise_relative > 0.0) {
    out.quantities.push_back({"p_with_write_noise", noisy_switching_probability(reference, iw, t, c.write_noise_relative),
                              "probability",
                              "mean of P_sw(I (1 + write_noise_relative z)) over z ~ N(0, 1): the nominal module's p "
                              "under driver noise"});
  }
  if (c.supply_noise_relative > 0.0) {
    const double sd = c.supply_noise_relative;
    out.quantities.push_back({"p_at_supply_minus_sigma", switching_probability(reference, iw * (1.0 - sd), t),
                              "probability", "P_sw(I (1 - supply_noise_relative)): a layer's modules in a pass one sigma low"});
    out.quantities.push_back({"p_at_supply_plus_sigma", switching_probability(reference, iw * (1.0 + sd), t),
                              "probability", "P_sw(I (1 + supply_noise_relative)): one sigma high"});
  }
  // IR drop on a full tile (every row driven, data cells at G_mid): the nodal solution's
  // extremes, for tiles small enough to solve here.
  const CrossbarParams& x = hw.crossbar;
  const std::int64_t cells = static_cast<std::int64_t>(x.tile_rows) * (x.tile_cols + 2);
  if (x.wire_resistance_ohm > 0.0 && cells <= (1 << 15)) {
    const double g_p = gp_us * 1e-6, g_ap = gap_us * 1e-6, g_mid = 0.5 * (g_p + g_ap), g_half = 0.5 * (g_p - g_ap);
    const auto map = ir_drop_map(x.tile_rows, x.tile_cols, g_p, g_ap, x.wire_resistance_ohm, v);
    const int last = x.tile_cols - 1;
    out.quantities.push_back({"ir_drop_near_cell_fraction", map->at(x.tile_rows - 1, 0), "ratio",
                              "voltage across the cell nearest the word-line driver and the amplifier (last row, "
                              "first column) over read_voltage_v: nodal solution of a tile with every row driven, "
                              "cells at (G_P + G_AP) / 2, wire_resistance_ohm per segment"});
    out.quantities.push_back({"ir_drop_far_cell_fraction", map->at(0, last), "ratio",
                              "the same for the cell furthest from both (first row, last column)"});
    double first = 0.0, far = 0.0;
    for (int r = 0; r < x.tile_rows; ++r) {
      const double reference = 0.5 * (g_p * map->at(r, x.tile_cols) + g_ap * map->at(r, x.tile_cols + 1));
      first += (g_mid * map->at(r, 0) - reference) / g_half;
      far += (g_mid * map->at(r, last) - reference) / g_half;
    }
    out.quantities.push_back({"ir_drop_offset_first_column_dot", first, "dot units",
                              "sum over rows of (G_mid d(r, 0) - (G_P d_P(r) + G_AP d_AP(r)) / 2) / G_half, d the "
                              "cells' voltage fractions above: what the first column reads beyond its dot when "
                              "half its cells match (the reference columns sit after the last column)"});
    out.quantities.push_back({"ir_drop_offset_last_column_dot", far, "dot units", "the same for the last column"});
  }
  return out;
}

std::string derived_comment(const DerivedQuantities& derived, double p) {
  std::string out = fmt::format("// Derived (not parameters; from the values above, for dropout p = {:g}):\n", p);
  for (const DerivedQuantity& d : derived.quantities) {
    out += fmt::format("//   {} = {:.6g} {}: {}\n", d.name, d.value, d.unit, d.formula);
  }
  if (!derived.unreachable.empty()) out += "//   no write current: " + derived.unreachable + "\n";
  return out;
}

}  // namespace spinbayes
