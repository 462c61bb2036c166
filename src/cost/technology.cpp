#include "cost/technology.h"

#include <filesystem>

#include "core/error.h"
#include "hw/mtj.h"

namespace spinbayes {

double mean_cell_conductance_s(const HardwareConfig& hw) {
  // The cell: MTJ and access transistor in series (the supply's energy, both dissipations), at
  // the operating temperature.
  const double v = hw.crossbar.read_voltage_v, ra = hw.crossbar.access_resistance_ohm;
  const MtjParams mtj = hw.mtj.crossbar_at_temperature();
  return 0.5 * (1.0 / cell_resistance_ohm(mtj, MtjState::parallel, v, ra) +
                1.0 / cell_resistance_ohm(mtj, MtjState::antiparallel, v, ra));
}

Technology Technology::defaults(const HardwareConfig& hw) {
  Technology t;
  // E = V_read^2 * G * t_read: 0.1 V, G ~ 1.8e-4 S (R_P ~ 4 kOhm, R_AP ~ 9.7 kOhm), 1 ns -> 1.8 fJ.
  const double v2g = hw.crossbar.read_voltage_v * hw.crossbar.read_voltage_v * mean_cell_conductance_s(hw);
  t.crossbar.cell_read_fj = v2g * t.crossbar.cell_read_ns * 1e-9 * 1e15;
  // A module read is one MTJ read plus its sense-amplifier decision.
  t.module.read_fj = v2g * t.module.read_ns * 1e-9 * 1e15 + t.sense.decision_fj;
  t.module.write_ns = hw.dropout_module.pulse_width_ns;
  t.module.reset_ns = hw.dropout_module.reset_pulse_ns;
  return t;
}

ConfigTable Technology::table() {
  ConfigTable t;
  const double e_max = 1e6, t_max = 1e6, a_max = 1e9;
  t.number("module.reset_pj", module.reset_pj, 0, e_max, "pJ per reset",
           "super-critical pulse 2 Ic0 = 90 uA for 2 ns across MTJ + access transistor (~0.5 V): 0.09 pJ; "
           "STT writes cost 0.1-1 pJ per event");
  t.number("module.write_pj", module.write_pj, 0, e_max, "pJ per stochastic write",
           "sub-critical pulse (~0.9 Ic0 = 41 uA for p = 0.1) for 5 ns at ~0.5 V: 0.1 pJ, the low end of "
           "0.1-1 pJ per STT write; 10-20x a read");
  t.number("module.read_fj", module.read_fj, 0, e_max, "fJ per read, sense amplifier included",
           "V_read^2 G t_read (1.8 fJ at 0.1 V, 1 ns) + one sense decision (5 fJ); MTJ reads cost 1-10 fJ");
  t.number("module.reset_ns", module.reset_ns, 0, t_max, "ns",
           "the reset pulse: dropout_module.reset_pulse_ns of the hardware config (hw prints its regime, switching "
           "time and error rate)");
  t.number("module.write_ns", module.write_ns, 0, t_max, "ns",
           "the stochastic write pulse: dropout_module.pulse_width_ns of the hardware config");
  t.number("module.read_ns", module.read_ns, 0, t_max, "ns", "MTJ read with a pre-charge sense amplifier: ~1 ns");
  t.number("module.area_um2", module.area_um2, 0, a_max, "um^2 per module",
           "1T-1MTJ (40 F^2, F = 40 nm: 0.064 um^2) + reset/write drivers (~1 um^2) + sense amplifier (~1 um^2)");
  t.number("crossbar.cell_read_fj", crossbar.cell_read_fj, 0, e_max, "fJ per driven cell",
           "V_read^2 G t_read, G = (1/R_P + 1/R_AP(V)) / 2 from the hardware config: 1.8 fJ at 0.1 V, 1 ns");
  t.number("crossbar.wordline_fj", crossbar.wordline_fj, 0, e_max, "fJ per word line driven in one tile",
           "C V_dd^2: 128 access-transistor gates (~0.1 fF each) + ~50 um of wire (~0.2 fF/um) ~ 20 fF at 1 V");
  t.number("crossbar.cell_read_ns", crossbar.cell_read_ns, 0, t_max, "ns", "column current settling, ~1 ns");
  t.number("crossbar.wordline_ns", crossbar.wordline_ns, 0, t_max, "ns", "RC of a 128-cell word line, < 1 ns");
  t.number("crossbar.cell_area_um2", crossbar.cell_area_um2, 0, a_max, "um^2 per 2T-2MTJ cell",
           "two 1T-1MTJ cells of 40 F^2 at F = 40 nm (STT-MRAM cells are 30-50 F^2)");
  t.number("sense.decision_fj", sense.decision_fj, 0, e_max, "fJ per decision",
           "a few fJ: pre-charge sense amplifier (Zhao et al., IEEE Trans. Magn. 45, 3784 (2009))");
  t.number("sense.decision_ns", sense.decision_ns, 0, t_max, "ns", "pre-charge sense amplifier, ~1 ns");
  t.number("sense.area_um2", sense.area_um2, 0, a_max, "um^2 per sense amplifier", "~10 transistors at 40 nm");
  t.number("adc.conversion_pj", adc.conversion_pj, 0, e_max, "pJ per conversion",
           "8-bit SAR ADC at 1.28 GS/s, 2 mW: 1.56 pJ (ISAAC, Shafiee et al., ISCA 2016)");
  t.number("adc.conversion_ns", adc.conversion_ns, 0, t_max, "ns", "1 / 1.28 GS/s (ISAAC, ISCA 2016)");
  t.number("adc.area_um2", adc.area_um2, 0, a_max, "um^2 per ADC", "0.0012 mm^2 per 8-bit ADC (ISAAC, ISCA 2016)");
  t.integer("adc.columns_per_adc", adc.columns_per_adc, 1, 65536, "columns",
            "one ADC time-multiplexed over a 128-column crossbar (ISAAC, ISCA 2016)");
  t.number("digital.accumulate_pj", digital.accumulate_pj, 0, e_max, "pJ per partial-sum addition",
           "32-bit integer add at 45 nm: 0.1 pJ (Horowitz, ISSCC 2014)");
  t.number("digital.accumulate_ns", digital.accumulate_ns, 0, t_max, "ns", "one cycle at 1 GHz");
  t.number("digital.mac_pj", digital.mac_pj, 0, e_max, "pJ per MAC",
           "a real pixel times a +-1 weight is a signed add: 32-bit add 0.1 pJ (Horowitz, ISSCC 2014)");
  t.number("digital.mac_ns", digital.mac_ns, 0, t_max, "ns per cycle of the digital unit", "1 GHz");
  t.integer("digital.mac_lanes", digital.mac_lanes, 1, 65536, "MACs per cycle", "a 64-lane SIMD adder array");
  return t;
}

Technology Technology::load(const std::string& source, const HardwareConfig& hw) {
  Technology tech = defaults(hw);
  if (source == "default" || source.empty()) return tech;
  if (!std::filesystem::exists(source)) {
    throw Error("--tech: '" + source + "' is neither 'default' nor an existing file");
  }
  ConfigTable table = tech.table();
  table.apply_file(source);
  table.check(source);
  return tech;
}

}  // namespace spinbayes
