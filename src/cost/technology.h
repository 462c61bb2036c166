#pragma once
// The technology file: what each hardware event costs in energy and time, and what each block
// occupies in area. The cost model multiplies event counts (analytic, or a simulator's ledger) by
// these numbers. Same mechanism as the hardware config: JSON with // comments over a documented
// default; a file may give any subset of keys; unknown keys, wrong types, negative values are
// one-line errors naming the file and the key.
//
// One energy convention: every event's energy is what it draws from the supply V_DD
// (supply.vdd_v). A current-driven event (module reset and write, MTJ read) costs
// V_DD x I x t: the driver's and access transistor's share and the MTJ's own dissipation
// (I^2 R t, or V^2 G t for a read) together; the MTJ's part is kept beside it (the *_mtj_fj
// entries) so that write, reset and read compare on both footings. A capacitive event (word line,
// sense decision, decoder, fan-out wire) costs C V_DD^2. The ADC and the digital unit are priced
// at published energies per operation, which are supply energies by construction.
//
// The device-derived entries (currents, resistances, energies) follow from the hardware config
// and the drop probability the modules are written for; a technology file may override any of
// them, and the entries it does not set are derived again from the entries it does (a file that
// sets only supply.vdd_v re-prices every supply-referred event).
#include <string>

#include "core/config.h"
#include "hw/hardware_config.h"

namespace spinbayes {

enum class ResetPolicy { always, conditional };
const char* name_of(ResetPolicy r);

struct SupplyTech {
  double vdd_v = 0.9;  // the drivers' and logic's supply
};

struct ModuleTech {  // a dropout module: 1T-1MTJ, its reset/write drivers, trim DAC and sense amplifier
  // Supply-referred per event (derived): V_DD I t, a read's sense decision included.
  double reset_pj = 0.162, write_pj = 0.185, read_fj = 26.0;
  // A read of a module in P and in AP (derived; read_fj is their mean at p). Reads are priced by
  // the state they find: the cost model's counts expect p of them in AP, a simulated run counts.
  double read_p_fj = 27.0, read_ap_fj = 17.0;
  // The MTJ's own dissipation in the same events (derived; a part of the above, not added to it).
  double reset_mtj_fj = 65.0, write_mtj_fj = 33.7, read_mtj_fj = 2.4;
  // Device quantities the energies follow from (derived from the hardware config).
  double write_current_ua = 41.14, reset_current_ua = 90.0, read_current_ua = 23.7;
  double read_p_current_ua = 25.0, read_ap_current_ua = 12.0;
  double reset_ns = 2.0, write_ns = 5.0, read_ns = 1.0;
  // always: every module reset before its write; conditional: read first and reset only the
  // modules in AP (the extra read priced, resets at the drop probability).
  ResetPolicy reset = ResetPolicy::always;
  double area_um2 = 1.064;        // 1T-1MTJ cell and its sense amplifier
  double driver_area_um2 = 1.0;   // reset/write current driver
  int trim_dac_bits = 6;          // bits of the module's write-current trim DAC (0: none)
  double trim_dac_unit_area_um2 = 0.05;  // one unit current source with its switch
  double trim_dac_bias_fraction = 0.125;  // the DAC's reference branch, as a share of the write current
  double trim_dac_fj = 23.1;      // per write (derived): V_DD x fraction x I_w x t_w
  double trim_dac_area_um2() const;
};

struct CrossbarTech {
  double cell_read_fj = 15.9;  // per driven 2T-2MTJ cell: V_DD V_read G t (derived)
  double cell_read_mtj_fj = 1.77;  // its MTJ part: V_read^2 G t (derived)
  double wordline_capacitance_ff = 20.0;
  double wordline_fj = 16.2;   // per word-line drive across one tile: C V_DD^2 (derived)
  double cell_read_ns = 1.0;   // column current settling
  double wordline_ns = 0.5;
  double cell_area_um2 = 0.128;  // one 2T-2MTJ XNOR cell
};

struct SenseTech {  // the column sense amplifier: a one-bit decision against the BN threshold
  double capacitance_ff = 5.0;
  double decision_fj = 4.05;  // C V_DD^2 (derived)
  double decision_ns = 1.0, area_um2 = 1.0;
};

struct AdcTech {
  double conversion_pj = 1.56, conversion_ns = 0.78, area_um2 = 1200.0;
  int columns_per_adc = 128;  // columns time-multiplexed onto one ADC
};

struct DigitalTech {
  double accumulate_pj = 0.1, accumulate_ns = 1.0;  // one partial sum added into its accumulator
  double mac_pj = 0.1, mac_ns = 1.0;                // first layer: real pixel times a +-1 weight
  int mac_lanes = 64;                               // MACs the digital unit does per cycle
};

struct DecoderTech {  // each tile's row decoder, enabling the driver of every word line it drives
  double capacitance_ff = 2.0;  // switched per word-line drive
  double fj = 1.62;             // C V_DD^2 per word-line drive (derived)
  double area_um2 = 40.0;       // per tile
};

struct WireTech {  // the wires that carry each dropout module's bit to the word-line drivers it gates
  double capacitance_ff_per_um = 0.2;
  double gate_ff = 0.1;          // one word-line driver's enable input
  double row_pitch_um = 0.358;   // (derived) sqrt(crossbar.cell_area_um2)
  double tile_route_um = 45.8;   // (derived) a run across one tile: tile_cols x row pitch
  double track_pitch_um = 0.14;  // one routing track
};

struct Technology {
  SupplyTech supply;
  ModuleTech module;
  CrossbarTech crossbar;
  SenseTech sense;
  AdcTech adc;
  DigitalTech digital;
  DecoderTech decoder;
  WireTech wire;
  double p = 0.1;  // the drop probability the module entries were derived at (not a key)

  // The default, with the device-derived entries computed from `hw` for modules written at drop
  // probability p.
  static Technology defaults(const HardwareConfig& hw = HardwareConfig::defaults(), double p = 0.1);
  // "default" or the path of a JSON file applied over defaults(hw, p); the derived entries the
  // file does not set follow from the entries it does. Throws Error naming the file and key.
  static Technology load(const std::string& source, const HardwareConfig& hw = HardwareConfig::defaults(),
                         double p = 0.1);

  ConfigTable table();  // binds every parameter (range, unit, source) to this object
};

// Mean conductance of a driven XNOR cell: the input selects one of two complementary MTJs, one
// in P and one in AP, so a driven cell conducts through P or AP with equal odds over weights:
// G = (1/R_P + 1/R_AP(V)) / 2, with TMR(V) = TMR / (1 + (V/V_h)^2).
double mean_cell_conductance_s(const HardwareConfig& hw);

// The device quantities behind the module and cell energies, from the hardware config for a
// module written at drop probability p and read at read_v.
struct DeviceEnergies {
  double write_current_ua = 0, reset_current_ua = 0, read_current_ua = 0;  // module read: state-weighted
  double read_p_current_ua = 0, read_ap_current_ua = 0;                     // module read in P, in AP
  double r_p_ohm = 0, r_ap_read_ohm = 0, r_ap_reset_ohm = 0;  // R_AP at the read's and the reset's bias
  double write_mtj_fj = 0, reset_mtj_fj = 0, read_mtj_fj = 0;  // I^2 R t, V^2 G t
  double cell_conductance_s = 0;  // mean driven crossbar cell
};
DeviceEnergies device_energies(const HardwareConfig& hw, double p, double read_v, double read_ns);

}  // namespace spinbayes
