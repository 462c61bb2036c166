#pragma once
// The technology file: what each hardware event costs in energy and time, and what each block
// occupies in area. The cost model multiplies event counts (analytic, or a simulator's ledger) by
// these numbers. Same mechanism as the hardware config: JSON with // comments over a documented
// default; a file may give any subset of keys; unknown keys, wrong types, negative values are
// one-line errors naming the file and the key.
//
// Energies are drawn from the supply per event. Defaults that follow from the device (crossbar
// cell read, module read, module write pulse) are derived from the hardware config they are
// loaded with; every default carries its derivation or published source.
#include <string>

#include "core/config.h"
#include "hw/hardware_config.h"

namespace spinbayes {

struct ModuleTech {  // a dropout module: 1 MTJ, its reset/write drivers and its sense amplifier
  double reset_pj = 0.1;    // deterministic reset to P (a write)
  double write_pj = 0.1;    // stochastic sub-critical write pulse (a write)
  double read_fj = 6.8;     // one read, sense-amplifier decision included
  double reset_ns = 2.0, write_ns = 5.0, read_ns = 1.0;
  double area_um2 = 2.0;
};

struct CrossbarTech {
  double cell_read_fj = 1.8;   // per driven 2T-2MTJ cell: V_read^2 * G * t
  double wordline_fj = 20.0;   // per word-line drive across one tile
  double cell_read_ns = 1.0;   // column current settling
  double wordline_ns = 0.5;
  double cell_area_um2 = 0.128;  // one 2T-2MTJ XNOR cell
};

struct SenseTech {  // the column sense amplifier: a one-bit decision against the BN threshold
  double decision_fj = 5.0, decision_ns = 1.0, area_um2 = 1.0;
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

struct Technology {
  ModuleTech module;
  CrossbarTech crossbar;
  SenseTech sense;
  AdcTech adc;
  DigitalTech digital;

  // The default, with the device-derived entries computed from `hw`.
  static Technology defaults(const HardwareConfig& hw = HardwareConfig::defaults());
  // "default" or the path of a JSON file applied over defaults(hw). Throws Error naming the file
  // and key.
  static Technology load(const std::string& source, const HardwareConfig& hw = HardwareConfig::defaults());

  ConfigTable table();  // binds every parameter (range, unit, source) to this object
};

// Mean conductance of a driven XNOR cell: the input selects one of two complementary MTJs, one
// in P and one in AP, so a driven cell conducts through P or AP with equal odds over weights:
// G = (1/R_P + 1/R_AP(V)) / 2, with TMR(V) = TMR / (1 + (V/V_h)^2).
double mean_cell_conductance_s(const HardwareConfig& hw);

}  // namespace spinbayes
