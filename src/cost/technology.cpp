#include "cost/technology.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "hw/mtj.h"

namespace spinbayes {

const char* name_of(ResetPolicy r) { return r == ResetPolicy::conditional ? "conditional" : "always"; }

double ModuleTech::trim_dac_area_um2() const {
  // A binary-weighted current DAC: 2^bits - 1 unit sources.
  return trim_dac_bits > 0 ? (std::ldexp(1.0, trim_dac_bits) - 1.0) * trim_dac_unit_area_um2 : 0.0;
}

double mean_cell_conductance_s(const HardwareConfig& hw) {
  // The cell: MTJ and access transistor in series (the supply's energy, both dissipations), at
  // the operating temperature.
  const double v = hw.crossbar.read_voltage_v, ra = hw.crossbar.access_resistance_ohm;
  const MtjParams mtj = hw.mtj.crossbar_at_temperature();
  return 0.5 * (1.0 / cell_resistance_ohm(mtj, MtjState::parallel, v, ra) +
                1.0 / cell_resistance_ohm(mtj, MtjState::antiparallel, v, ra));
}

DeviceEnergies device_energies(const HardwareConfig& hw, double p, double read_v, double read_ns) {
  const MtjParams mtj = hw.mtj.crossbar_at_temperature();
  const double ra = hw.crossbar.access_resistance_ohm;
  const DropoutModuleParams& dm = hw.dropout_module;
  DeviceEnergies d;
  d.r_p_ohm = mtj.rp_ohm();
  // The write: the nominal module's current for p (as hw prints it), set at the reference
  // temperature, or at the operating one under per_temperature compensation (as the modules set
  // it: DropoutBank); past the thermal-activation regime the current is Ic0's, the most a
  // sub-critical write can draw. A p below what the device does with no current at all has no
  // write to price (hw says so too).
  const bool compensated = dm.temperature_compensation == TemperatureCompensation::per_temperature;
  const MtjSwitching nominal = nominal_switching(hw.mtj, /*at_reference=*/!compensated);
  try {
    d.write_current_ua = write_current_for(nominal, p, dm.pulse_width_ns);
  } catch (const Error&) {
    if (p <= switching_probability(nominal, 0.0, dm.pulse_width_ns)) throw;  // write_current_for's floor
    d.write_current_ua = hw.mtj.ic0_ua;
  }
  d.write_mtj_fj = std::pow(d.write_current_ua * 1e-6, 2) * d.r_p_ohm * dm.pulse_width_ns * 1e-9 * 1e15;
  // The reset: a fraction p of the modules is in AP, whose resistance at the reset's bias solves
  // V = I R_AP(V) (TMR falls with bias); the others stay in P. I^2 R t, weighted by state.
  d.reset_current_ua = dm.reset_current_ua;
  double v = d.reset_current_ua * 1e-6 * d.r_p_ohm;
  for (int i = 0; i < 60; ++i) v = d.reset_current_ua * 1e-6 * resistance_ohm(mtj, MtjState::antiparallel, v);
  d.r_ap_reset_ohm = resistance_ohm(mtj, MtjState::antiparallel, v);
  d.reset_mtj_fj = std::pow(d.reset_current_ua * 1e-6, 2) * ((1.0 - p) * d.r_p_ohm + p * d.r_ap_reset_ohm) *
                   dm.reset_pulse_ns * 1e-9 * 1e15;
  // A module read after its write: P with odds 1 - p, AP with p, through the access transistor.
  const double rp_cell = cell_resistance_ohm(mtj, MtjState::parallel, read_v, ra);
  const double rap_cell = cell_resistance_ohm(mtj, MtjState::antiparallel, read_v, ra);
  d.r_ap_read_ohm = rap_cell - ra;
  const double ip = read_v / rp_cell, iap = read_v / rap_cell;  // A
  d.read_p_current_ua = ip * 1e6;
  d.read_ap_current_ua = iap * 1e6;
  d.read_current_ua = ((1.0 - p) * ip + p * iap) * 1e6;
  d.read_mtj_fj = ((1.0 - p) * ip * ip * d.r_p_ohm + p * iap * iap * d.r_ap_read_ohm) * read_ns * 1e-9 * 1e15;
  d.cell_conductance_s = 0.5 * (1.0 / rp_cell + 1.0 / rap_cell);
  return d;
}

namespace {

// Every entry that follows from the hardware config, p and the other entries, unless `given`
// (keys a technology file set) holds it.
void derive(Technology& t, const HardwareConfig& hw, double p, const std::set<std::string>& given) {
  const auto set = [&given](const char* key, double& value, double derived) {
    if (given.count(key) == 0) value = derived;
  };
  const double vdd = t.supply.vdd_v;
  set("module.write_ns", t.module.write_ns, hw.dropout_module.pulse_width_ns);
  set("module.reset_ns", t.module.reset_ns, hw.dropout_module.reset_pulse_ns);
  if (given.count("module.trim_dac_bits") == 0) {
    // The config's trim DAC where it sets one; a per-chip current needs none per module.
    if (hw.dropout_module.write_current == WriteCurrent::per_chip) {
      t.module.trim_dac_bits = 0;
    } else if (hw.dropout_module.trim_dac_bits > 0) {
      t.module.trim_dac_bits = hw.dropout_module.trim_dac_bits;
    }
  }
  const double v_read = hw.crossbar.read_voltage_v;
  const DeviceEnergies d = device_energies(hw, p, v_read, t.module.read_ns);
  set("module.write_current_ua", t.module.write_current_ua, d.write_current_ua);
  set("module.reset_current_ua", t.module.reset_current_ua, d.reset_current_ua);
  set("module.read_p_current_ua", t.module.read_p_current_ua, d.read_p_current_ua);
  set("module.read_ap_current_ua", t.module.read_ap_current_ua, d.read_ap_current_ua);
  set("module.read_current_ua", t.module.read_current_ua,
      (1.0 - p) * t.module.read_p_current_ua + p * t.module.read_ap_current_ua);
  set("module.write_mtj_fj", t.module.write_mtj_fj, d.write_mtj_fj);
  set("module.reset_mtj_fj", t.module.reset_mtj_fj, d.reset_mtj_fj);
  set("module.read_mtj_fj", t.module.read_mtj_fj, d.read_mtj_fj);
  set("sense.decision_fj", t.sense.decision_fj, t.sense.capacitance_ff * vdd * vdd);  // fF V^2 = fJ
  // V_DD [V] x I [uA] x t [ns] = fJ; pJ = 1e-3 fJ.
  set("module.write_pj", t.module.write_pj, vdd * t.module.write_current_ua * t.module.write_ns * 1e-3);
  set("module.reset_pj", t.module.reset_pj, vdd * t.module.reset_current_ua * t.module.reset_ns * 1e-3);
  // A file that prices the read (its energy or current) but neither state prices every read alike.
  const bool by_state = given.count("module.read_p_fj") + given.count("module.read_ap_fj") +
                            given.count("module.read_p_current_ua") + given.count("module.read_ap_current_ua") > 0 ||
                        given.count("module.read_fj") + given.count("module.read_current_ua") == 0;
  if (by_state) {
    set("module.read_p_fj", t.module.read_p_fj, vdd * t.module.read_p_current_ua * t.module.read_ns + t.sense.decision_fj);
    set("module.read_ap_fj", t.module.read_ap_fj,
        vdd * t.module.read_ap_current_ua * t.module.read_ns + t.sense.decision_fj);
    // Always their mean, even where the file gives read_fj too: one read price, never two.
    // (1 - p) read_p + p read_ap, written so that equal states give exactly their value.
    t.module.read_fj = t.module.read_p_fj + p * (t.module.read_ap_fj - t.module.read_p_fj);
  } else {
    set("module.read_fj", t.module.read_fj, vdd * t.module.read_current_ua * t.module.read_ns + t.sense.decision_fj);
    t.module.read_p_fj = t.module.read_ap_fj = t.module.read_fj;
    t.module.read_p_current_ua = t.module.read_ap_current_ua = t.module.read_current_ua;
  }
  set("module.trim_dac_fj", t.module.trim_dac_fj,
      t.module.trim_dac_bits > 0
          ? vdd * t.module.trim_dac_bias_fraction * t.module.write_current_ua * t.module.write_ns
          : 0.0);
  const double g = d.cell_conductance_s;
  set("crossbar.cell_read_fj", t.crossbar.cell_read_fj, vdd * v_read * g * t.crossbar.cell_read_ns * 1e6);
  set("crossbar.cell_read_mtj_fj", t.crossbar.cell_read_mtj_fj, v_read * v_read * g * t.crossbar.cell_read_ns * 1e6);
  set("crossbar.wordline_fj", t.crossbar.wordline_fj, t.crossbar.wordline_capacitance_ff * vdd * vdd);
  set("decoder.fj", t.decoder.fj, t.decoder.capacitance_ff * vdd * vdd);
  set("wire.row_pitch_um", t.wire.row_pitch_um, std::sqrt(t.crossbar.cell_area_um2));
  set("wire.tile_route_um", t.wire.tile_route_um, hw.crossbar.tile_cols * t.wire.row_pitch_um);
  t.p = p;
}

// The keys a technology file sets, dotted ("module.write_pj"), whether nested or dotted there.
std::set<std::string> keys_in(const std::string& path) {
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::set<std::string> keys;
  try {
    const nlohmann::json flat = nlohmann::json::parse(text, nullptr, true, true).flatten();
    for (const auto& item : flat.items()) {
      if (item.key().empty()) continue;  // an empty object flattens to the root pointer ""
      std::string key = item.key().substr(1);
      for (char& c : key) c = c == '/' ? '.' : c;
      keys.insert(key);
    }
  } catch (const nlohmann::json::exception&) {
    // The table's own parse reports the error with its file and position.
  }
  return keys;
}

}  // namespace

Technology Technology::defaults(const HardwareConfig& hw, double p) {
  Technology t;
  derive(t, hw, p, {});
  return t;
}

ConfigTable Technology::table() {
  ConfigTable t;
  const double e_max = 1e6, t_max = 1e6, a_max = 1e9, c_max = 1e6;
  t.number("supply.vdd_v", supply.vdd_v, 0.3, 3.3, "V",
           "core supply of the drivers, sense amplifiers and logic: 0.9 V at 45 nm (Horowitz, ISSCC 2014, whose "
           "energies the digital unit uses); 40-45 nm low-power logic runs at 0.9-1.1 V");
  t.number("module.reset_pj", module.reset_pj, 0, e_max, "pJ per reset",
           "supply-referred: V_DD x module.reset_current_ua x module.reset_ns");
  t.number("module.write_pj", module.write_pj, 0, e_max, "pJ per stochastic write",
           "supply-referred: V_DD x module.write_current_ua x module.write_ns");
  t.number("module.read_fj", module.read_fj, 0, e_max, "fJ per read, sense amplifier included",
           "supply-referred, the mean read at p: (1 - p) module.read_p_fj + p module.read_ap_fj = V_DD x "
           "module.read_current_ua x module.read_ns + sense.decision_fj (recomputed from the states whenever the file "
           "gives either state: edit read_p_fj and read_ap_fj)");
  t.number("module.read_p_fj", module.read_p_fj, 0, e_max, "fJ per read of a module in P",
           "V_DD x module.read_p_current_ua x module.read_ns + sense.decision_fj (reads are priced by the state "
           "they find; a file that sets module.read_fj or read_current_ua and neither state prices both at read_fj)");
  t.number("module.read_ap_fj", module.read_ap_fj, 0, e_max, "fJ per read of a module in AP",
           "V_DD x module.read_ap_current_ua x module.read_ns + sense.decision_fj");
  t.number("module.reset_mtj_fj", module.reset_mtj_fj, 0, e_max, "fJ per reset",
           "the MTJ's part of a reset: I^2 ((1 - p) R_P + p R_AP(V)) t, R_AP at the reset's bias V = I R_AP(V) "
           "(a part of module.reset_pj, not added to it)");
  t.number("module.write_mtj_fj", module.write_mtj_fj, 0, e_max, "fJ per stochastic write",
           "the MTJ's part of a write: I^2 R_P t (hw's write_mtj_energy_fj; a part of module.write_pj)");
  t.number("module.read_mtj_fj", module.read_mtj_fj, 0, e_max, "fJ per read",
           "the MTJ's part of a read: V^2 G t with G = 1/R_P for the 1 - p modules in P and 1/R_AP(V) for the p in "
           "AP, V the MTJ's share of crossbar.read_voltage_v (a part of module.read_fj)");
  t.number("module.write_current_ua", module.write_current_ua, 0, 1e4, "uA",
           "the nominal module's write current for p in dropout_module.pulse_width_ns (hw's write_current_ua; "
           "write_current_at_temperature_ua under per_temperature compensation)");
  t.number("module.reset_current_ua", module.reset_current_ua, 0, 1e4, "uA", "dropout_module.reset_current_ua");
  t.number("module.read_current_ua", module.read_current_ua, 0, 1e4, "uA",
           "the mean read current at p: (1 - p) module.read_p_current_ua + p module.read_ap_current_ua");
  t.number("module.read_p_current_ua", module.read_p_current_ua, 0, 1e4, "uA",
           "a module read in P: crossbar.read_voltage_v / (R_P + R_access)");
  t.number("module.read_ap_current_ua", module.read_ap_current_ua, 0, 1e4, "uA",
           "a module read in AP: crossbar.read_voltage_v / (R_AP(V) + R_access), R_AP at the MTJ's share of the read "
           "voltage");
  t.number("module.reset_ns", module.reset_ns, 0, t_max, "ns",
           "the reset pulse: dropout_module.reset_pulse_ns of the hardware config (hw prints its regime, switching "
           "time and error rate)");
  t.number("module.write_ns", module.write_ns, 0, t_max, "ns",
           "the stochastic write pulse: dropout_module.pulse_width_ns of the hardware config");
  t.number("module.read_ns", module.read_ns, 0, t_max, "ns", "MTJ read with a pre-charge sense amplifier: ~1 ns");
  t.choice("module.reset", module.reset, {"always", "conditional"},
           "always: every module reset to P before its write; conditional: read first and reset only the modules "
           "in AP (fraction p), one extra read per write cycle");
  t.number("module.area_um2", module.area_um2, 0, a_max, "um^2 per module",
           "1T-1MTJ (40 F^2, F = 40 nm: 0.064 um^2) + sense amplifier (~1 um^2, ~10 transistors at 40 nm)");
  t.number("module.driver_area_um2", module.driver_area_um2, 0, a_max, "um^2 per module",
           "reset/write current driver: a current source sized for 90 uA (~0.2 um wide at ~500 uA/um) with its "
           "selection switches, ~1 um^2 at 40 nm");
  t.integer("module.trim_dac_bits", module.trim_dac_bits, 0, 16, "bits",
            "the module's write-current trim DAC: dropout_module.trim_dac_bits of the hardware config, 6 for a "
            "continuous per_module trim (4-8 bit trims in MRAM write drivers), 0 for a per_chip current");
  t.number("module.trim_dac_unit_area_um2", module.trim_dac_unit_area_um2, 0, a_max, "um^2 per unit source",
           "a unit current source with its switch, ~30 F^2 at F = 40 nm");
  t.number("module.trim_dac_bias_fraction", module.trim_dac_bias_fraction, 0, 1, "share of the write current",
           "the reference branch of a 1:8 current mirror conducts I_w / 8 while the driver writes");
  t.number("module.trim_dac_fj", module.trim_dac_fj, 0, e_max, "fJ per write",
           "V_DD x module.trim_dac_bias_fraction x module.write_current_ua x module.write_ns (0 without a DAC)");
  t.number("crossbar.cell_read_fj", crossbar.cell_read_fj, 0, e_max, "fJ per driven cell",
           "supply-referred: V_DD x V_read G t_read, G = (1/R_P + 1/R_AP(V)) / 2 from the hardware config (the read "
           "bias is regulated down from V_DD, which delivers the cell's current)");
  t.number("crossbar.cell_read_mtj_fj", crossbar.cell_read_mtj_fj, 0, e_max, "fJ per driven cell",
           "the MTJs' part: V_read^2 G t_read (a part of crossbar.cell_read_fj)");
  t.number("crossbar.wordline_capacitance_ff", crossbar.wordline_capacitance_ff, 0, c_max, "fF per tile",
           "128 access-transistor gates (~0.1 fF each) + ~50 um of wire (~0.2 fF/um) ~ 20 fF");
  t.number("crossbar.wordline_fj", crossbar.wordline_fj, 0, e_max, "fJ per word line driven in one tile",
           "C V_DD^2 with crossbar.wordline_capacitance_ff");
  t.number("crossbar.cell_read_ns", crossbar.cell_read_ns, 0, t_max, "ns", "column current settling, ~1 ns");
  t.number("crossbar.wordline_ns", crossbar.wordline_ns, 0, t_max, "ns", "RC of a 128-cell word line, < 1 ns");
  t.number("crossbar.cell_area_um2", crossbar.cell_area_um2, 0, a_max, "um^2 per 2T-2MTJ cell",
           "two 1T-1MTJ cells of 40 F^2 at F = 40 nm (STT-MRAM cells are 30-50 F^2)");
  t.number("sense.capacitance_ff", sense.capacitance_ff, 0, c_max, "fF switched per decision",
           "a pre-charge sense amplifier switches a few fF (Zhao et al., IEEE Trans. Magn. 45, 3784 (2009))");
  t.number("sense.decision_fj", sense.decision_fj, 0, e_max, "fJ per decision", "C V_DD^2 with sense.capacitance_ff");
  t.number("sense.decision_ns", sense.decision_ns, 0, t_max, "ns", "pre-charge sense amplifier, ~1 ns");
  t.number("sense.area_um2", sense.area_um2, 0, a_max, "um^2 per sense amplifier", "~10 transistors at 40 nm");
  t.number("adc.conversion_pj", adc.conversion_pj, 0, e_max, "pJ per conversion",
           "supply energy as published: 8-bit SAR ADC at 1.28 GS/s, 2 mW: 1.56 pJ (ISAAC, Shafiee et al., ISCA 2016, "
           "after Kull et al., ISSCC 2013, 32 nm SOI at ~1 V); not rescaled to V_DD");
  t.number("adc.conversion_ns", adc.conversion_ns, 0, t_max, "ns", "1 / 1.28 GS/s (ISAAC, ISCA 2016)");
  t.number("adc.area_um2", adc.area_um2, 0, a_max, "um^2 per ADC", "0.0012 mm^2 per 8-bit ADC (ISAAC, ISCA 2016)");
  t.integer("adc.columns_per_adc", adc.columns_per_adc, 1, 65536, "columns",
            "one ADC time-multiplexed over a 128-column crossbar (ISAAC, ISCA 2016)");
  t.number("digital.accumulate_pj", digital.accumulate_pj, 0, e_max, "pJ per partial-sum addition",
           "supply energy: 32-bit integer add at 45 nm, 0.9 V: 0.1 pJ (Horowitz, ISSCC 2014)");
  t.number("digital.accumulate_ns", digital.accumulate_ns, 0, t_max, "ns", "one cycle at 1 GHz");
  t.number("digital.mac_pj", digital.mac_pj, 0, e_max, "pJ per MAC",
           "a real pixel times a +-1 weight is a signed add: 32-bit add 0.1 pJ (Horowitz, ISSCC 2014)");
  t.number("digital.mac_ns", digital.mac_ns, 0, t_max, "ns per cycle of the digital unit", "1 GHz");
  t.integer("digital.mac_lanes", digital.mac_lanes, 1, 65536, "MACs per cycle", "a 64-lane SIMD adder array");
  t.number("decoder.capacitance_ff", decoder.capacitance_ff, 0, c_max, "fF per word-line drive",
           "the decoder's final NAND/inverter stage of the driven line and its share of the predecoder wires, ~2 fF "
           "at 40 nm (NeuroSim's and NVSim's row decoders are built of these gates)");
  t.number("decoder.fj", decoder.fj, 0, e_max, "fJ per word-line drive", "C V_DD^2 with decoder.capacitance_ff");
  t.number("decoder.area_um2", decoder.area_um2, 0, a_max, "um^2 per tile",
           "a 7-to-128 row decoder: 128 final gates of ~0.25 um^2 and two predecoders at 40 nm");
  t.number("wire.capacitance_ff_per_um", wire.capacitance_ff_per_um, 0, c_max, "fF per um",
           "intermediate metal, ~0.2 fF/um at 40-65 nm (ITRS interconnect tables)");
  t.number("wire.gate_ff", wire.gate_ff, 0, c_max, "fF per gated word line",
           "the enable input of one word-line driver, ~0.1 fF");
  t.number("wire.row_pitch_um", wire.row_pitch_um, 0, 1e3, "um", "sqrt(crossbar.cell_area_um2): a cell's pitch");
  t.number("wire.tile_route_um", wire.tile_route_um, 0, 1e6, "um per tile reached",
           "a run across one tile to its word-line drivers: crossbar tile_cols x wire.row_pitch_um");
  t.number("wire.track_pitch_um", wire.track_pitch_um, 0, 1e3, "um",
           "one intermediate-metal routing track at 40 nm (~0.14 um); the wires' area is tracks x length");
  return t;
}

Technology Technology::load(const std::string& source, const HardwareConfig& hw, double p) {
  Technology tech = defaults(hw, p);
  if (source.empty()) throw Error("--tech: empty (default or a technology file)");
  if (source == "default") return tech;
  std::error_code error;
  const bool exists = std::filesystem::exists(source, error);
  if (error) throw Error("--tech: " + printable_head(source) + ": " + error.message());
  if (!exists) throw Error("--tech: '" + printable_head(source) + "' is neither 'default' nor an existing file");
  ConfigTable table = tech.table();
  table.apply_file(source);
  derive(tech, hw, p, keys_in(source));
  tech.table().check(source);
  return tech;
}

}  // namespace spinbayes
