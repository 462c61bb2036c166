#include "hw/hardware_config.h"

#include <cmath>
#include <filesystem>
#include <numbers>

#include <fmt/format.h>

#include "core/error.h"
#include "hw/adc.h"
#include "hw/ir_drop.h"

namespace spinbayes {

double MtjParams::area_um2() const {
  const double r_um = diameter_nm * 1e-3 / 2.0;
  return std::numbers::pi * r_um * r_um;
}

double MtjParams::rp_ohm() const { return ra_ohm_um2 / area_um2(); }

MtjParams MtjParams::crossbar_at_temperature() const {
  MtjParams at = *this;
  at.ra_ohm_um2 *= ra_temperature_factor();
  at.tmr *= tmr_temperature_factor();
  at.reference_temperature_k = temperature_k;
  return at;
}

namespace {
// The words of the choices, in the order of their enums.
const std::vector<std::string> kWriteCurrents = {"per_chip", "per_module"};
const std::vector<std::string> kElementMasks = {"per_window", "per_element"};
const std::vector<std::string> kCompensations = {"none", "per_temperature"};
const std::vector<std::string> kCalibrations = {"none", "gain_offset"};
const std::vector<std::string> kResetErrors = {"applied", "none"};
}  // namespace

const char* name_of(WriteCurrent w) { return kWriteCurrents[static_cast<std::size_t>(w)].c_str(); }
const char* name_of(ElementMasks e) { return kElementMasks[static_cast<std::size_t>(e)].c_str(); }
const char* name_of(TemperatureCompensation c) { return kCompensations[static_cast<std::size_t>(c)].c_str(); }
const char* name_of(ColumnCalibration c) { return kCalibrations[static_cast<std::size_t>(c)].c_str(); }
const char* name_of(ResetErrors r) { return kResetErrors[static_cast<std::size_t>(r)].c_str(); }

HardwareConfig HardwareConfig::defaults() { return HardwareConfig{}; }

HardwareConfig HardwareConfig::wired() { return defaults(); }

HardwareConfig HardwareConfig::unwired() {
  HardwareConfig hw;
  hw.crossbar.access_resistance_ohm = 0.0;
  hw.crossbar.wire_resistance_ohm = 0.0;
  hw.crossbar.tile_rows = 128;
  hw.crossbar.tile_cols = 128;
  hw.crossbar.column_calibration = ColumnCalibration::none;
  hw.dropout_module.trim_dac_bits = 0;
  return hw;
}

namespace {
const char* const kPresetNames = "default, wired, unwired, ideal";
}  // namespace

void HardwareConfig::require_source(const std::string& source, const std::string& option) {
  if (source.empty()) throw Error(fmt::format("{}: empty ({} or a config file)", option, kPresetNames));
}

bool HardwareConfig::is_preset(const std::string& name) {
  return name == "default" || name == "wired" || name == "unwired" || name == "ideal";
}

HardwareConfig HardwareConfig::ideal() {
  HardwareConfig hw = unwired();
  hw.mtj.sigma_rp = hw.mtj.sigma_tmr = hw.mtj.sigma_delta = hw.mtj.sigma_ic0 = 0.0;
  hw.crossbar.sense_offset_sigma_ua = 0.0;
  hw.crossbar.sense_offset_relative = 0.0;
  hw.crossbar.access_resistance_ohm = 0.0;
  hw.crossbar.wire_resistance_ohm = 0.0;
  hw.crossbar.reference_error_relative = 0.0;
  hw.crossbar.column_calibration = ColumnCalibration::none;
  hw.crossbar.adc_bits = 16;  // exact for any tile height up to 32767 rows
  hw.dropout_module.element_masks = ElementMasks::per_element;
  hw.dropout_module.reset_errors = ResetErrors::none;
  hw.faults = FaultParams{};
  return hw;
}

ConfigTable HardwareConfig::table() {
  ConfigTable t;
  const std::string ikeda = "Ikeda et al., Nature Mater. 9, 721 (2010): CoFeB-MgO p-MTJ, 40 nm";
  t.number("mtj.diameter_nm", mtj.diameter_nm, 5, 500, "nm", ikeda);
  t.number("mtj.ra_ohm_um2", mtj.ra_ohm_um2, 0.1, 1000, "Ohm um^2", "RA ~ 5 Ohm um^2 gives R_P ~ 4 kOhm at 40 nm");
  t.number("mtj.tmr", mtj.tmr, 0.01, 10, "ratio", "TMR ~ 124-150 % (Ikeda et al. 2010)");
  t.number("mtj.tmr_half_bias_v", mtj.tmr_half_bias_v, 0.01, 10, "V",
           "TMR(V) = TMR / (1 + V^2 / V_h^2), V_h = 0.5 V (Zhao et al., compact STT-MTJ model, 2006)");
  t.number("mtj.delta", mtj.delta, 1, 200, "kT", "Delta = 40-60 for 40 nm p-MTJs (Ikeda et al. 2010)");
  t.number("mtj.ic0_ua", mtj.ic0_ua, 0.1, 10000, "uA", "Ic0 = 30-60 uA at 40 nm (Ikeda et al. 2010: 49 uA)");
  t.number("mtj.tau0_ns", mtj.tau0_ns, 1e-3, 1e3, "ns", "attempt time ~ 1 ns (Neel-Brown thermal activation)");
  t.number("mtj.switching_exponent", mtj.switching_exponent, 1, 2, "exponent",
           "n in tau = tau0 exp(Delta (1 - I/Ic0)^n): 1 as fitted to in-plane and early MgO junctions (Koch et al., PRL "
           "92, 088302, 2004); 2 for a perpendicular macrospin (Butler et al., IEEE Trans. Magn. 48, 4684, 2012)");
  t.number("mtj.precession_time_ns", mtj.precession_time_ns, 0.01, 100, "ns",
           "tau_D = (1 + alpha^2) / (alpha gamma mu0 H_k) of the precessional regime (Sun, PRB 62, 570, 2000): 1.9 ns "
           "for alpha = 0.016 (W/CoFeB/MgO, Lu et al., arXiv:1709.07483) and mu0 H_k = 2 Delta kT / (Ms V) = 0.19 T "
           "(Delta = 45, Ms = 1.2 MA/m, a 40 nm x 1.3 nm free layer)");
  t.number("mtj.temperature_k", mtj.temperature_k, 200, 500, "K",
           "operating temperature; Delta = E_b / kT, and Ic0, E_b, TMR and RA follow their temperature coefficients");
  t.number("mtj.reference_temperature_k", mtj.reference_temperature_k, 200, 500, "K",
           "temperature at which the mtj values are given and write currents are calibrated");
  t.number("mtj.ic0_temp_coeff_per_k", mtj.ic0_temp_coeff_per_k, 0, 0.005, "1/K",
           "relative fall of Ic0 per K above the reference: Ic0 falls with the perpendicular anisotropy (Takeuchi et "
           "al., Appl. Phys. Lett. 119, 2021, doi:10.1063/5.0072957); 0.1 %/K is Bloch's Ms(T) = Ms(0) (1 - "
           "(T/Tc)^1.5) at 300 K for Tc ~ 1000 K, a lower bound since Hk falls too");
  t.number("mtj.barrier_temp_coeff_per_k", mtj.barrier_temp_coeff_per_k, 0, 0.005, "1/K",
           "relative fall of the barrier E_b = Ms Hk V / 2 per K, on top of Delta = E_b / kT; 0.1 %/K from Bloch's "
           "Ms(T) as for ic0_temp_coeff_per_k (Hk's own fall makes it larger)");
  t.number("mtj.tmr_temp_coeff_per_k", mtj.tmr_temp_coeff_per_k, 0, 0.005, "1/K",
           "relative fall of TMR per K: 0.1-0.16 %/K from CoFeB/MgO and Fe/MgO junctions (Yuasa et al., Nature "
           "Mater. 3, 868, 2004: 180 % at 293 K, 247 % at 20 K; Ikeda et al., APL 93, 082508, 2008: 604 % at 300 K, "
           "1144 % at 5 K)");
  t.number("mtj.ra_temp_coeff_per_k", mtj.ra_temp_coeff_per_k, -0.005, 0.005, "1/K",
           "relative change of RA (R_P) per K: R_P of MgO junctions is nearly temperature independent (Ma et al., "
           "'Temperature dependence of resistance in epitaxial Fe/MgO/Fe magnetic tunnel junctions'); 0");
  t.number("mtj.sigma_rp", mtj.sigma_rp, 0, 0.5, "relative", "R_P device-to-device spread, 2-5 % in MRAM arrays");
  t.number("mtj.sigma_tmr", mtj.sigma_tmr, 0, 0.5, "relative", "TMR spread, 2-5 % in MRAM arrays");
  t.number("mtj.sigma_delta", mtj.sigma_delta, 0, 0.5, "relative", "Delta spread from size/anisotropy variation");
  t.number("mtj.sigma_ic0", mtj.sigma_ic0, 0, 0.5, "relative", "Ic0 spread from size variation");
  t.number("mtj.delta_ic0_correlation", mtj.delta_ic0_correlation, -1, 1, "correlation",
           "of a module's Delta and Ic0 deviations: a macrospin's Ic0 ~ (alpha / eta) E_b (Khvalkovskiy et al., J. "
           "Phys. D 46, 074001, 2013), so volume and anisotropy variation move both; 0 = independent");
  t.integer("crossbar.tile_rows", crossbar.tile_rows, 64, 65536, "rows, multiple of 64",
            "64: the shortest bit lines the simulator's 64-row words allow, against the IR drop of the wires; "
            "128 in the unwired preset, as NeuroSim's default 128 x 128 subarrays (Peng et al., IEDM 2019)");
  t.integer("crossbar.tile_cols", crossbar.tile_cols, 1, 65536, "columns",
            "32: read lines short enough for the default's wires (calibrated 128 x 128 tiles of 4 kOhm MTJs fall "
            "to chance at 0.14 Ohm per pitch); 128 in the unwired preset (NeuroSim's 128 x 128 subarrays)");
  t.number("crossbar.read_voltage_v", crossbar.read_voltage_v, 0.01, 1.0, "V",
           "0.1 V read bias keeps read current far below Ic0");
  t.number("crossbar.sense_offset_sigma_ua", crossbar.sense_offset_sigma_ua, 0, 100, "uA",
           "input-referred offset of a current sense amplifier, ~0.5 uA (Na et al., TCAS-II 2014)");
  t.number("crossbar.access_resistance_ohm", crossbar.access_resistance_ohm, 0, 100000, "Ohm",
           "on-resistance of the access transistor in series with each crossbar MTJ; R_on = V / I_on of a "
           "minimum-width NMOS is ~1-3 kOhm at 28-65 nm: 2 kOhm; lowers the ON/OFF ratio and the dot unit; 0 = off "
           "(the unwired preset)");
  t.number("crossbar.sense_offset_relative", crossbar.sense_offset_relative, 0, 0.2, "relative",
           "sigma of the offset's part that scales with the current compared (input-pair mismatch), as a share of "
           "the column's current with every row driven; current mirrors match to 1-2 % (Pelgrom et al., IEEE JSSC "
           "24, 1433, 1989); 0 = off");
  t.number("crossbar.wire_resistance_ohm", crossbar.wire_resistance_ohm, 0, 100, "Ohm per cell pitch",
           "wire resistance between neighbouring cells on the read lines and bit lines (IR drop, solved per tile): "
           "rho pitch / (w t) = 1.75 Ohm for Cu of rho = 3.5 uOhm cm at 60 nm width (size effects: Steinhoegl et "
           "al., J. Appl. Phys. 97, 023706, 2005), a 60 x 120 nm line and a 0.36 um pitch (the square root of "
           "the 0.128 um^2 2T-2MTJ cell), leaves no tile of this simulator within reach; the default 0.14 Ohm is Cu "
           "of 2.5 uOhm cm (the same size effects at 0.18 um) in a 0.18 x 0.36 um intermediate-metal line on that "
           "pitch: 2.5e-8 Ohm m x 0.36 um / (0.18 um x 0.36 um) = 0.139 Ohm; 0 = off (the unwired preset)");
  t.number("crossbar.reference_error_relative", crossbar.reference_error_relative, 0, 0.2, "relative",
           "sigma of each tile's reference current as its read-outs receive it, one error per tile shared by its "
           "columns (the reference column's read bias and the mirror that copies its current to every column): a "
           "column then reads e x its driven rows' reference current off its dot; the mirror's input device is "
           "shared, and current mirrors match to 1-2 % (Pelgrom et al., IEEE JSSC 24, 1433, 1989); 0 = off");
  t.choice("crossbar.column_calibration", crossbar.column_calibration, kCalibrations,
           "none; gain_offset: at test each column's tile is read with two known inputs (every row driven, all "
           "matches and all mismatches) and its gain and offset corrected in the read-out (the sense amplifier's "
           "reference trimmed, or the ADC's partial sum corrected digitally), as chips do for IR drop and "
           "device spread; gain_offset by default, none in the unwired preset");
  // One bit has no level besides zero (codes -K..K with K = (2^bits - 1) / 2 = 0): nothing to divide by.
  t.integer("crossbar.adc_bits", crossbar.adc_bits, 2, 16, "bits", "8-bit ADCs for partial sums (ISAAC, ISCA 2016)");
  t.number("crossbar.screen_sigmas", crossbar.screen_sigmas, 0, 100, "sigmas",
           "decisions further than this from the threshold skip the analog sum; 0 = always analog");
  t.number("dropout_module.pulse_width_ns", dropout_module.pulse_width_ns, 0.01, 1e4, "ns",
           "write pulse of the stochastic write; thermal-activation regime needs t >> tau0");
  t.number("dropout_module.reset_current_ua", dropout_module.reset_current_ua, 0.1, 10000, "uA",
           "reset pulse back to P: 2 Ic0 = 90 uA, a super-critical STT write");
  t.number("dropout_module.reset_pulse_ns", dropout_module.reset_pulse_ns, 0.01, 1e4, "ns",
           "reset pulse width: 18 ns is the shortest whole ns whose error rate at 2 Ic0 is below 1e-6 (6.5e-7 = "
           "Delta (pi/2)^2 exp(-2 (I / Ic0 - 1) t / tau_D), Butler et al., IEEE Trans. Magn. 48, 4684, 2012, "
           "tau_D = precession_time_ns; 2 ns would leave nearly every AP module in AP); the cost model's "
           "module.reset_ns follows it");
  t.choice("dropout_module.reset_errors", dropout_module.reset_errors, kResetErrors,
           "applied: a reset that fails (its error rate WER from the module's own Delta and Ic0 under "
           "reset_current_ua for reset_pulse_ns) leaves the module in AP for the next pass, so a module written "
           "with p drops with p / (1 - (1 - p) WER) in the steady state; none: every pass starts from P (the ideal "
           "preset)");
  t.choice("dropout_module.write_current", dropout_module.write_current, kWriteCurrents,
           "per_module: each module's current trimmed at test to its own Delta and Ic0, at the reference "
           "temperature (a designer must: untrimmed at 3 % Ic0 spread the modules' p spreads over several "
           "times 0.1); per_chip: one current calibrated on the nominal device");
  t.choice("dropout_module.temperature_compensation", dropout_module.temperature_compensation, kCompensations,
           "none: write currents set at reference_temperature_k only; per_temperature: set again for the operating "
           "temperature's Delta(T) and Ic0(T), as an on-die temperature sensor selecting a trim table would (MRAM "
           "write drivers track temperature this way)");
  t.integer("dropout_module.trim_dac_bits", dropout_module.trim_dac_bits, 0, 16, "bits",
            "per_module trim: a current DAC of 2^bits codes over trim_range_ua, each module written with the code "
            "nearest its own current; 4-8 bit trim DACs in MRAM write drivers: 6; 0 = a continuous trim (the "
            "unwired preset)");
  t.number("dropout_module.trim_range_ua", dropout_module.trim_range_ua, 0.01, 1000, "uA",
           "span of the trim DAC, centred on the nominal write current; +-8 uA covers +-4 sigma of 3 % Ic0 spread at "
           "41 uA; modules outside saturate at its ends");
  t.number("dropout_module.write_noise_relative", dropout_module.write_noise_relative, 0, 0.2, "relative",
           "sigma of each write's current (driver thermal and supply noise), independent between writes: p is then "
           "the mean of P_sw over it; 1 % moves p = 0.1 to 0.067 / 0.147 at one sigma");
  t.number("dropout_module.supply_noise_relative", dropout_module.supply_noise_relative, 0, 0.1, "relative",
           "sigma of a pass's write current common to every module of a layer (supply and bias-reference "
           "fluctuation shared by the layer's drivers), drawn per pass and layer: the layer's masks are correlated; "
           "0 = off");
  t.choice("dropout_module.element_masks", dropout_module.element_masks, kElementMasks,
           "element dropout: per_window = a module per crossbar row, fresh bit at every window (SpinDrop); "
           "per_element = one bit per input element, as in training");
  t.number("faults.cell_stuck_p", faults.cell_stuck_p, 0, 0.5, "probability per MTJ", "stuck-at-P crossbar MTJs");
  t.number("faults.cell_stuck_ap", faults.cell_stuck_ap, 0, 0.5, "probability per MTJ", "stuck-at-AP crossbar MTJs");
  t.number("faults.module_stuck_p", faults.module_stuck_p, 0, 0.5, "probability per module",
           "stuck-at-P dropout modules: always keep");
  t.number("faults.module_stuck_ap", faults.module_stuck_ap, 0, 0.5, "probability per module",
           "stuck-at-AP dropout modules: always drop");
  t.number("faults.read_disturb", faults.read_disturb, 0, 0.5, "probability per read",
           "a module read that flips AP -> P (the read current favours P)");
  t.number("faults.module_ic0_drift", faults.module_ic0_drift, -0.5, 0.5, "relative",
           "Ic0 of every module changed after its write current was set (aging, Ic0 ~ barrier and damping)");
  t.number("faults.module_delta_drift", faults.module_delta_drift, -0.5, 0.5, "relative",
           "Delta of every module changed after its write current was set (anisotropy loss)");
  t.number("faults.rp_drift", faults.rp_drift, -0.5, 1.0, "relative",
           "R_P of every crossbar MTJ changed (barrier wear-out raises RA); reference columns alike");
  t.number("faults.tmr_drift", faults.tmr_drift, -0.9, 1.0, "relative",
           "TMR of every crossbar MTJ changed (TMR falls as the MgO barrier degrades); reference columns alike");
  t.number("faults.sense_offset_ua", faults.sense_offset_ua, 0, 100, "uA",
           "extra input-referred offset of random sign on every sense amplifier (input-pair mismatch after aging)");
  t.number("faults.adc_gain_error", faults.adc_gain_error, -0.5, 0.5, "relative",
           "gain error of every partial-sum ADC (reference-ladder or bias drift)");
  t.integer("faults.dead_tiles", faults.dead_tiles, 0, 1000000, "tiles",
            "crossbar tiles, drawn per chip, whose cells conduct nothing (open bit line, dead word-line driver)");
  return t;
}

void HardwareConfig::validate(const std::string& origin) {
  table().check(origin);
  if (crossbar.tile_rows % 64 != 0) {
    throw Error(origin + ": crossbar.tile_rows = " + std::to_string(crossbar.tile_rows) + " is not a multiple of 64");
  }
  // The linear temperature laws must leave a device at temperature_k.
  const auto positive_at_temperature = [&](const char* key, const char* what, double factor) {
    if (!(factor >= 0.05)) {
      throw Error(fmt::format("{}: {}: {} at temperature_k = {:g} K would be {:.3g} x its reference value (below "
                              "0.05: outside the linear law)",
                              origin, key, what, mtj.temperature_k, factor));
    }
  };
  // Below a micro-Ohm per cell the wires change nothing a double can hold, and their conductance
  // 1 / r_w overflows for the smallest numbers: 0 is how to turn them off.
  if (crossbar.wire_resistance_ohm > 0.0 && crossbar.wire_resistance_ohm < kMinWireOhm) {
    throw Error(fmt::format("{}: crossbar.wire_resistance_ohm = {:g} is below {:g} Ohm (give 0 for no wires)", origin,
                            crossbar.wire_resistance_ohm, kMinWireOhm));
  }
  if (crossbar.wire_resistance_ohm > 0.0 &&
      static_cast<std::int64_t>(crossbar.tile_rows) * (crossbar.tile_cols + 2) > kMaxIrDropCells) {
    throw Error(fmt::format("{}: crossbar.wire_resistance_ohm: IR drop is solved on tiles of at most {} cells "
                            "(rows x (columns + 2)); crossbar.tile_rows x tile_cols = {} x {} is larger",
                            origin, kMaxIrDropCells, crossbar.tile_rows, crossbar.tile_cols));
  }
  positive_at_temperature("mtj.ic0_temp_coeff_per_k", "Ic0", mtj.ic0_temperature_factor());
  positive_at_temperature("mtj.tmr_temp_coeff_per_k", "TMR", mtj.tmr_temperature_factor());
  positive_at_temperature("mtj.ra_temp_coeff_per_k", "RA", mtj.ra_temperature_factor());
  if (!(mtj.delta_at_temperature() >= 1.0)) {
    throw Error(fmt::format("{}: mtj.barrier_temp_coeff_per_k: Delta at temperature_k = {:g} K would be {:.3g} kT "
                            "(below 1: no barrier)",
                            origin, mtj.temperature_k, mtj.delta_at_temperature()));
  }
}

HardwareConfig HardwareConfig::load(const std::string& source, const std::string& option) {
  require_source(source, option);
  if (source == "default") return defaults();
  if (source == "ideal") return ideal();
  if (source == "wired") return wired();
  if (source == "unwired") return unwired();
  std::error_code error;
  const bool exists = std::filesystem::exists(source, error);
  if (error) throw Error(fmt::format("{}: {}: {}", option, printable_head(source), error.message()));
  if (!exists) {
    throw Error(fmt::format("{}: '{}' is neither a preset ({}) nor an existing file", option, printable_head(source),
                            kPresetNames));
  }
  HardwareConfig hw = defaults();
  hw.table().apply_file(source);
  hw.validate(source);
  return hw;
}

std::string HardwareConfig::coarse_adc() const {
  const int levels = adc_codes_per_sign(crossbar.adc_bits);
  if (levels >= 4 || levels >= crossbar.tile_rows) return {};
  return fmt::format("crossbar.adc_bits = {} leaves {} ADC level(s) per sign for partial sums of up to {} rows (step {:g}); "
                     "expect figures near chance",
                     crossbar.adc_bits, levels, crossbar.tile_rows, static_cast<double>(crossbar.tile_rows) / levels);
}

}  // namespace spinbayes
