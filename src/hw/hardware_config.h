#pragma once
// The simulated spintronic chip's parameters: MTJ devices, crossbar tiles, dropout modules and
// faults. Loaded from a JSON file (// comments allowed) over a documented default, the chip with its
// circuit; `unwired` is that chip without access transistors, wires, calibration or trim steps;
// `ideal` the preset with no variation, no faults and exact arithmetic, under which the chip
// computes what the bit-packed engine computes. `spinbayes hw --print` writes the default with every source.
#include <string>

#include "core/config.h"

namespace spinbayes {

struct MtjParams {
  double diameter_nm = 40.0;
  double ra_ohm_um2 = 5.0;       // resistance-area product of the parallel state
  double tmr = 1.5;              // (R_AP - R_P) / R_P at zero bias
  double tmr_half_bias_v = 0.5;  // V_h: TMR(V) = TMR / (1 + (V / V_h)^2)
  double delta = 45.0;           // thermal stability E_b / kT at the reference temperature
  double ic0_ua = 45.0;          // critical switching current at the reference temperature
  double tau0_ns = 1.0;          // attempt time
  // n in tau = tau0 exp(Delta (1 - I / Ic0)^n): 1 (Koch et al. 2004), 2 for perpendicular
  // macrospins (Butler et al. 2012).
  double switching_exponent = 1.0;
  // Above Ic0 (precessional regime, Sun 2000): tau_D = (1 + alpha^2) / (alpha gamma mu0 H_k).
  double precession_time_ns = 1.9;
  double temperature_k = 300.0;            // operating temperature
  double reference_temperature_k = 300.0;  // where every value above is given and write currents are calibrated
  // First-order temperature laws about the reference temperature, X(T) = X (1 - c (T - T_ref)):
  // relative falls per kelvin of Ic0, of the barrier E_b (on top of Delta = E_b / kT ~ 1 / T) and
  // of TMR; RA's relative rise per kelvin.
  double ic0_temp_coeff_per_k = 0.001, barrier_temp_coeff_per_k = 0.001, tmr_temp_coeff_per_k = 0.001;
  double ra_temp_coeff_per_k = 0.0;
  // Device-to-device variation, drawn once per chip: relative standard deviations, and the
  // correlation of a module's Delta and Ic0 deviations (both follow the barrier's volume and
  // anisotropy).
  double sigma_rp = 0.03, sigma_tmr = 0.03, sigma_delta = 0.03, sigma_ic0 = 0.03;
  double delta_ic0_correlation = 0.0;

  double area_um2() const;
  double rp_ohm() const;  // R_P = RA / area, at the reference temperature
  // The temperature laws' factors at the operating temperature (1 at the reference).
  double ic0_temperature_factor() const { return 1.0 - ic0_temp_coeff_per_k * (temperature_k - reference_temperature_k); }
  double tmr_temperature_factor() const { return 1.0 - tmr_temp_coeff_per_k * (temperature_k - reference_temperature_k); }
  double ra_temperature_factor() const { return 1.0 + ra_temp_coeff_per_k * (temperature_k - reference_temperature_k); }
  // Delta = E_b(T) / kT: T_ref / T (1 - c_b (T - T_ref)).
  double delta_temperature_factor() const {
    return reference_temperature_k / temperature_k * (1.0 - barrier_temp_coeff_per_k * (temperature_k - reference_temperature_k));
  }
  double delta_at_temperature() const { return delta * delta_temperature_factor(); }
  double ic0_at_temperature_ua() const { return ic0_ua * ic0_temperature_factor(); }
  // The device as it is at the operating temperature: RA and TMR moved by their laws, the
  // temperature made the reference (switching parameters are taken at temperature separately).
  MtjParams crossbar_at_temperature() const;
};

// Per-column calibration of the crossbar's read-out at test: none, or a gain and an offset per
// column and row tile measured with two known inputs and corrected in the read-out (cell_array.h).
enum class ColumnCalibration { none, gain_offset };
const char* name_of(ColumnCalibration c);

struct CrossbarParams {
  // 64 x 32: the shortest bit lines the 64-row packed words allow (rows must be a multiple of 64)
  // and read lines short enough for the wires below (hardware_config.cpp gives the sources).
  int tile_rows = 64, tile_cols = 32;
  double read_voltage_v = 0.1;
  double sense_offset_sigma_ua = 0.5;  // input-referred offset of the current sense amplifier
  // Its relative part: the input pair's mismatch offsets a share of the current compared (sigma,
  // relative to the column's current with every row driven).
  double sense_offset_relative = 0.0;
  // On-resistance of the access transistor in series with each crossbar MTJ (0: none).
  double access_resistance_ohm = 2000.0;
  // Wire resistance per cell pitch on the read lines and bit lines (IR drop, ir_drop.h; 0: none).
  double wire_resistance_ohm = 0.14;
  // Reference-generator error: sigma of each tile's reference current, relative, as it reaches the
  // tile's read-outs (one draw per tile and chip, shared by its columns; cell_array.h; 0: none).
  double reference_error_relative = 0.0;
  ColumnCalibration column_calibration = ColumnCalibration::gain_offset;
  int adc_bits = 8;                    // partial sums of columns that span several tiles
  // Columns whose ideal sum lies more than this many standard deviations of their analog
  // deviation from the sense threshold take the ideal decision; 0 evaluates every column in
  // analog (the reference path).
  double screen_sigmas = 6.0;
};

// How the dropout modules' write current is set: one current calibrated on the nominal device for
// the whole chip, or each module trimmed to its own Delta and Ic0.
enum class WriteCurrent { per_chip, per_module };
// Element dropout on the chip: a module per crossbar row with a fresh bit at every window
// (SpinDrop), or one bit per input element held for every window that reads it (as in training).
enum class ElementMasks { per_window, per_element };
// When the write currents are set: once at the reference temperature (a test-time trim), or again
// at the operating temperature from an on-die sensor (a trim table per temperature).
enum class TemperatureCompensation { none, per_temperature };
// Whether a failed reset (an AP module left in AP, with the reset's error rate from mtj.h) carries
// into the next pass: applied, or none (every pass starts from P).
enum class ResetErrors { applied, none };
const char* name_of(WriteCurrent w);
const char* name_of(ElementMasks e);
const char* name_of(TemperatureCompensation c);
const char* name_of(ResetErrors r);

struct DropoutModuleParams {
  double pulse_width_ns = 5.0;
  // The reset to P before each stochastic write (precessional at 2 Ic0), and whether its errors
  // are applied to the modules' drop probability.
  double reset_current_ua = 90.0, reset_pulse_ns = 18.0;
  ResetErrors reset_errors = ResetErrors::applied;
  WriteCurrent write_current = WriteCurrent::per_module;
  TemperatureCompensation temperature_compensation = TemperatureCompensation::none;
  // The per-module trim's DAC: 2^bits codes spanning trim_range_ua centred on the nominal write
  // current, each module written with the code nearest its own current (0 bits: a continuous trim).
  int trim_dac_bits = 6;
  double trim_range_ua = 16.0;
  // Per-write driver current noise: each write's current is I (1 + sigma z), z standard normal,
  // independent between writes.
  double write_noise_relative = 0.0;
  // Per-pass supply fluctuation shared by the write drivers of a layer: in each pass every module
  // of the layer is written with I (1 + sigma z), one z for all (so their masks are correlated).
  double supply_noise_relative = 0.0;
  ElementMasks element_masks = ElementMasks::per_window;
};

struct FaultParams {
  double cell_stuck_p = 0.0, cell_stuck_ap = 0.0;      // per MTJ of the crossbar
  double module_stuck_p = 0.0, module_stuck_ap = 0.0;  // per dropout-module MTJ
  double read_disturb = 0.0;  // per module read: probability that the read flips AP -> P
  // Drift after the write currents were set (aging): a relative change of every module's Ic0 and
  // Delta, so each module switches with another probability than it was trimmed for.
  double module_ic0_drift = 0.0, module_delta_drift = 0.0;
  // Drift of every crossbar MTJ, reference columns included (one stack, one history): relative
  // changes of R_P and of TMR. The reference still cancels G_mid, so a column reads its value
  // times the gain G_half' / G_half against thresholds set at the design's G_half.
  double rp_drift = 0.0, tmr_drift = 0.0;
  double sense_offset_ua = 0.0;  // an extra offset of this size, of random sign, on every sense amplifier
  double adc_gain_error = 0.0;   // relative gain error of every ADC: codes of (1 + e) x the input
  int dead_tiles = 0;            // crossbar tiles whose cells conduct nothing (an open bit line or driver)
};

struct HardwareConfig {
  MtjParams mtj;
  CrossbarParams crossbar;
  DropoutModuleParams dropout_module;
  FaultParams faults;

  // The chip as built: access transistors, IR drop on intermediate-metal lines, 64 x 32 tiles
  // calibrated at test, a 6-bit trim DAC (the table gives each value's source).
  static HardwareConfig defaults();
  // Another name of the default, for scripts that ask for the circuit by name.
  static HardwareConfig wired();
  // The default without its circuit: no access transistors, no wires, 128 x 128 tiles read
  // uncalibrated, a continuous trim; each device and module effect on its own.
  static HardwareConfig unwired();
  // No variation, no faults, exact arithmetic (from unwired): the engine's results.
  static HardwareConfig ideal();
  static bool is_preset(const std::string& name);  // default, wired, unwired, ideal
  // Refuses an empty source in one line naming `option` and what it takes (load() does so too;
  // option checks call it before anything is loaded).
  static void require_source(const std::string& source, const std::string& option = "--hw");
  // A preset's name or the path of a JSON file applied over the default. Throws Error naming
  // the file and key.
  // `option` names the source in a message ("--hw" on the command line, "hw" in Python).
  static HardwareConfig load(const std::string& source, const std::string& option = "--hw");

  ConfigTable table();  // binds every parameter (with range, unit, source) to this object
  // What makes valid settings compute figures near chance, for a warning (empty: nothing): an ADC
  // with fewer than four codes per sign over partial sums of a whole tile.
  std::string coarse_adc() const;
  void validate(const std::string& origin = "hardware config");
};

}  // namespace spinbayes
