#include "cost/cost_model.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/model_ir.h"

namespace spinbayes {

EnergyBreakdown& EnergyBreakdown::operator+=(const EnergyBreakdown& o) {
  modules_pj += o.modules_pj;
  crossbar_pj += o.crossbar_pj;
  sense_adc_pj += o.sense_adc_pj;
  digital_pj += o.digital_pj;
  return *this;
}

EnergyBreakdown EnergyBreakdown::scaled(double f) const {
  return {modules_pj * f, crossbar_pj * f, sense_adc_pj * f, digital_pj * f};
}

AreaBreakdown& AreaBreakdown::operator+=(const AreaBreakdown& o) {
  cells_um2 += o.cells_um2;
  modules_um2 += o.modules_um2;
  sense_um2 += o.sense_um2;
  adc_um2 += o.adc_um2;
  return *this;
}

bool uses_adc(const LayerMapping& m) { return m.on_crossbar && (m.output || m.row_tiles > 1); }

int dropout_modules(const LayerMapping& m, DropoutKind scheme, ElementMasks element_masks) {
  if (!m.dropout) return 0;
  switch (scheme) {
    case DropoutKind::none: return 0;
    case DropoutKind::element:
      return element_masks == ElementMasks::per_element && !m.linear ? m.in_channels * m.in_h * m.in_w : m.modules_element;
    case DropoutKind::spatial: return m.modules_spatial;
    case DropoutKind::layer: return 1;
  }
  return 0;
}

EventCounts expected_pass_events(const LayerMapping& m, DropoutKind scheme, double p, ElementMasks element_masks) {
  EventCounts e;
  if (!m.on_crossbar) {
    e.digital_macs = static_cast<double>(m.macs);
    return e;
  }
  const bool dropped = scheme != DropoutKind::none && m.dropout;
  const double keep = dropped ? 1.0 - p : 1.0;
  const double windows = static_cast<double>(m.windows);
  const double driven_rows = static_cast<double>(m.in_map_rows) * keep;  // summed over windows
  e.wordline_drives = driven_rows * m.col_tiles;
  e.cell_reads = driven_rows * m.cols;
  if (uses_adc(m)) {
    e.adc_conversions = windows * m.cols * m.row_tiles;
    e.digital_accumulates = e.adc_conversions;
  } else {
    e.sense_decisions = windows * m.cols;
  }
  if (!dropped) return e;
  const double modules = dropout_modules(m, scheme, element_masks);
  switch (scheme) {
    case DropoutKind::element:
      if (element_masks == ElementMasks::per_element) {
        // One bit per input element, read by every tap that lands inside the map.
        e.module_resets = e.module_writes = modules;
        e.module_reads = static_cast<double>(m.in_map_rows);
      } else {
        e.module_resets = e.module_writes = e.module_reads = modules * windows;
      }
      break;
    case DropoutKind::spatial:
    case DropoutKind::layer:
      e.module_resets = e.module_writes = modules;
      e.module_reads = modules * windows;
      break;
    case DropoutKind::none: break;
  }
  return e;
}

EnergyBreakdown price_events(const EventCounts& e, const Technology& t) {
  constexpr double fj = 1e-3;  // pJ per fJ
  EnergyBreakdown b;
  b.modules_pj = e.module_resets * t.module.reset_pj + e.module_writes * t.module.write_pj +
                 e.module_reads * t.module.read_fj * fj;
  b.crossbar_pj = e.wordline_drives * t.crossbar.wordline_fj * fj + e.cell_reads * t.crossbar.cell_read_fj * fj;
  b.sense_adc_pj = e.sense_decisions * t.sense.decision_fj * fj + e.adc_conversions * t.adc.conversion_pj;
  b.digital_pj = e.digital_accumulates * t.digital.accumulate_pj + e.digital_macs * t.digital.mac_pj;
  return b;
}

double pass_latency_ns(const LayerMapping& m, std::int64_t modules, const EventCounts& pass, const Technology& t) {
  if (!m.on_crossbar) {
    return std::ceil(pass.digital_macs / t.digital.mac_lanes) * t.digital.mac_ns;
  }
  double modules_ns = 0;
  if (modules > 0) {
    const double write_rounds = std::ceil(pass.module_writes / modules);
    const double read_rounds = std::ceil(pass.module_reads / modules);
    modules_ns = write_rounds * (t.module.reset_ns + t.module.write_ns) + read_rounds * t.module.read_ns;
  }
  double readout_ns = t.sense.decision_ns;
  if (uses_adc(m)) {
    const int tile_columns = std::min(m.cols, m.cols / m.col_tiles + (m.cols % m.col_tiles != 0 ? 1 : 0));
    readout_ns = std::min(tile_columns, t.adc.columns_per_adc) * t.adc.conversion_ns +
                 m.row_tiles * t.digital.accumulate_ns;
  }
  const double window_ns = t.crossbar.wordline_ns + t.crossbar.cell_read_ns + readout_ns;
  return modules_ns + static_cast<double>(m.windows) * window_ns;
}

AreaBreakdown layer_area(const LayerMapping& m, std::int64_t modules, const Technology& t, const CrossbarParams& crossbar) {
  AreaBreakdown a;
  a.modules_um2 = modules * t.module.area_um2;
  if (!m.on_crossbar) return a;
  const double tiles = static_cast<double>(m.row_tiles) * m.col_tiles;
  a.cells_um2 = tiles * crossbar.tile_rows * crossbar.tile_cols * t.crossbar.cell_area_um2;
  if (uses_adc(m)) {
    const int tile_columns = std::min(m.cols, crossbar.tile_cols);
    const int adcs_per_tile = (tile_columns + t.adc.columns_per_adc - 1) / t.adc.columns_per_adc;
    a.adc_um2 = tiles * adcs_per_tile * t.adc.area_um2;
  } else {
    a.sense_um2 = static_cast<double>(m.cols) * t.sense.area_um2;
  }
  return a;
}

std::vector<EventCounts> expected_ledger(const ModelSpec& spec, const HardwareConfig& hw, int samples,
                                         std::uint64_t images, bool dropout) {
  const bool stochastic = dropout && spec.has_dropout();
  std::vector<EventCounts> out;
  for (const LayerMapping& m : map_layers(spec, hw.crossbar)) {
    // Each site with its own kind and rate (a network file may give a layer its own).
    const DropoutKind scheme = stochastic && m.dropout ? m.dropout_kind : DropoutKind::none;
    const EventCounts pass = expected_pass_events(m, scheme, m.p, hw.dropout_module.element_masks);
    out.push_back(pass.scaled(static_cast<double>(images) * (m.per_sample && stochastic ? samples : 1)));
  }
  return out;
}

EnergyBreakdown PricedLedger::per_image() const {
  return images > 0 ? total.scaled(1.0 / static_cast<double>(images)) : total;
}

PricedLedger price_ledger(const Ledger& ledger, const Technology& tech) {
  PricedLedger priced;
  priced.images = ledger.images;
  priced.samples = ledger.samples;
  for (const LayerEvents& events : ledger.layers) {
    priced.layers.push_back(price_events(EventCounts::from(events), tech));
    priced.total += priced.layers.back();
  }
  return priced;
}

EnergyBreakdown SchemeCost::energy_at(int samples) const {
  EnergyBreakdown e = prefix_energy;
  e += sample_energy.scaled(scheme == DropoutKind::none ? 1 : samples);
  return e;
}

const SchemeCost& CostReport::scheme(DropoutKind s) const {
  for (const SchemeCost& c : schemes) {
    if (c.scheme == s) return c;
  }
  throw Error("cost report: no scheme '" + to_string(s) + "'");
}

namespace {

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

}  // namespace

double CostReport::modules_element_over_spatial() const {
  return ratio(scheme(DropoutKind::element).total.modules, scheme(DropoutKind::spatial).total.modules);
}

double CostReport::dropout_energy_element_over_spatial() const {
  return ratio(scheme(DropoutKind::element).total.energy.modules_pj,
               scheme(DropoutKind::spatial).total.energy.modules_pj);
}

double CostReport::layer_modules_element_over_spatial(std::size_t layer) const {
  return ratio(scheme(DropoutKind::element).layers.at(layer).modules,
               scheme(DropoutKind::spatial).layers.at(layer).modules);
}

double CostReport::layer_dropout_energy_element_over_spatial(std::size_t layer) const {
  return ratio(scheme(DropoutKind::element).layers.at(layer).energy.modules_pj,
               scheme(DropoutKind::spatial).layers.at(layer).energy.modules_pj);
}

CostReport cost_report(const ModelSpec& spec, const HardwareConfig& hw, const Technology& tech, int samples,
                       double p) {
  if (samples < 1 || samples > 100000) {
    throw Error("samples: Monte Carlo samples T must be in 1..100000, got " + std::to_string(samples));
  }
  if (!(p >= 0 && p < 1)) {
    throw Error("p: dropout probability must be in (0, 1) (0: the model's), got " + fmt::format("{:g}", p));
  }
  CostReport r;
  r.spec = spec;
  r.p = p > 0 ? p : (spec.p > 0 ? spec.p : ModelSpec{}.p);
  r.samples = samples;
  r.hw = hw;
  r.tech = tech;
  // The same architecture and dropout sites under every scheme; the mapping only depends on
  // whether dropout is on, so one mapping with dropout serves element, spatial and layer.
  ModelSpec with_dropout = spec;
  with_dropout.dropout = DropoutKind::spatial;
  with_dropout.p = r.p;
  r.mapping = map_layers(with_dropout, hw.crossbar);
  ModelSpec without = spec;
  without.dropout = DropoutKind::none;
  const std::vector<LayerMapping> plain = map_layers(without, hw.crossbar);

  for (DropoutKind s : kDropoutKinds) {
    SchemeCost c;
    c.scheme = s;
    c.runs = s == DropoutKind::none ? 1 : samples;
    const std::vector<LayerMapping>& mapping = s == DropoutKind::none ? plain : r.mapping;
    for (const LayerMapping& m : mapping) {
      LayerCost l;
      l.modules = dropout_modules(m, s, hw.dropout_module.element_masks);
      // At the site's rate: --p (or the model's), or the layer's own from a network file.
      l.pass = expected_pass_events(m, s, m.dropout ? m.p : r.p, hw.dropout_module.element_masks);
      const int runs = m.per_sample ? c.runs : 1;
      l.inference = l.pass.scaled(runs);
      l.pass_energy = price_events(l.pass, tech);
      l.energy = l.pass_energy.scaled(runs);
      const double pass_ns = pass_latency_ns(m, l.modules, l.pass, tech);
      l.latency_ns = pass_ns * runs;
      l.area = layer_area(m, l.modules, tech, hw.crossbar);
      const bool per_sample = m.per_sample && s != DropoutKind::none;
      (per_sample ? c.sample_energy : c.prefix_energy) += l.pass_energy;
      (per_sample ? c.sample_latency_ns : c.prefix_latency_ns) += pass_ns;
      c.total.modules += l.modules;
      c.total.pass += l.pass;
      c.total.inference += l.inference;
      c.total.pass_energy += l.pass_energy;
      c.total.energy += l.energy;
      c.total.latency_ns += l.latency_ns;
      c.total.area += l.area;
      c.layers.push_back(l);
    }
    r.schemes.push_back(std::move(c));
  }
  return r;
}

CostReport run_cost(const CostOptions& o) {
  const HardwareConfig hw = HardwareConfig::load(o.hw);
  const Technology tech = Technology::load(o.tech, hw);
  ModelSpec spec = o.topology ? *o.topology : load_model_ir(o.model_ir).spec;
  if (!o.dropout_layers.empty()) spec.dropout_layers = o.dropout_layers;
  CostReport r = cost_report(spec, hw, tech, o.samples, o.p);
  r.untrained = o.topology.has_value();
  r.hw_source = o.hw;
  r.tech_source = o.tech;
  return r;
}

// ---- reports -------------------------------------------------------------------------------

namespace {

std::string layer_kind(const LayerMapping& m) {
  if (m.linear) return "linear";
  return fmt::format("conv{}x{}", m.kernel, m.kernel);
}

std::string ratio_text(double r) { return r > 0 ? fmt::format("{:.2f}x", r) : "-"; }

nlohmann::json area_json(const AreaBreakdown& a) {
  return {{"cells", a.cells_um2},
          {"modules", a.modules_um2},
          {"sense", a.sense_um2},
          {"adc", a.adc_um2},
          {"total", a.total_um2()}};
}

nlohmann::json ratio_json(double r) { return r > 0 ? nlohmann::json(r) : nlohmann::json(nullptr); }

nlohmann::json layer_cost_json(const LayerCost& l) {
  return {{"modules", l.modules},
          {"events_per_pass", events_json(l.pass)},
          {"events_per_inference", events_json(l.inference)},
          {"energy_per_pass_pj", energy_json(l.pass_energy)},
          {"energy_pj", energy_json(l.energy)},
          {"latency_ns", l.latency_ns},
          {"area_um2", area_json(l.area)}};
}

}  // namespace

nlohmann::json energy_json(const EnergyBreakdown& e) {
  return {{"modules", e.modules_pj},
          {"crossbar", e.crossbar_pj},
          {"sense_adc", e.sense_adc_pj},
          {"digital", e.digital_pj},
          {"total", e.total_pj()}};
}

std::string cost_table(const CostReport& r) {
  std::string out;
  const auto& spec = r.spec;
  const std::string origin = r.untrained ? fmt::format("on {}x{}x{} images, no weights: the topology's counts",
                                                        spec.channels, spec.height, spec.width_px)
                                          : fmt::format("trained with {} dropout", to_string(spec.dropout));
  bool own_sites = false;
  for (const LayerMapping& m : r.mapping) own_sites = own_sites || (m.dropout && m.p != r.p);
  out += fmt::format("hardware cost of {} ({}), dropout sites: {}{}, priced at "
                     "p = {:g}, T = {} samples; hw: {}, tech: {}\n",
                     network_description(spec), origin, spec.dropout_layers,
                     own_sites ? " (and the network file's own, at their own p)" : "", r.p, r.samples, r.hw_source,
                     r.tech_source);
  out += "energy per inference in nJ (pass energy x runs: T for layers from the first dropout site on, 1 before it "
         "and without dropout)\n\n";

  const SchemeCost& el = r.scheme(DropoutKind::element);
  const SchemeCost& sp = r.scheme(DropoutKind::spatial);
  const SchemeCost& ly = r.scheme(DropoutKind::layer);
  const SchemeCost& no = r.scheme(DropoutKind::none);
  out += fmt::format("{:<6} {:<9} {:>6} {:>5} {:>5} {:>7} {:>3} | {:>7} {:>7} {:>5} {:>7} | {:>10} {:>10} {:>10} {:>8}\n",
                     "layer", "kind", "rows", "cols", "tiles", "windows", "T", "mod el", "mod sp", "mod 1", "el/sp",
                     "drop el", "drop sp", "drop 1", "el/sp");
  for (std::size_t i = 0; i < r.mapping.size(); ++i) {
    const LayerMapping& m = r.mapping[i];
    out += fmt::format(
        "{:<6} {:<9} {:>6} {:>5} {:>5} {:>7} {:>3} | {:>7} {:>7} {:>5} {:>7} | {:>10.3f} {:>10.3f} {:>10.3f} {:>8}\n",
        m.name, m.on_crossbar ? layer_kind(m) : "digital", m.rows, m.cols,
        fmt::format("{}x{}", m.row_tiles, m.col_tiles), m.windows, m.per_sample ? "T" : "1", el.layers[i].modules,
        sp.layers[i].modules, ly.layers[i].modules, ratio_text(r.layer_modules_element_over_spatial(i)),
        el.layers[i].energy.modules_pj * 1e-3, sp.layers[i].energy.modules_pj * 1e-3,
        ly.layers[i].energy.modules_pj * 1e-3, ratio_text(r.layer_dropout_energy_element_over_spatial(i)));
  }
  out += fmt::format("{:<6} {:<9} {:>6} {:>5} {:>5} {:>7} {:>3} | {:>7} {:>7} {:>5} {:>7} | {:>10.3f} {:>10.3f} {:>10.3f} {:>8}\n\n",
                     "total", "", "", "", "", "", "", el.total.modules, sp.total.modules, ly.total.modules,
                     ratio_text(r.modules_element_over_spatial()), el.total.energy.modules_pj * 1e-3,
                     sp.total.energy.modules_pj * 1e-3, ly.total.energy.modules_pj * 1e-3,
                     ratio_text(r.dropout_energy_element_over_spatial()));

  out += fmt::format("{:<8} {:>7} | {:>10} {:>10} {:>10} {:>10} {:>10} | {:>12} | {:>10} {:>10}\n", "scheme", "modules",
                     "modules", "crossbar", "sense/ADC", "digital", "total nJ", "latency us", "area mm2",
                     "modules mm2");
  for (const SchemeCost* c : {&no, &el, &sp, &ly}) {
    const EnergyBreakdown& e = c->total.energy;
    out += fmt::format("{:<8} {:>7} | {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f} | {:>12.2f} | {:>10.4f} {:>10.4f}\n",
                       to_string(c->scheme), c->total.modules, e.modules_pj * 1e-3, e.crossbar_pj * 1e-3,
                       e.sense_adc_pj * 1e-3, e.digital_pj * 1e-3, e.total_pj() * 1e-3, c->total.latency_ns * 1e-3,
                       c->total.area.total_um2() * 1e-6, c->total.area.modules_um2 * 1e-6);
  }
  out += fmt::format("\nelement / spatial: modules {}, dropout-module energy {}, total energy {:.2f}x, "
                     "latency {:.2f}x\n",
                     ratio_text(r.modules_element_over_spatial()), ratio_text(r.dropout_energy_element_over_spatial()),
                     ratio(el.total.energy.total_pj(), sp.total.energy.total_pj()),
                     ratio(el.total.latency_ns, sp.total.latency_ns));
  return out;
}

nlohmann::json cost_json(const CostReport& r) {
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t i = 0; i < r.mapping.size(); ++i) {
    const LayerMapping& m = r.mapping[i];
    nlohmann::json schemes = nlohmann::json::object();
    for (const SchemeCost& c : r.schemes) schemes[to_string(c.scheme)] = layer_cost_json(c.layers[i]);
    layers.push_back({{"name", m.name},
                      {"kind", m.on_crossbar ? layer_kind(m) : "digital"},
                      {"kernel", m.kernel},
                      {"in_channels", m.in_channels},
                      {"out_channels", m.out_channels},
                      {"rows", m.rows},
                      {"cols", m.cols},
                      {"row_tiles", m.row_tiles},
                      {"col_tiles", m.col_tiles},
                      {"windows", m.windows},
                      {"in_map_rows", m.in_map_rows},
                      {"dropout", m.dropout},
                      {"dropout_p", m.dropout ? m.p : 0.0},  // the site's rate: --p, or the layer's own
                      {"per_sample", m.per_sample},
                      {"schemes", schemes},
                      {"ratios",
                       {{"modules_element_over_spatial", ratio_json(r.layer_modules_element_over_spatial(i))},
                        {"dropout_energy_element_over_spatial",
                         ratio_json(r.layer_dropout_energy_element_over_spatial(i))}}}});
  }
  nlohmann::json schemes = nlohmann::json::object();
  for (const SchemeCost& c : r.schemes) {
    nlohmann::json s = layer_cost_json(c.total);
    s["runs"] = c.runs;
    s["energy_prefix_pj"] = energy_json(c.prefix_energy);
    s["energy_per_sample_pj"] = energy_json(c.sample_energy);
    s["latency_prefix_ns"] = c.prefix_latency_ns;
    s["latency_per_sample_ns"] = c.sample_latency_ns;
    schemes[to_string(c.scheme)] = s;
  }
  const SchemeCost& el = r.scheme(DropoutKind::element);
  const SchemeCost& sp = r.scheme(DropoutKind::spatial);
  Technology tech_copy = r.tech;  // table() binds to a mutable object
  const nlohmann::json tech = nlohmann::json::parse(tech_copy.table().to_commented_json(), nullptr, true, true);
  return {{"model", r.spec},
          {"untrained", r.untrained},
          {"p", r.p},
          {"samples", r.samples},
          {"hw", r.hw_source},
          {"tech", r.tech_source},
          {"element_masks", name_of(r.hw.dropout_module.element_masks)},
          {"technology", tech},
          {"layers", layers},
          {"schemes", schemes},
          {"ratios",
           {{"modules_element_over_spatial", r.modules_element_over_spatial()},
            {"dropout_energy_element_over_spatial", r.dropout_energy_element_over_spatial()},
            {"energy_element_over_spatial", ratio(el.total.energy.total_pj(), sp.total.energy.total_pj())},
            {"latency_element_over_spatial", ratio(el.total.latency_ns, sp.total.latency_ns)}}}};
}

}  // namespace spinbayes
