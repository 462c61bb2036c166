#include "cost/cost_model.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "hw/dropout_module.h"
#include "model/model_ir.h"

namespace spinbayes {

EnergyBreakdown& EnergyBreakdown::operator+=(const EnergyBreakdown& o) {
  modules_pj += o.modules_pj;
  crossbar_pj += o.crossbar_pj;
  sense_adc_pj += o.sense_adc_pj;
  digital_pj += o.digital_pj;
  peripherals_pj += o.peripherals_pj;
  return *this;
}

EnergyBreakdown EnergyBreakdown::scaled(double f) const {
  return {modules_pj * f, crossbar_pj * f, sense_adc_pj * f, digital_pj * f, peripherals_pj * f};
}

AreaBreakdown& AreaBreakdown::operator+=(const AreaBreakdown& o) {
  cells_um2 += o.cells_um2;
  modules_um2 += o.modules_um2;
  sense_um2 += o.sense_um2;
  adc_um2 += o.adc_um2;
  peripherals_um2 += o.peripherals_um2;
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

ModuleRates module_rates(const HardwareConfig& hw, double p) {
  ModuleRates rates;
  rates.p = p;
  rates.read_disturb = hw.faults.read_disturb;
  if (!(p > 0.0)) return rates;
  const DropoutBank bank(hw, p, kRateModules, /*chip_seed=*/0, /*site=*/0);
  double sum = 0.0;
  bool same = true;
  for (int m = 0; m < bank.size(); ++m) {
    sum += bank.probability(m);
    same = same && bank.probability(m) == bank.probability(0);
  }
  rates.p = same ? bank.probability(0) : sum / bank.size();
  return rates;
}

EventCounts expected_pass_events(const LayerMapping& m, DropoutKind scheme, const ModuleRates& rates,
                                 ElementMasks element_masks) {
  EventCounts e;
  if (!m.on_crossbar) {
    e.digital_macs = static_cast<double>(m.macs);
    return e;
  }
  const bool dropped = scheme != DropoutKind::none && m.dropout;
  const double windows = static_cast<double>(m.windows);
  if (uses_adc(m)) {
    e.adc_conversions = windows * m.cols * m.row_tiles;
    e.digital_accumulates = e.adc_conversions;
  } else {
    e.sense_decisions = windows * m.cols;
  }
  const double in_map = static_cast<double>(m.in_map_rows);  // summed over windows
  auto drive = [&](double driven_rows) {
    e.wordline_drives = driven_rows * m.col_tiles;
    e.cell_reads = driven_rows * m.cols;
  };
  if (!dropped) {
    drive(in_map);
    return e;
  }
  // Of a module left in AP (odds p) and read L times: its reads in AP and whether it is still AP.
  const double p = rates.p, q = rates.read_disturb;
  auto ap_reads = [q](double reads) { return q > 0.0 ? (1.0 - q) * -std::expm1(reads * std::log1p(-q)) / q : reads; };
  auto still_ap = [q](double reads) { return q > 0.0 ? std::exp(reads * std::log1p(-q)) : 1.0; };
  const double modules = dropout_modules(m, scheme, element_masks);
  const bool per_element = scheme == DropoutKind::element && element_masks == ElementMasks::per_element && !m.linear;
  const bool per_window = scheme == DropoutKind::element && !per_element && !m.linear;
  if (m.linear || per_window) {
    // Read once, right after the write: a module per input (linear) or per row and window.
    const double writes = per_window ? modules * windows : modules;
    e.module_resets = e.module_writes = e.module_reads = writes;
    e.module_reads_ap = p * ap_reads(1.0) * writes;
    e.module_writes_ap = p * still_ap(1.0) * writes;
    drive(in_map * (1.0 - p * ap_reads(1.0)));
    return e;
  }
  e.module_resets = e.module_writes = modules;
  if (per_element) {
    // One bit per input element (c, y, x), read by each of the L = taps_y[y] taps_x[x] taps that
    // land on it; each of its reads in AP is a row not driven.
    const std::vector<std::int64_t> ly = taps_landing(m.out_h, m.in_h, m.kernel, m.stride, m.padding);
    const std::vector<std::int64_t> lx = taps_landing(m.out_w, m.in_w, m.kernel, m.stride, m.padding);
    double reads_ap = 0.0, left_ap = 0.0;
    for (const std::int64_t y : ly) {
      for (const std::int64_t x : lx) {
        reads_ap += ap_reads(static_cast<double>(y * x));
        left_ap += still_ap(static_cast<double>(y * x));
      }
    }
    e.module_reads = in_map;
    e.module_reads_ap = p * reads_ap * m.in_channels;
    e.module_writes_ap = p * left_ap * m.in_channels;
    drive(in_map - e.module_reads_ap);
    return e;
  }
  // Spatial (a module per input channel) and layer (one for the whole input): read at every
  // window in raster order; window w finds a module dropped while it has not flipped, odds
  // p (1 - q)^(w + 1), and then leaves its in-map rows undriven.
  e.module_reads = modules * windows;
  e.module_reads_ap = p * ap_reads(windows) * modules;
  e.module_writes_ap = p * still_ap(windows) * modules;
  if (q == 0.0) {
    drive(in_map * (1.0 - p));
    return e;
  }
  const std::vector<std::int64_t> ty = taps_inside(m.out_h, m.in_h, m.kernel, m.stride, m.padding);
  const std::vector<std::int64_t> tx = taps_inside(m.out_w, m.in_w, m.kernel, m.stride, m.padding);
  double undriven = 0.0;
  std::size_t w = 0;
  for (const std::int64_t y : ty) {
    for (const std::int64_t x : tx) {
      undriven += static_cast<double>(y * x) * m.in_channels * still_ap(static_cast<double>(++w));
    }
  }
  drive(in_map - p * undriven);
  return e;
}

EnergyBreakdown price_events(const EventCounts& e, const Technology& t, double fanout_fj_per_read) {
  constexpr double fj = 1e-3;  // pJ per fJ
  EnergyBreakdown b;
  b.peripherals_pj = (e.module_writes * t.module.trim_dac_fj + e.wordline_drives * t.decoder.fj +
                      e.module_reads * fanout_fj_per_read) * fj;
  // A read draws the current of the state it finds: module.read_ap_fj for AP, read_p_fj for P.
  b.modules_pj = e.module_resets * t.module.reset_pj + e.module_writes * t.module.write_pj +
                 ((e.module_reads - e.module_reads_ap) * t.module.read_p_fj + e.module_reads_ap * t.module.read_ap_fj) * fj;
  b.crossbar_pj = e.wordline_drives * t.crossbar.wordline_fj * fj + e.cell_reads * t.crossbar.cell_read_fj * fj;
  b.sense_adc_pj = e.sense_decisions * t.sense.decision_fj * fj + e.adc_conversions * t.adc.conversion_pj;
  b.digital_pj = e.digital_accumulates * t.digital.accumulate_pj + e.digital_macs * t.digital.mac_pj;
  return b;
}

int gated_rows_per_tile(const LayerMapping& m, DropoutKind scheme) {
  if (!m.dropout || scheme == DropoutKind::none || !m.on_crossbar) return 0;
  if (scheme == DropoutKind::layer) return m.rows;
  if (scheme == DropoutKind::spatial && !m.linear) return m.kernel * m.kernel;
  return 1;
}

double fanout_capacitance_ff(const LayerMapping& m, DropoutKind scheme, const Technology& t) {
  const int gated = gated_rows_per_tile(m, scheme);
  if (gated == 0) return 0.0;
  const double tiles_crossed = scheme == DropoutKind::layer ? m.row_tiles : 1.0;
  const double per_row_ff = t.wire.gate_ff + t.wire.row_pitch_um * t.wire.capacitance_ff_per_um;
  return m.col_tiles * (tiles_crossed * t.wire.tile_route_um * t.wire.capacitance_ff_per_um + gated * per_row_ff);
}

double fanout_fj_per_read(const LayerMapping& m, DropoutKind scheme, const Technology& t) {
  return fanout_capacitance_ff(m, scheme, t) * t.supply.vdd_v * t.supply.vdd_v;  // fF V^2 = fJ
}

EventCounts conditional_reset_events(EventCounts e) {
  // Each reset becomes a read of what the last write left; only the modules it finds in AP are
  // reset (module_writes_ap of them: p of the writes expected, or as a simulated run's fell).
  const double ap_share = e.module_writes > 0 ? e.module_writes_ap / e.module_writes : 0.0;
  e.module_reads += e.module_resets;
  e.module_reads_ap += e.module_resets * ap_share;
  e.module_resets *= ap_share;
  return e;
}

double pass_latency_ns(const LayerMapping& m, std::int64_t modules, const EventCounts& pass, const Technology& t) {
  if (!m.on_crossbar) {
    return std::ceil(pass.digital_macs / t.digital.mac_lanes) * t.digital.mac_ns;
  }
  double modules_ns = 0;
  if (modules > 0) {
    const double write_rounds = std::ceil(pass.module_writes / modules);
    const double read_rounds = std::ceil(pass.module_reads / modules);
    // A conditional reset reads its module before the reset.
    const double check_ns = t.module.reset == ResetPolicy::conditional ? t.module.read_ns : 0.0;
    modules_ns = write_rounds * (check_ns + t.module.reset_ns + t.module.write_ns) + read_rounds * t.module.read_ns;
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

AreaBreakdown layer_area(const LayerMapping& m, std::int64_t modules, const Technology& t, const CrossbarParams& crossbar,
                         DropoutKind scheme) {
  AreaBreakdown a;
  a.modules_um2 = modules * (t.module.area_um2 + t.module.driver_area_um2 + t.module.trim_dac_area_um2());
  if (!m.on_crossbar) return a;
  const double tiles = static_cast<double>(m.row_tiles) * m.col_tiles;
  // Row decoders, one per tile, and a routing track along each module's fan-out wire.
  const int gated = gated_rows_per_tile(m, scheme);
  const double tiles_crossed = scheme == DropoutKind::layer ? m.row_tiles : 1.0;
  const double wire_um =
      gated > 0 ? m.col_tiles * (tiles_crossed * t.wire.tile_route_um + gated * t.wire.row_pitch_um) : 0.0;
  a.peripherals_um2 = tiles * t.decoder.area_um2 + static_cast<double>(modules) * wire_um * t.wire.track_pitch_um;
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

namespace {
// module_rates once per distinct p (a network file may give every layer its own; each call
// simulates a population of modules).
class RatesByP {
 public:
  explicit RatesByP(const HardwareConfig& hw) : hw_(hw) {}
  const ModuleRates& operator()(double p) {
    auto it = rates_.find(p);
    if (it == rates_.end()) it = rates_.emplace(p, module_rates(hw_, p)).first;
    return it->second;
  }

 private:
  const HardwareConfig& hw_;
  std::map<double, ModuleRates> rates_;
};
}  // namespace

std::vector<EventCounts> expected_ledger(const ModelSpec& spec, const HardwareConfig& hw, int samples,
                                         std::uint64_t images, bool dropout) {
  const bool stochastic = dropout && spec.has_dropout();
  std::vector<EventCounts> out;
  RatesByP rates(hw);
  for (const LayerMapping& m : map_layers(spec, hw.crossbar)) {
    // Each site with its own kind and rate (a network file may give a layer its own).
    const DropoutKind scheme = stochastic && m.dropout ? m.dropout_kind : DropoutKind::none;
    const EventCounts pass = expected_pass_events(m, scheme, rates(m.p), hw.dropout_module.element_masks);
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
    EventCounts counts = EventCounts::from(events);
    if (tech.module.reset == ResetPolicy::conditional) counts = conditional_reset_events(counts);
    priced.layers.push_back(price_events(counts, tech));
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

double ModuleAccounting::element_pj() const {
  return element.module_resets * reset_pj + element.module_writes * write_pj + element.module_reads * read_fj * 1e-3;
}

double ModuleAccounting::spatial_pj() const {
  return spatial.module_resets * reset_pj + spatial.module_writes * write_pj + spatial.module_reads * read_fj * 1e-3;
}

double ModuleAccounting::ratio() const { return spatial_pj() > 0 ? element_pj() / spatial_pj() : 0.0; }

namespace {

// The ways of pricing a module's reset, write and read that a reader may hold: this technology's
// own first, then the supply-referred convention at other supplies, the MTJ's dissipation alone,
// the earlier fixed figures, conditional reset, NVSim's current-mode formulas and a 0.25 V read.
std::vector<ModuleAccounting> module_accountings(const CostReport& r, const EventCounts& element_always,
                                                 const EventCounts& spatial_always,
                                                 const EventCounts& element_conditional,
                                                 const EventCounts& spatial_conditional) {
  const Technology& t = r.tech;
  const HardwareConfig& hw = r.hw;
  const double v_read = hw.crossbar.read_voltage_v, vdd = t.supply.vdd_v;
  const ModuleTech& mod = t.module;
  std::vector<ModuleAccounting> out;
  const auto add = [&](std::string name, std::string basis, double supply_v, double read_v, double reset_pj,
                       double write_pj, double read_fj, bool conditional) {
    ModuleAccounting a;
    a.name = std::move(name);
    a.basis = std::move(basis);
    a.vdd_v = supply_v;
    a.read_v = read_v;
    a.reset_pj = reset_pj;
    a.write_pj = write_pj;
    a.read_fj = read_fj;
    a.conditional_reset = conditional;
    a.element = conditional ? element_conditional : element_always;
    a.spatial = conditional ? spatial_conditional : spatial_always;
    out.push_back(std::move(a));
  };
  // V [V] x I [uA] x t [ns] = fJ.
  const auto supply_referred = [&](std::string name, double supply_v, double read_v, bool conditional) {
    const DeviceEnergies d = device_energies(hw, t.p, read_v, mod.read_ns);
    const double sense_fj = t.sense.capacitance_ff * supply_v * supply_v;
    const std::string basis = fmt::format(
        "E_rst = {0:g} V x {1:.2f} uA x {2:g} ns; E_w = {0:g} V x {3:.2f} uA x {4:g} ns; E_rd = {0:g} V x {5:.2f} uA x "
        "{6:g} ns + sense {7:g} fF x ({0:g} V)^2{8}{9}",
        supply_v, d.reset_current_ua, mod.reset_ns, d.write_current_ua, mod.write_ns, d.read_current_ua, mod.read_ns,
        t.sense.capacitance_ff, read_v != v_read ? fmt::format(" (read at {:g} V: P-state current {:.1f} uA, {:.2f} Ic0)",
                                                               read_v, read_v / (d.r_p_ohm + hw.crossbar.access_resistance_ohm) * 1e6,
                                                               read_v / (d.r_p_ohm + hw.crossbar.access_resistance_ohm) * 1e6 / hw.mtj.ic0_ua)
                                               : "",
        conditional ? "; conditional: N_rst -> p N_rst, N_rd -> N_rd + N_rst" : "");
    add(std::move(name), basis, supply_v, read_v, supply_v * d.reset_current_ua * mod.reset_ns * 1e-3,
        supply_v * d.write_current_ua * mod.write_ns * 1e-3, supply_v * d.read_current_ua * mod.read_ns + sense_fj,
        conditional);
  };
  // The technology's own: its reads at the share of AP reads the modules give (module_rates),
  // as the schemes' bill prices them by state.
  const double ap = r.rates.p;
  add(fmt::format("this technology (V_DD = {:g} V, reset {})", vdd, name_of(mod.reset)),
      fmt::format("the technology's module.reset_pj, write_pj, and (1 - p) read_p_fj + p read_ap_fj at the modules' "
                  "p = {:.9g} (module_rates): V_DD x I x t from the hardware config, the read with its sense decision "
                  "({:g} fJ){}",
                  ap, t.sense.decision_fj,
                  mod.reset == ResetPolicy::conditional ? "; conditional: N_rst -> p N_rst, N_rd -> N_rd + N_rst" : ""),
      vdd, v_read, mod.reset_pj, mod.write_pj, (1.0 - ap) * mod.read_p_fj + ap * mod.read_ap_fj,
      mod.reset == ResetPolicy::conditional);
  supply_referred("supply-referred at 0.8 V", 0.8, v_read, false);
  supply_referred("supply-referred at 1.0 V", 1.0, v_read, false);
  add("MTJ dissipation only",
      fmt::format("the MTJ's own parts: E_rst = I^2 R t = {:.2f} fJ, E_w = I^2 R_P t = {:.2f} fJ, E_rd = V^2 G t = "
                  "{:.3f} fJ (module.*_mtj_fj; no driver, no sense amplifier)",
                  mod.reset_mtj_fj, mod.write_mtj_fj, mod.read_mtj_fj),
      0.0, v_read, mod.reset_mtj_fj * 1e-3, mod.write_mtj_fj * 1e-3, mod.read_mtj_fj, false);
  {
    // The earlier fixed figures: 0.1 pJ per reset and per write (about 0.5 V x I x t, with the
    // 2 ns reset they assumed), a read as the MTJ dissipation of the mean crossbar cell,
    // V_read^2 G t, with a 5 fJ sense decision.
    constexpr double kEarlierResetNs = 2.0;
    const DeviceEnergies d = device_energies(hw, t.p, v_read, mod.read_ns);
    const double read_fj = v_read * v_read * d.cell_conductance_s * mod.read_ns * 1e6 + 5.0;
    add("earlier figures (writes ~0.5 V x I x t, reads V_read^2 G t)",
        fmt::format("E_rst = E_w = 0.1 pJ (0.5 V x {:.2f} uA x {:g} ns, the reset they assumed, = {:.1f} fJ; 0.5 V x "
                    "{:.2f} uA x {:g} ns = {:.1f} fJ); E_rd = ({:g} V)^2 x {:.1f} uS x {:g} ns + 5 fJ sense",
                    d.reset_current_ua, kEarlierResetNs, 0.5 * d.reset_current_ua * kEarlierResetNs, d.write_current_ua,
                    mod.write_ns, 0.5 * d.write_current_ua * mod.write_ns, v_read, d.cell_conductance_s * 1e6,
                    mod.read_ns),
        0.5, v_read, 0.1, 0.1, read_fj, false);
  }
  supply_referred(fmt::format("conditional reset (V_DD = {:g} V)", vdd), vdd, v_read, true);
  {
    // NVSim's current-mode cell write, E = V_DD I t (MemCell::CalculateWriteEnergy, no write voltage
    // given), at its 45 nm node's 1.0 V; its cell read counts the reference cell too: 2 V^2 G t.
    const double nv = 1.0;
    const DeviceEnergies d = device_energies(hw, t.p, v_read, mod.read_ns);
    const double sense_fj = t.sense.capacitance_ff * nv * nv;
    add("NVSim's formulas (writes V_DD I t at 1.0 V, reads 2 V^2 G t)",
        fmt::format("E_rst = 1.0 V x {:.2f} uA x {:g} ns; E_w = 1.0 V x {:.2f} uA x {:g} ns; E_rd = 2 x {:.3f} fJ "
                    "(cell and reference cell) + sense {:g} fF x (1.0 V)^2",
                    d.reset_current_ua, mod.reset_ns, d.write_current_ua, mod.write_ns, d.read_mtj_fj,
                    t.sense.capacitance_ff),
        nv, v_read, nv * d.reset_current_ua * mod.reset_ns * 1e-3, nv * d.write_current_ua * mod.write_ns * 1e-3,
        2.0 * d.read_mtj_fj + sense_fj, false);
  }
  supply_referred(fmt::format("0.25 V read (V_DD = {:g} V)", vdd), vdd, 0.25, false);
  return out;
}

}  // namespace

double priced_p(const ModelSpec& spec, double p) { return p > 0 ? p : (spec.p > 0 ? spec.p : ModelSpec{}.p); }

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
  r.p = priced_p(spec, p);
  r.rates = module_rates(hw, r.p);
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
  RatesByP rates(hw);

  // Module events per inference of element and spatial, with every module reset and with
  // conditional resets: the accountings' counts.
  EventCounts element_always, element_conditional, spatial_always, spatial_conditional;
  for (DropoutKind s : kDropoutKinds) {
    SchemeCost c;
    c.scheme = s;
    c.runs = s == DropoutKind::none ? 1 : samples;
    const std::vector<LayerMapping>& mapping = s == DropoutKind::none ? plain : r.mapping;
    for (const LayerMapping& m : mapping) {
      LayerCost l;
      l.modules = dropout_modules(m, s, hw.dropout_module.element_masks);
      // At the site's rate: --p (or the model's), or the layer's own from a network file.
      const double site_p = m.dropout ? m.p : r.p;
      const EventCounts always = expected_pass_events(m, s, site_p == r.p ? r.rates : rates(site_p),
                                                      hw.dropout_module.element_masks);
      const EventCounts conditional = conditional_reset_events(always);
      l.pass = tech.module.reset == ResetPolicy::conditional ? conditional : always;
      const int runs = m.per_sample ? c.runs : 1;
      if (s == DropoutKind::element) {
        element_always += always.scaled(runs);
        element_conditional += conditional.scaled(runs);
      } else if (s == DropoutKind::spatial) {
        spatial_always += always.scaled(runs);
        spatial_conditional += conditional.scaled(runs);
      }
      l.inference = l.pass.scaled(runs);
      l.pass_energy = price_events(l.pass, tech, fanout_fj_per_read(m, s, tech));
      l.energy = l.pass_energy.scaled(runs);
      const double pass_ns = pass_latency_ns(m, l.modules, always, tech);
      l.latency_ns = pass_ns * runs;
      l.area = layer_area(m, l.modules, tech, hw.crossbar, s);
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
  r.accountings = module_accountings(r, element_always, spatial_always, element_conditional, spatial_conditional);
  return r;
}

CostReport run_cost(const CostOptions& o) {
  const HardwareConfig hw = HardwareConfig::load(o.hw);
  ModelSpec spec = o.topology ? *o.topology : load_model_ir(o.model_ir).spec;
  if (!o.dropout_layers.empty()) spec.dropout_layers = o.dropout_layers;
  // The modules' write current, and so the energies derived from it, follow the drop probability.
  const double p = priced_p(spec, o.p);
  const Technology tech = Technology::load(o.tech, hw, p > 0 && p < 1 ? p : ModelSpec{}.p);
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
          {"peripherals", a.peripherals_um2},
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

std::vector<EventEnergy> event_energies(const Technology& t) {
  const double vdd = t.supply.vdd_v;
  const ModuleTech& m = t.module;
  std::vector<EventEnergy> out;
  out.push_back({"module reset", m.reset_current_ua, m.reset_ns, 0, m.reset_pj * 1e3, m.reset_mtj_fj,
                 "V_DD I t | I^2 ((1 - p) R_P + p R_AP) t"});
  out.push_back({"module write", m.write_current_ua, m.write_ns, 0, m.write_pj * 1e3, m.write_mtj_fj,
                 "V_DD I t | I^2 R_P t"});
  out.push_back({"module read", m.read_current_ua, m.read_ns, 0, m.read_fj, m.read_mtj_fj,
                 fmt::format("V_DD I t + sense {:.3g} fJ | V^2 G t, G weighted by state", t.sense.decision_fj)});
  // The cell current follows from the supply-referred figure: I = E / (V_DD t).
  out.push_back({"crossbar cell read", vdd > 0 && t.crossbar.cell_read_ns > 0 ? t.crossbar.cell_read_fj / (vdd * t.crossbar.cell_read_ns) : 0,
                 t.crossbar.cell_read_ns, 0, t.crossbar.cell_read_fj, t.crossbar.cell_read_mtj_fj,
                 "V_DD V_read G t | V_read^2 G t, G = (G_P + G_AP) / 2"});
  out.push_back({"word-line drive", 0, t.crossbar.wordline_ns, t.crossbar.wordline_capacitance_ff, t.crossbar.wordline_fj,
                 -1, "C V_DD^2"});
  out.push_back({"sense decision", 0, t.sense.decision_ns, t.sense.capacitance_ff, t.sense.decision_fj, -1, "C V_DD^2"});
  out.push_back({"decoder stage", 0, 0, t.decoder.capacitance_ff, t.decoder.fj, -1, "C V_DD^2 per word-line drive"});
  out.push_back({"trim DAC", m.trim_dac_bias_fraction * m.write_current_ua, m.write_ns, 0, m.trim_dac_fj, -1,
                 fmt::format("V_DD ({:g} I_w) t_w per write, {}-bit DAC", m.trim_dac_bias_fraction, m.trim_dac_bits)});
  out.push_back({"ADC conversion", 0, t.adc.conversion_ns, 0, t.adc.conversion_pj * 1e3, -1,
                 "published supply energy (ISAAC)"});
  out.push_back({"digital add", 0, t.digital.accumulate_ns, 0, t.digital.accumulate_pj * 1e3, -1,
                 "published supply energy (Horowitz, 45 nm, 0.9 V)"});
  return out;
}

nlohmann::json energy_json(const EnergyBreakdown& e) {
  return {{"modules", e.modules_pj},
          {"crossbar", e.crossbar_pj},
          {"sense_adc", e.sense_adc_pj},
          {"digital", e.digital_pj},
          {"peripherals", e.peripherals_pj},
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

  out += fmt::format("{:<8} {:>7} | {:>10} {:>10} {:>10} {:>10} {:>11} {:>10} | {:>12} | {:>10} {:>10}\n", "scheme",
                     "modules", "modules", "crossbar", "sense/ADC", "digital", "peripherals", "total nJ", "latency us",
                     "area mm2", "modules mm2");
  for (const SchemeCost* c : {&no, &el, &sp, &ly}) {
    const EnergyBreakdown& e = c->total.energy;
    out += fmt::format(
        "{:<8} {:>7} | {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f} {:>11.3f} {:>10.3f} | {:>12.2f} | {:>10.4f} {:>10.4f}\n",
        to_string(c->scheme), c->total.modules, e.modules_pj * 1e-3, e.crossbar_pj * 1e-3, e.sense_adc_pj * 1e-3,
        e.digital_pj * 1e-3, e.peripherals_pj * 1e-3, e.total_pj() * 1e-3, c->total.latency_ns * 1e-3,
        c->total.area.total_um2() * 1e-6, c->total.area.modules_um2 * 1e-6);
  }
  out += fmt::format("\nelement / spatial: modules {}, dropout-module energy {}, total energy {:.2f}x, "
                     "latency {:.2f}x\n",
                     ratio_text(r.modules_element_over_spatial()), ratio_text(r.dropout_energy_element_over_spatial()),
                     ratio(el.total.energy.total_pj(), sp.total.energy.total_pj()),
                     ratio(el.total.latency_ns, sp.total.latency_ns));

  out += fmt::format("\nper-event energy: what the event draws from the supply (V_DD = {:g} V), the MTJ's own dissipation "
                     "a part of it\n",
                     r.tech.supply.vdd_v);
  out += fmt::format("{:<20} {:>10} {:>8} {:>9} {:>12} {:>10}  {}\n", "event", "I uA", "t ns", "C fF", "supply fJ",
                     "MTJ fJ", "supply | MTJ");
  for (const EventEnergy& e : event_energies(r.tech)) {
    out += fmt::format("{:<20} {:>10} {:>8} {:>9} {:>12.3f} {:>10}  {}\n", e.event,
                       e.current_ua > 0 ? fmt::format("{:.2f}", e.current_ua) : "-",
                       e.time_ns > 0 ? fmt::format("{:g}", e.time_ns) : "-",
                       e.capacitance_ff > 0 ? fmt::format("{:.3g}", e.capacitance_ff) : "-", e.energy_fj,
                       e.mtj_fj >= 0 ? fmt::format("{:.3f}", e.mtj_fj) : "-", e.formula);
  }

  out += fmt::format("\nelement / spatial dropout-module energy under each accounting (Spatial-SpinDrop, Ahmed et al., "
                     "IEEE TNANO 2024: {:.2f}x)\n",
                     kPaperElementOverSpatial);
  out += "  one K x K convolution over W windows: K^2 W (E_rst + E_w + E_rd) / (E_rst + E_w + W E_rd); the network: "
         "(N_rst E_rst + N_w E_w + N_rd E_rd) element / the same spatial\n";
  const auto counts = [](const EventCounts& e) {
    return fmt::format("N_rst {:.6g}, N_w {:.6g}, N_rd {:.6g}", e.module_resets, e.module_writes, e.module_reads);
  };
  for (const bool conditional : {false, true}) {
    for (const ModuleAccounting& x : r.accountings) {
      if (x.conditional_reset != conditional) continue;
      out += fmt::format("  events per inference, {}: element {}; spatial {}\n",
                         conditional ? "conditional reset (N_rst -> p N_rst, N_rd -> N_rd + N_rst)" : "every module reset",
                         counts(x.element), counts(x.spatial));
      break;
    }
  }
  out += fmt::format("{:<62} {:>9} {:>9} {:>9} {:>11} {:>11} {:>8}\n", "accounting", "E_rst pJ", "E_w pJ", "E_rd fJ",
                     "element nJ", "spatial nJ", "el/sp");
  for (const ModuleAccounting& a : r.accountings) {
    out += fmt::format("{:<62} {:>9.4f} {:>9.4f} {:>9.3f} {:>11.3f} {:>11.3f} {:>8}\n    {}\n", a.name, a.reset_pj,
                       a.write_pj, a.read_fj, a.element_pj() * 1e-3, a.spatial_pj() * 1e-3, ratio_text(a.ratio()),
                       a.basis);
  }
  out += fmt::format("{:<62} {:>9} {:>9} {:>9} {:>11} {:>11} {:>7.2f}x\n", "paper (Spatial-SpinDrop)", "", "", "", "",
                     "", kPaperElementOverSpatial);
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
  nlohmann::json events = nlohmann::json::array();
  for (const EventEnergy& e : event_energies(r.tech)) {
    nlohmann::json j = {{"event", e.event}, {"supply_v", r.tech.supply.vdd_v}, {"energy_fj", e.energy_fj},
                        {"formula", e.formula}};
    if (e.current_ua > 0) j["current_ua"] = e.current_ua;
    if (e.time_ns > 0) j["time_ns"] = e.time_ns;
    if (e.capacitance_ff > 0) j["capacitance_ff"] = e.capacitance_ff;
    if (e.mtj_fj >= 0) j["mtj_fj"] = e.mtj_fj;
    events.push_back(j);
  }
  nlohmann::json accountings = nlohmann::json::array();
  const auto module_events = [](const EventCounts& e) {
    return nlohmann::json{{"module_resets", e.module_resets}, {"module_writes", e.module_writes},
                          {"module_reads", e.module_reads}};
  };
  for (const ModuleAccounting& a : r.accountings) {
    accountings.push_back({{"name", a.name},
                           {"basis", a.basis},
                           {"vdd_v", a.vdd_v},
                           {"read_v", a.read_v},
                           {"reset_pj", a.reset_pj},
                           {"write_pj", a.write_pj},
                           {"read_fj", a.read_fj},
                           {"conditional_reset", a.conditional_reset},
                           {"element_events", module_events(a.element)},
                           {"spatial_events", module_events(a.spatial)},
                           {"element_pj", a.element_pj()},
                           {"spatial_pj", a.spatial_pj()},
                           {"ratio", ratio_json(a.ratio())}});
  }
  return {{"model", r.spec},
          {"untrained", r.untrained},
          {"event_energies", events},
          {"accountings", accountings},
          {"paper_element_over_spatial", kPaperElementOverSpatial},
          {"p", r.p},
          {"module_rates",
           {{"drop_probability", r.rates.p},
            {"read_disturb", r.rates.read_disturb},
            {"source",
             fmt::format("drop_probability: the mean over {} modules (chip seed 0) of what a write at p leaves in AP "
                         "under hw (trim, DAC step, temperature, noise, failed resets, stuck modules); a module read "
                         "L times after it is in AP for sum_(j=1..L) (1 - read_disturb)^j of them",
                         kRateModules)}}},
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
