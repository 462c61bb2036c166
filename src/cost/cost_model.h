#pragma once
// The hardware bill of a binary network on the spintronic chip: dropout modules, energy, latency
// and area, per layer and in total, under each dropout scheme, from analytic event counts or from
// the ledger a simulated run filled.
//
// Analytic counts follow the ledger's conventions (hw/ledger.h) and are expectations over the
// masks: a dropped input is a word line not driven, so a dropout layer drives
// in_map_rows * (1 - p) rows per pass on each column tile (exact where there is no dropout).
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
  double total_pj() const { return modules_pj + crossbar_pj + sense_adc_pj + digital_pj; }
  EnergyBreakdown& operator+=(const EnergyBreakdown& o);
  EnergyBreakdown scaled(double factor) const;
};

struct AreaBreakdown {  // um^2
  double cells_um2 = 0, modules_um2 = 0, sense_um2 = 0, adc_um2 = 0;
  double total_um2() const { return cells_um2 + modules_um2 + sense_um2 + adc_um2; }
  AreaBreakdown& operator+=(const AreaBreakdown& o);
};

// Columns read out through ADCs and accumulated digitally (several row tiles, or real logits);
// the others end in one sense amplifier per column.
bool uses_adc(const LayerMapping& m);

// Dropout modules a layer needs under `scheme` (0 where its input has no dropout). Element
// dropout with per_element masks holds one bit per input element: C_in * H * W modules.
int dropout_modules(const LayerMapping& m, DropoutKind scheme,
                    ElementMasks element_masks = ElementMasks::per_window);

// Expected events of one pass of a layer. `element_masks` is the hardware config's
// dropout_module.element_masks.
EventCounts expected_pass_events(const LayerMapping& m, DropoutKind scheme, double p, ElementMasks element_masks);

EnergyBreakdown price_events(const EventCounts& events, const Technology& tech);

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
AreaBreakdown layer_area(const LayerMapping& m, std::int64_t modules, const Technology& tech, const CrossbarParams& crossbar);

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

struct CostReport {
  ModelSpec spec;  // as trained
  bool untrained = false;  // priced from a topology without weights
  double p = 0.1;  // drop probability the schemes are priced at
  int samples = 20;
  std::string hw_source = "default", tech_source = "default";
  HardwareConfig hw;
  Technology tech;
  std::vector<LayerMapping> mapping;  // the network with dropout at the model's dropout sites
  std::vector<SchemeCost> schemes;    // in kDropoutKinds order

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

std::string cost_table(const CostReport& report);
nlohmann::json cost_json(const CostReport& report);
nlohmann::json energy_json(const EnergyBreakdown& energy);

// Two panels: energy per inference by component and scheme (stacked bars), and energy per
// inference against T. Runs gnuplot (pngcairo); the PNG is written atomically.
void write_cost_plot(const CostReport& report, const std::filesystem::path& png);
std::string cost_plot_png(const CostReport& report);  // the same figure's bytes

}  // namespace spinbayes
