#pragma once
// The hardware bill of a binary network on the spintronic chip: dropout modules, energy, latency
// and area, per layer and in total, under each dropout scheme, from analytic event counts or from
// the ledger a simulated run filled.
//
// Analytic counts follow the ledger's conventions (hw/ledger.h) and are expectations over the
// masks: a dropped input is a word line not driven, so a dropout layer drives
// in_map_rows * (1 - p) rows per pass on each column tile (exact where there is no dropout; p the
// modules' own, module_rates, and more rows under read disturb: expected_pass_events).
// Dropout-module events per pass of a layer with dropout on its input:
//   element (per_window)  K*K*C_in modules, each reset, written and read at every window
//   element (per_element) C_in*H*W modules, one per input element: reset and written once per
//                         pass, read at every tap inside the map
//   spatial               C_in modules, reset and written once per pass, read at every window
//   layer                 one module for the whole layer, reset and written once per pass, read at
//                         every window: the floor on modules and module energy for any scheme
//                         whose masks are drawn once per pass (it drops whole inputs)
//   linear layers         one module per input under element and spatial, written once per pass
// Per inference of T Monte Carlo samples: layers before the first dropout site run once, the
// others T times; without dropout every pass is the same, so the network runs once.
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cost/technology.h"
#include "hw/hardware_config.h"
#include "hw/ledger.h"
#include "hw/mapping.h"
#include "model/model_spec.h"

namespace spinbayes {


struct EnergyBreakdown {  // pJ
  double modules_pj = 0;    // dropout modules: resets, stochastic writes, reads
  double crossbar_pj = 0;   // word-line drives and cell read currents
  double sense_adc_pj = 0;  // sense-amplifier decisions and ADC conversions
  double digital_pj = 0;    // partial-sum accumulation and the first layer's MACs
  double peripherals_pj = 0;  // trim DACs, row decoders, the modules' fan-out wires
  double total_pj() const { return modules_pj + crossbar_pj + sense_adc_pj + digital_pj + peripherals_pj; }
  EnergyBreakdown& operator+=(const EnergyBreakdown& o);
  EnergyBreakdown scaled(double factor) const;
};

struct AreaBreakdown {  // um^2
  double cells_um2 = 0;
  double modules_um2 = 0;  // 1T-1MTJ, sense amplifier, reset/write driver and trim DAC of each module
  double sense_um2 = 0, adc_um2 = 0;
  double peripherals_um2 = 0;  // row decoders and the routing tracks of the modules' fan-out wires
  double total_um2() const { return cells_um2 + modules_um2 + sense_um2 + adc_um2 + peripherals_um2; }
  AreaBreakdown& operator+=(const AreaBreakdown& o);
};

// Columns read out through ADCs and accumulated digitally (several row tiles, or real logits);
// the others end in one sense amplifier per column.
bool uses_adc(const LayerMapping& m);

// Dropout modules a layer needs under `scheme` (0 where its input has no dropout). Element
// dropout with per_element masks holds one bit per input element: C_in * H * W modules.
int dropout_modules(const LayerMapping& m, DropoutKind scheme,
                    ElementMasks element_masks = ElementMasks::per_window);

// What the dropout modules do on average under a hardware config, for a target drop probability
// p: `p` here is the chance a write leaves a module in AP, the mean over the module population of
// what the chip's modules give (DropoutBank::probability: each module's own Delta and Ic0 at the
// operating temperature after its trim, the DAC step, write and supply noise, failed resets,
// stuck modules), averaged over kRateModules modules of chip seed 0, or p itself where every
// module gives p; `read_disturb` the chance that a read flips an AP module to P
// (faults.read_disturb).
struct ModuleRates {
  double p = 0.0;
  double read_disturb = 0.0;
};
constexpr int kRateModules = 4096;
ModuleRates module_rates(const HardwareConfig& hw, double p);

// Expected events of one pass of a layer. `element_masks` is the hardware config's
// dropout_module.element_masks. A module read L times after a write that left it in AP is read in
// AP until the read that flips it (which senses P): sum_{j=1..L} (1 - q)^j reads in AP, still AP at
// the next reset with (1 - q)^L, and the windows it gates after the flip are driven.
EventCounts expected_pass_events(const LayerMapping& m, DropoutKind scheme, const ModuleRates& rates,
                                 ElementMasks element_masks);

// Prices events as counted. Peripherals: a trim-DAC bias per write, a decoder stage per word-line
// drive, and `fanout_fj_per_read` per module read (the wire that carries the read bit to the
// word-line drivers it gates: fanout_fj_per_read(), which needs the layer's mapping).
EnergyBreakdown price_events(const EventCounts& events, const Technology& tech, double fanout_fj_per_read = 0);

// Word-line drivers one module of `scheme` gates in each column tile: K^2 for a spatial module of a
// convolution (its channel's kernel rows), one for an element module or a linear layer's, every
// row of the layer for the layer scheme's single module.
int gated_rows_per_tile(const LayerMapping& m, DropoutKind scheme);
// The fan-out wire of one module: in every column tile, a run across the tile (wire.tile_route_um)
// and one row pitch and one driver enable per gated row (the layer scheme's module runs across
// every row tile): C = col_tiles (tiles_crossed L c_w + g (c_gate + pitch c_w)); a read delivers
// its bit by charging it, C V_DD^2 (an upper bound: a latched bit that does not change would not).
double fanout_capacitance_ff(const LayerMapping& m, DropoutKind scheme, const Technology& tech);
double fanout_fj_per_read(const LayerMapping& m, DropoutKind scheme, const Technology& tech);

// Conditional reset: each write cycle reads its module first (one read per reset the counts
// hold) and resets only the modules left in AP by the last write: module_writes_ap of them (p of
// the writes in the analytic counts, as the modules fell in a simulated run's).
EventCounts conditional_reset_events(EventCounts events);

// Latency of one pass of a layer. Windows run one after another; all tiles of a layer work in
// parallel within a window; each window drives its word lines, lets the column currents settle and
// reads out (one sense decision, or each ADC converting its columns in turn, then one addition per
// row tile). Dropout modules work in parallel and in rounds: rounds = events / modules, a write
// round costs reset + write, a read round one read (per_window element modules: one write and one
// read round per window; spatial: one write round per pass, a read round per window). Nothing is
// pipelined, so this is an upper bound. The first layer runs in the digital unit: MACs / lanes cycles.
double pass_latency_ns(const LayerMapping& m, std::int64_t modules, const EventCounts& pass, const Technology& tech);

// Area of a layer: its tiles (each layer owns whole tiles), dropout modules, one sense amplifier
// per column or the ADCs of each tile. The first layer's digital unit is not counted.
AreaBreakdown layer_area(const LayerMapping& m, std::int64_t modules, const Technology& tech, const CrossbarParams& crossbar,
                         DropoutKind scheme = DropoutKind::none);

// What a simulated run's ledger holds on average: per layer, for `images` images of `samples` MC
// samples, under the model's own dropout (per_sample layers counted `samples` times). With
// dropout off (`dropout` false, or a model without dropout) every pass is the same and the
// network runs once per image, as the chip does.
std::vector<EventCounts> expected_ledger(const ModelSpec& spec, const HardwareConfig& hw, int samples,
                                         std::uint64_t images, bool dropout = true);

// A simulator's ledger priced event by event.
struct PricedLedger {
  std::vector<EnergyBreakdown> layers;
  EnergyBreakdown total;
  std::uint64_t images = 0;
  int samples = 0;
  EnergyBreakdown per_image() const;
};
// Reads are priced by the state they found (module_reads_ap) and, under module.reset =
// conditional, resets as conditional_reset_events of the run's own module_writes_ap: the modules'
// realized states, not the technology's p. Fan-out wires need the mapping: not priced.
PricedLedger price_ledger(const Ledger& ledger, const Technology& tech);

struct LayerCost {
  std::int64_t modules = 0;  // a sum over layers in a scheme's total
  EventCounts pass;           // one pass
  EventCounts inference;      // one inference (the pass times the runs of this layer)
  EnergyBreakdown pass_energy, energy;  // one pass; one inference
  double latency_ns = 0;      // one inference
  AreaBreakdown area;
};

struct SchemeCost {
  DropoutKind scheme = DropoutKind::none;
  int runs = 1;  // passes of the per-sample layers per inference: T, or 1 without dropout
  std::vector<LayerCost> layers;
  LayerCost total;  // summed over layers
  // Energy and latency of one inference as a function of T: prefix + T * per_sample.
  EnergyBreakdown prefix_energy, sample_energy;
  double prefix_latency_ns = 0, sample_latency_ns = 0;
  EnergyBreakdown energy_at(int samples) const;
};

// The element/spatial ratio of dropout-module energy under one way of pricing a module's
// reset, write and read. Module events per inference of the whole network under element and
// spatial; ratio = (N_rst E_rst + N_w E_w + N_rd E_rd) element / the same spatial. For one
// convolution of K x K kernels over W windows: K^2 W (E_rst + E_w + E_rd) / (E_rst + E_w + W E_rd).
struct ModuleAccounting {
  std::string name;
  std::string basis;  // how each energy follows from the device and the supply
  double vdd_v = 0;   // the supply the drivers draw from; 0 where the energies are not supply-referred
  double read_v = 0;  // the module's read bias
  double reset_pj = 0, write_pj = 0, read_fj = 0;
  bool conditional_reset = false;
  EventCounts element, spatial;  // module events per inference (resets, writes, reads)
  double element_pj() const;
  double spatial_pj() const;
  double ratio() const;
};

struct CostReport {
  ModelSpec spec;  // as trained
  bool untrained = false;  // priced from a topology without weights
  double p = 0.1;  // drop probability the schemes are priced at
  ModuleRates rates;  // what the modules do at p under hw (module_rates)
  int samples = 20;
  std::string hw_source = "default", tech_source = "default";
  HardwareConfig hw;
  Technology tech;
  std::vector<LayerMapping> mapping;  // the network with dropout at the model's dropout sites
  std::vector<SchemeCost> schemes;    // in kDropoutKinds order
  std::vector<ModuleAccounting> accountings;  // the first: this technology's own

  const SchemeCost& scheme(DropoutKind s) const;
  double modules_element_over_spatial() const;
  double dropout_energy_element_over_spatial() const;
  // The same two ratios for one layer; 0 where the layer has no dropout.
  double layer_modules_element_over_spatial(std::size_t layer) const;
  double layer_dropout_energy_element_over_spatial(std::size_t layer) const;
};

// Prices `spec`'s architecture and dropout sites under every scheme, whatever it was trained with.
// p = 0 takes the model's p (0.1 where the model has none). Set spec.dropout_layers to price
// other dropout sites.
CostReport cost_report(const ModelSpec& spec, const HardwareConfig& hw, const Technology& tech, int samples,
                       double p = 0);
// The drop probability a report prices at: p, or the model's where p = 0 (0.1 where it has none).
// The technology's device-derived energies follow it (Technology::load(source, hw, priced_p(...))).
double priced_p(const ModelSpec& spec, double p);

struct CostOptions {
  std::filesystem::path model_ir;  // the model IR file (a run's model.sbir)
  // Or a network without weights (a zoo spec): counts need none, and mask-dependent events are
  // expectations over the masks anyway.
  std::optional<ModelSpec> topology;
  std::string hw = "default", tech = "default";
  int samples = 20;
  double p = 0;                // 0: the model's
  std::string dropout_layers;  // all | last:N; empty: the model's
};
CostReport run_cost(const CostOptions& options);

// The published ratio of element over spatial dropout-module energy (Spatial-SpinDrop, Ahmed et al.,
// IEEE TNANO 2024).
inline constexpr double kPaperElementOverSpatial = 94.11;

// One event's energy under the technology's convention, with what it follows from (0 where not
// applicable; mtj_fj < 0 where the event has no MTJ).
struct EventEnergy {
  std::string event;
  double current_ua = 0, time_ns = 0, capacitance_ff = 0;
  double energy_fj = 0;  // drawn from the supply
  double mtj_fj = -1;    // the MTJ's own dissipation, a part of energy_fj
  std::string formula;
};
std::vector<EventEnergy> event_energies(const Technology& tech);

std::string cost_table(const CostReport& report);
nlohmann::json cost_json(const CostReport& report);
nlohmann::json energy_json(const EnergyBreakdown& energy);

// Two panels: energy per inference by component and scheme (stacked bars), and energy per
// inference against T. Runs gnuplot (pngcairo); the PNG is written atomically.
void write_cost_plot(const CostReport& report, const std::filesystem::path& png);
std::string cost_plot_png(const CostReport& report);  // the same figure's bytes

}  // namespace spinbayes
