// The hardware cost model: dropout-module counts per scheme, event counts and energies of a small
// network recomputed by hand, the element/spatial ratios, priced ledgers, the technology file's
// errors (`spinbayes cost` end to end: tests/cli/test_cost_cli.cpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numbers>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "cost/cost_model.h"
#include "hw/dropout_module.h"
#include "cost/technology.h"
#include "hw/mapping.h"
#include "model/model_ir.h"
#include "model/model_spec.h"
#include "cost_fixtures.h"

using namespace spinbayes;
using namespace spinbayes::testing;
namespace fs = std::filesystem;

namespace {

// Round per-event figures, so that hand sums are easy to follow.
Technology round_technology() {
  Technology t;
  t.module.reset_pj = 1.0;
  t.module.write_pj = 2.0;
  t.module.read_fj = t.module.read_p_fj = t.module.read_ap_fj = 10.0;  // every read alike
  t.module.reset_ns = 3.0;
  t.module.write_ns = 7.0;
  t.module.read_ns = 0.5;
  t.module.area_um2 = 4.0;
  t.crossbar.cell_read_fj = 1.0;
  t.crossbar.wordline_fj = 100.0;
  t.crossbar.cell_read_ns = 2.0;
  t.crossbar.wordline_ns = 1.0;
  t.crossbar.cell_area_um2 = 0.5;
  t.sense.decision_fj = 5.0;
  t.sense.decision_ns = 0.25;
  t.sense.area_um2 = 3.0;
  t.adc.conversion_pj = 3.0;
  t.adc.conversion_ns = 0.125;
  t.adc.area_um2 = 1000.0;
  t.adc.columns_per_adc = 4;
  t.digital.accumulate_pj = 0.5;
  t.digital.accumulate_ns = 0.75;
  t.digital.mac_pj = 0.25;
  t.digital.mac_ns = 1.0;
  t.digital.mac_lanes = 16;
  t.supply.vdd_v = 1.0;
  t.module.driver_area_um2 = 1.0;
  t.module.trim_dac_bits = 2;  // 3 unit sources
  t.module.trim_dac_unit_area_um2 = 1.0;
  t.module.trim_dac_fj = 20.0;
  t.decoder.fj = 2.0;
  t.decoder.area_um2 = 10.0;
  t.wire.capacitance_ff_per_um = 0.5;
  t.wire.gate_ff = 1.0;
  t.wire.row_pitch_um = 1.0;
  t.wire.tile_route_um = 10.0;
  t.wire.track_pitch_um = 0.1;
  return t;
}

void expect_near_rel(double actual, double expected, const std::string& what) {
  EXPECT_NEAR(actual, expected, 1e-9 * std::max(1.0, std::abs(expected))) << what;
}

}  // namespace

// Acceptance 1: element dropout needs K*K times the modules of spatial dropout on every KxK
// convolution, and as many on every linear layer.
TEST(CostModules, KSquaredFewerForEveryConvEqualForLinear) {
  const HardwareConfig hw = HardwareConfig::defaults();
  for (const auto& [architecture, width] :
       std::vector<std::pair<std::string, int>>{{"vgg-small", 8}, {"vgg-small", 32}, {"lenet", 4}, {"lenet", 32},
                                                {"mlp", 64}}) {
    SCOPED_TRACE(architecture + " width " + std::to_string(width));
    const CostReport r = cost_report(spec_of(architecture, width), hw, Technology::defaults(hw), 10);
    const auto& el = r.scheme(DropoutKind::element);
    const auto& sp = r.scheme(DropoutKind::spatial);
    const auto& one = r.scheme(DropoutKind::layer);
    const auto& none = r.scheme(DropoutKind::none);
    int conv_sites = 0;
    for (std::size_t i = 0; i < r.mapping.size(); ++i) {
      const LayerMapping& m = r.mapping[i];
      SCOPED_TRACE(m.name);
      EXPECT_EQ(none.layers[i].modules, 0);
      if (!m.dropout) {
        EXPECT_EQ(el.layers[i].modules, 0);
        EXPECT_EQ(sp.layers[i].modules, 0);
        continue;
      }
      EXPECT_EQ(el.layers[i].modules, m.rows);  // one per crossbar row
      EXPECT_EQ(one.layers[i].modules, 1);
      if (m.linear) {
        EXPECT_EQ(sp.layers[i].modules, el.layers[i].modules);
        EXPECT_EQ(r.layer_modules_element_over_spatial(i), 1.0);
      } else {
        ++conv_sites;
        EXPECT_EQ(sp.layers[i].modules, m.in_channels);  // one per input channel
        EXPECT_EQ(el.layers[i].modules, m.kernel * m.kernel * sp.layers[i].modules);
        EXPECT_EQ(r.layer_modules_element_over_spatial(i), m.kernel * m.kernel);
      }
    }
    if (architecture != "mlp") {
      EXPECT_GT(conv_sites, 0);
    }
  }
}

TEST(CostModules, NineTimesFewerOnVggSmallConvsTwentyFiveOnLenet) {
  const HardwareConfig hw = HardwareConfig::defaults();
  const CostReport vgg = cost_report(spec_of("vgg-small", 32), hw, Technology::defaults(hw), 10);
  const CostReport lenet = cost_report(spec_of("lenet", 32), hw, Technology::defaults(hw), 10);
  for (std::size_t i = 0; i < vgg.mapping.size(); ++i) {
    if (vgg.mapping[i].dropout && !vgg.mapping[i].linear) {
      EXPECT_EQ(vgg.layer_modules_element_over_spatial(i), 9.0);
    }
  }
  EXPECT_EQ(lenet.layer_modules_element_over_spatial(1), 25.0);  // conv2: 5x5
}

// Whole-network module ratios, recomputed from the layer list: sum of fan-ins over the sum of
// input channels (fan-in for linear layers) at the dropout sites.
TEST(CostModules, WholeNetworkRatiosForVggSmallAndLenet) {
  const HardwareConfig hw = HardwareConfig::defaults();
  for (const auto& [architecture, layers] : std::vector<std::pair<std::string, std::string>>{
           {"vgg-small", "all"}, {"lenet", "all"}, {"lenet", "last:2"}}) {
    SCOPED_TRACE(architecture + " " + layers);
    const ModelSpec spec = spec_of(architecture, 32, layers);
    double element = 0, spatial = 0;
    for (const LayerSpec& l : build_layers(spec)) {
      if (!l.dropout_before) continue;
      element += l.in_channels * l.kernel * l.kernel;
      spatial += l.in_channels;
    }
    const CostReport r = cost_report(spec, hw, Technology::defaults(hw), 10);
    EXPECT_EQ(r.scheme(DropoutKind::element).total.modules, element);
    EXPECT_EQ(r.scheme(DropoutKind::spatial).total.modules, spatial);
    EXPECT_DOUBLE_EQ(r.modules_element_over_spatial(), element / spatial);
    RecordProperty(architecture + "_" + layers + "_modules_ratio", std::to_string(r.modules_element_over_spatial()));
    if (layers == "last:2") {
      EXPECT_EQ(r.modules_element_over_spatial(), 1.0);  // lenet's last two layers are linear
    } else {
      // The linear classifier has as many modules under both, so the whole network is below 9x.
      EXPECT_GT(r.modules_element_over_spatial(), 1.0);
      EXPECT_LT(r.modules_element_over_spatial(), architecture == "lenet" ? 25.0 : 9.0);
    }
  }
}

// Acceptance 3: lenet of width 2 on 28x28, dropout on conv2, fc1 and fc2 (p = 0.25), T = 3,
// counted and priced by hand.
//   conv1  1 -> 2, 5x5, 28x28 -> 24x24, pooled 12x12: digital, 24*24*2*25 = 28800 MACs, once per image
//   conv2  2 -> 4, 5x5 on 12x12 -> 8x8: 64 windows, 50 rows, 4 columns, one tile, no padding
//   fc1    4*4*4 = 64 -> 32: one tile            fc2  32 -> 10: output, read through the ADC
TEST(CostHandNetwork, CountsEnergiesLatencyAndAreaByHand) {
  const ModelSpec spec = spec_of("lenet", 2, "all", DropoutKind::spatial, 0.25);
  const HardwareConfig hw = HardwareConfig::unwired();  // 128 x 128 tiles, per_window element masks
  const Technology t = round_technology();
  const int T = 3;
  const CostReport r = cost_report(spec, hw, t, T);
  ASSERT_EQ(r.mapping.size(), 4u);
  // The modules' drop probability: p, plus what the default's failed resets carry into the next
  // pass (module_rates).
  EXPECT_GT(r.rates.p, 0.25);
  EXPECT_LT(r.rates.p, 0.25 + 1e-5);
  const double keep = 1.0 - r.rates.p;

  // conv2's shape.
  const LayerMapping& c2 = r.mapping[1];
  EXPECT_EQ(c2.rows, 50);
  EXPECT_EQ(c2.cols, 4);
  EXPECT_EQ(c2.windows, 64);
  EXPECT_EQ(c2.in_map_rows, 50 * 64);  // no padding: every tap of every window is inside
  EXPECT_TRUE(c2.per_sample);
  EXPECT_FALSE(r.mapping[0].per_sample);

  // Events of one pass, element scheme (a module per row, fresh at every window).
  const auto& el = r.scheme(DropoutKind::element);
  const EventCounts& e2 = el.layers[1].pass;
  EXPECT_DOUBLE_EQ(e2.module_resets, 50.0 * 64);
  EXPECT_DOUBLE_EQ(e2.module_writes, 50.0 * 64);
  EXPECT_DOUBLE_EQ(e2.module_reads, 50.0 * 64);
  EXPECT_DOUBLE_EQ(e2.wordline_drives, 50.0 * 64 * keep * 1);  // one column tile
  EXPECT_DOUBLE_EQ(e2.cell_reads, 50.0 * 64 * keep * 4);
  EXPECT_DOUBLE_EQ(e2.sense_decisions, 64.0 * 4);
  EXPECT_DOUBLE_EQ(e2.adc_conversions, 0.0);
  // Spatial: two modules, reset and written once, read at each of the 64 windows.
  const auto& sp = r.scheme(DropoutKind::spatial);
  EXPECT_DOUBLE_EQ(sp.layers[1].pass.module_resets, 2.0);
  EXPECT_DOUBLE_EQ(sp.layers[1].pass.module_writes, 2.0);
  EXPECT_DOUBLE_EQ(sp.layers[1].pass.module_reads, 2.0 * 64);
  EXPECT_DOUBLE_EQ(sp.layers[1].pass.cell_reads, e2.cell_reads);  // same expected word lines
  // One module per layer.
  const auto& one = r.scheme(DropoutKind::layer);
  EXPECT_DOUBLE_EQ(one.layers[1].pass.module_writes, 1.0);
  EXPECT_DOUBLE_EQ(one.layers[1].pass.module_reads, 64.0);
  // Linear layers: 64 and 32 modules written and read once per pass under element and spatial.
  for (const auto* s : {&el, &sp}) {
    EXPECT_DOUBLE_EQ(s->layers[2].pass.module_writes, 64.0);
    EXPECT_DOUBLE_EQ(s->layers[2].pass.module_reads, 64.0);
    EXPECT_DOUBLE_EQ(s->layers[3].pass.module_resets, 32.0);
  }
  EXPECT_DOUBLE_EQ(el.layers[3].pass.adc_conversions, 10.0);  // output layer: every column, one row tile
  EXPECT_DOUBLE_EQ(el.layers[3].pass.digital_accumulates, 10.0);
  EXPECT_DOUBLE_EQ(el.layers[0].pass.digital_macs, 24.0 * 24 * 2 * 25);
  // No dropout: every in-map row driven.
  EXPECT_DOUBLE_EQ(r.scheme(DropoutKind::none).layers[1].pass.wordline_drives, 50.0 * 64);

  // Dropout-module energy per inference (pJ): T passes of the three dropout layers.
  const double write_path = 1.0 + 2.0;  // reset + write
  const double read = 0.010;
  const double el_modules = T * (50.0 * 64 * (write_path + read) + (64 + 32) * (write_path + read));
  const double sp_modules = T * (2 * write_path + 2.0 * 64 * read + (64 + 32) * (write_path + read));
  const double one_modules = T * 3 * (write_path + read) + T * (64 - 1) * read;  // conv2 reads 64 times
  expect_near_rel(el.total.energy.modules_pj, el_modules, "element module energy");
  expect_near_rel(sp.total.energy.modules_pj, sp_modules, "spatial module energy");
  expect_near_rel(one.total.energy.modules_pj, one_modules, "one-module-per-layer energy");
  expect_near_rel(r.dropout_energy_element_over_spatial(), el_modules / sp_modules, "ratio");
  expect_near_rel(r.layer_dropout_energy_element_over_spatial(1),
                  (50.0 * 64 * (write_path + read)) / (2 * write_path + 2.0 * 64 * read), "conv2 ratio");

  // The other components, spatial scheme, per inference.
  const double conv2_rows = 50.0 * 64 * keep, fc1_rows = 64 * keep, fc2_rows = 32 * keep;
  const double crossbar = T * ((conv2_rows + fc1_rows + fc2_rows) * 0.100 +  // word lines, one tile each
                               (conv2_rows * 4 + fc1_rows * 32 + fc2_rows * 10) * 0.001);
  const double sense_adc = T * ((64.0 * 4 + 32) * 0.005 + 10 * 3.0);
  const double digital = 24.0 * 24 * 2 * 25 * 0.25 + T * 10 * 0.5;
  expect_near_rel(sp.total.energy.crossbar_pj, crossbar, "crossbar");
  expect_near_rel(sp.total.energy.sense_adc_pj, sense_adc, "sense/ADC");
  expect_near_rel(sp.total.energy.digital_pj, digital, "digital");
  expect_near_rel(el.total.energy.crossbar_pj, crossbar, "element crossbar");
  // Peripherals (fJ): a trim-DAC bias per write (20), a decoder stage per word-line drive (2), and
  // per module read its fan-out wire at 1 V: a tile run (10 um x 0.5 fF/um) and per gated row a
  // driver enable (1 fF) and a row pitch of wire (0.5 fF): K^2 = 25 rows for a spatial conv2
  // module, one for an element module or a linear layer's.
  const double sp_fan = 5.0 + 25 * 1.5, one_row_fan = 5.0 + 1.5;
  const double sp_peripherals =
      T * ((2 + 64 + 32) * 20.0 + (conv2_rows + fc1_rows + fc2_rows) * 2.0 + 2.0 * 64 * sp_fan +
           (64 + 32) * one_row_fan) * 1e-3;
  const double el_peripherals =
      T * ((50.0 * 64 + 64 + 32) * 20.0 + (conv2_rows + fc1_rows + fc2_rows) * 2.0 +
           (50.0 * 64 + 64 + 32) * one_row_fan) * 1e-3;
  expect_near_rel(sp.total.energy.peripherals_pj, sp_peripherals, "spatial peripherals");
  expect_near_rel(el.total.energy.peripherals_pj, el_peripherals, "element peripherals");
  expect_near_rel(fanout_fj_per_read(c2, DropoutKind::spatial, t), sp_fan, "spatial fan-out");
  expect_near_rel(fanout_fj_per_read(c2, DropoutKind::element, t), one_row_fan, "element fan-out");

  // Latency of one inference: conv1 once, the rest T times.
  const double conv1_ns = std::ceil(28800.0 / 16) * 1.0;
  const double window_sense_ns = 1.0 + 2.0 + 0.25;
  const double sp_conv2_ns = (3.0 + 7.0) + 64 * 0.5 + 64 * window_sense_ns;
  const double el_conv2_ns = 64 * (3.0 + 7.0) + 64 * 0.5 + 64 * window_sense_ns;
  const double fc1_ns = (3.0 + 7.0) + 0.5 + window_sense_ns;
  const double fc2_ns = (3.0 + 7.0) + 0.5 + (1.0 + 2.0 + 4 * 0.125 + 1 * 0.75);  // 4 columns per ADC, in turn
  expect_near_rel(sp.total.latency_ns, conv1_ns + T * (sp_conv2_ns + fc1_ns + fc2_ns), "spatial latency");
  expect_near_rel(el.total.latency_ns, conv1_ns + T * (el_conv2_ns + fc1_ns + fc2_ns), "element latency");

  // Area: three one-tile layers of 128 x 128 cells, modules, sense amplifiers on conv2 and fc1,
  // ceil(10 / 4) = 3 ADCs on fc2.
  const double cells = 3 * 128.0 * 128 * 0.5;
  expect_near_rel(sp.total.area.cells_um2, cells, "cells");
  // A module: 4 (cell and sense amplifier) + 1 (driver) + 3 (a 2-bit trim DAC of unit sources).
  expect_near_rel(sp.total.area.modules_um2, (2 + 64 + 32) * 8.0, "spatial modules");
  expect_near_rel(el.total.area.modules_um2, (50 + 64 + 32) * 8.0, "element modules");
  // A decoder per tile, and a routing track (0.1 um) along each module's fan-out wire: a tile run
  // and a row pitch per gated row.
  expect_near_rel(sp.total.area.peripherals_um2, 3 * 10.0 + (2 * 35.0 + 64 * 11.0 + 32 * 11.0) * 0.1,
                  "spatial peripherals");
  expect_near_rel(sp.total.area.sense_um2, (4 + 32) * 3.0, "sense amplifiers");
  expect_near_rel(sp.total.area.adc_um2, 3 * 1000.0, "ADCs");
}

// Per_element element masks (the `ideal` preset): one module per input element, written once
// per pass, read at every tap inside the map.
// The taps landing on each input coordinate, by hand: a padded 3-tap kernel over 4 positions
// reads the borders twice and the inside three times; stride 2 without padding reads 0 1 2 3 4 as
// 1 1 2 1 1 (outputs at 0 and 2); the sums are the axis's taps inside the map.
TEST(CostHandNetwork, TapsLandingOnEachInputCoordinate) {
  EXPECT_EQ(taps_landing(4, 4, 3, 1, 1), (std::vector<std::int64_t>{2, 3, 3, 2}));
  EXPECT_EQ(taps_landing(2, 5, 3, 2, 0), (std::vector<std::int64_t>{1, 1, 2, 1, 1}));
  EXPECT_EQ(taps_landing(1, 3, 3, 1, 0), (std::vector<std::int64_t>{1, 1, 1}));
  // Per output position: the kernel offsets inside the map (the same pairs, so the same total).
  EXPECT_EQ(taps_inside(4, 4, 3, 1, 1), (std::vector<std::int64_t>{2, 3, 3, 2}));
  EXPECT_EQ(taps_inside(2, 5, 3, 2, 0), (std::vector<std::int64_t>{3, 3}));
  EXPECT_EQ(taps_inside(3, 5, 3, 2, 1), (std::vector<std::int64_t>{2, 3, 2}));
}

TEST(CostHandNetwork, PerElementMasksCountOneModulePerInputElement) {
  HardwareConfig hw = HardwareConfig::defaults();
  hw.dropout_module.element_masks = ElementMasks::per_element;
  const CostReport r = cost_report(spec_of("lenet", 2, "all", DropoutKind::element, 0.25), hw, round_technology(), 3);
  const auto& conv2 = r.scheme(DropoutKind::element).layers[1];
  EXPECT_EQ(conv2.modules, 2 * 12 * 12);
  EXPECT_DOUBLE_EQ(conv2.pass.module_writes, 2.0 * 12 * 12);
  EXPECT_DOUBLE_EQ(conv2.pass.module_reads, 50.0 * 64);
  EXPECT_EQ(r.scheme(DropoutKind::element).layers[2].modules, 64);  // linear: one per input
}

// The per-layer ratio of a KxK conv follows from the counts: element spends (reset + write + read)
// per row and window, spatial (reset + write) per channel and a read per channel and window:
// ratio = K^2 W (E_rst + E_w + E_r) / (E_rst + E_w + W E_r).
TEST(CostRatios, DropoutEnergyRatioFollowsCountsAndPerEventEnergies) {
  const HardwareConfig hw = HardwareConfig::defaults();
  for (const double read_fj : {5.0, 20.0, 200.0}) {
    Technology t = Technology::defaults(hw);
    t.module.read_fj = t.module.read_p_fj = t.module.read_ap_fj = read_fj;
    const CostReport r = cost_report(spec_of("vgg-small", 32), hw, t, 10);
    const double writes = t.module.reset_pj + t.module.write_pj, read = read_fj * 1e-3;
    double conv_el = 0, conv_sp = 0;
    for (std::size_t i = 0; i < r.mapping.size(); ++i) {
      const LayerMapping& m = r.mapping[i];
      if (!m.dropout || m.linear) continue;
      const double w = static_cast<double>(m.windows), k2 = m.kernel * m.kernel;
      expect_near_rel(r.layer_dropout_energy_element_over_spatial(i), k2 * w * (writes + read) / (writes + w * read),
                      m.name);
      conv_el += r.scheme(DropoutKind::element).layers[i].energy.modules_pj;
      conv_sp += r.scheme(DropoutKind::spatial).layers[i].energy.modules_pj;
    }
    // Never below the module ratio, and bounded by K^2 (1 + writes / read).
    EXPECT_GT(conv_el / conv_sp, 9.0);
    EXPECT_LT(conv_el / conv_sp, 9.0 * (1 + writes / read));
  }
  // Cheaper reads widen the gap.
  Technology cheap = Technology::defaults(hw), dear = cheap;
  cheap.module.read_fj = cheap.module.read_p_fj = cheap.module.read_ap_fj = 2.0;
  dear.module.read_fj = dear.module.read_p_fj = dear.module.read_ap_fj = 50.0;
  EXPECT_GT(cost_report(spec_of("vgg-small", 32), hw, cheap, 10).dropout_energy_element_over_spatial(),
            cost_report(spec_of("vgg-small", 32), hw, dear, 10).dropout_energy_element_over_spatial());
}

// The scheme comparison ignores what the model was trained with.
TEST(CostRatios, SameBillWhateverTheTrainedDropout) {
  const HardwareConfig hw = HardwareConfig::defaults();
  const Technology t = Technology::defaults(hw);
  const CostReport a = cost_report(spec_of("vgg-small", 16, "all", DropoutKind::spatial), hw, t, 7);
  const CostReport b = cost_report(spec_of("vgg-small", 16, "all", DropoutKind::element), hw, t, 7);
  const CostReport c = cost_report(spec_of("vgg-small", 16, "all", DropoutKind::none), hw, t, 7);
  for (const auto* r : {&b, &c}) {
    EXPECT_DOUBLE_EQ(r->dropout_energy_element_over_spatial(), a.dropout_energy_element_over_spatial());
    EXPECT_DOUBLE_EQ(r->modules_element_over_spatial(), a.modules_element_over_spatial());
  }
}

TEST(CostInference, EnergyGrowsLinearlyInSamplesPrefixOnce) {
  const HardwareConfig hw = HardwareConfig::defaults();
  const Technology t = Technology::defaults(hw);
  const CostReport r5 = cost_report(spec_of("vgg-small", 16), hw, t, 5);
  const CostReport r9 = cost_report(spec_of("vgg-small", 16), hw, t, 9);
  for (DropoutKind s : kDropoutKinds) {
    SCOPED_TRACE(to_string(s));
    const SchemeCost& a = r5.scheme(s);
    const SchemeCost& b = r9.scheme(s);
    expect_near_rel(a.total.energy.total_pj(), a.energy_at(5).total_pj(), "energy_at(T) is the reported total");
    expect_near_rel(b.total.energy.total_pj(), a.energy_at(9).total_pj(), "energy_at extrapolates");
    if (s == DropoutKind::none) {
      expect_near_rel(a.total.energy.total_pj(), b.total.energy.total_pj(), "no dropout: one pass");
    } else {
      // conv1 runs once per image; the rest T times.
      expect_near_rel(b.total.energy.total_pj() - a.total.energy.total_pj(), 4 * a.sample_energy.total_pj(), "slope");
      expect_near_rel(a.layers[0].energy.total_pj(), a.layers[0].pass_energy.total_pj(), "prefix once");
      expect_near_rel(a.layers[1].energy.total_pj(), 5 * a.layers[1].pass_energy.total_pj(), "per sample");
      EXPECT_GT(a.prefix_energy.digital_pj, 0.0);
    }
  }
}

// A simulator's ledger priced event by event: the same prices as the analytic counts, and without
// dropout the analytic counts are exact integers.
TEST(CostLedger, PricedLedgerMatchesAnalyticCountsWithoutDropout) {
  const ModelSpec spec = spec_of("vgg-small", 8, "all", DropoutKind::none);
  const HardwareConfig hw = HardwareConfig::defaults();
  const Technology t = round_technology();
  const std::uint64_t images = 3;
  const int samples = 4;
  const std::vector<EventCounts> expected = expected_ledger(spec, hw, samples, images);
  Ledger ledger;
  ledger.images = images;
  ledger.samples = samples;
  EnergyBreakdown analytic;
  for (const EventCounts& e : expected) {
    auto whole = [](double x) {
      EXPECT_EQ(x, std::floor(x));
      return static_cast<std::uint64_t>(x);
    };
    LayerEvents l;
    l.module_resets = whole(e.module_resets);
    l.module_writes = whole(e.module_writes);
    l.module_reads = whole(e.module_reads);
    l.wordline_drives = whole(e.wordline_drives);
    l.cell_reads = whole(e.cell_reads);
    l.sense_decisions = whole(e.sense_decisions);
    l.adc_conversions = whole(e.adc_conversions);
    l.digital_accumulates = whole(e.digital_accumulates);
    l.digital_macs = whole(e.digital_macs);
    ledger.layers.push_back(l);
    analytic += price_events(e, t);
  }
  const PricedLedger priced = price_ledger(ledger, t);
  ASSERT_EQ(priced.layers.size(), expected.size());
  expect_near_rel(priced.total.total_pj(), analytic.total_pj(), "total");
  expect_near_rel(priced.total.crossbar_pj, analytic.crossbar_pj, "crossbar");
  expect_near_rel(priced.per_image().total_pj(), analytic.total_pj() / images, "per image");
  EXPECT_EQ(priced.total.modules_pj, 0.0);
  // Without dropout every pass is the same: each layer runs once per image, whatever `samples`.
  const CostReport one = cost_report(spec, hw, t, 1);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    expect_near_rel(expected[i].cell_reads, one.scheme(DropoutKind::none).layers[i].pass.cell_reads * images,
                    "once per image");
  }
  // A dropout model run with dropout off counts the same.
  ModelSpec with_dropout = spec;
  with_dropout.dropout = DropoutKind::spatial;
  const std::vector<EventCounts> off = expected_ledger(with_dropout, hw, samples, images, /*dropout=*/false);
  expect_near_rel(off.back().adc_conversions, expected.back().adc_conversions, "dropout off");
  EXPECT_EQ(off[1].module_writes, 0.0);
  EXPECT_GT(expected_ledger(with_dropout, hw, samples, images)[1].module_writes, 0.0);
}

TEST(CostLedger, PricesEachComponent) {
  const Technology t = round_technology();
  Ledger ledger;
  ledger.images = 2;
  LayerEvents e;
  e.module_resets = 10;
  e.module_writes = 10;
  e.module_reads = 100;
  e.wordline_drives = 7;
  e.cell_reads = 1000;
  e.sense_decisions = 20;
  e.adc_conversions = 3;
  e.digital_accumulates = 3;
  e.digital_macs = 8;
  ledger.layers = {LayerEvents{}, e};
  const PricedLedger p = price_ledger(ledger, t);
  expect_near_rel(p.layers[1].modules_pj, 10 * 1.0 + 10 * 2.0 + 100 * 0.010, "modules");
  expect_near_rel(p.layers[1].crossbar_pj, 7 * 0.100 + 1000 * 0.001, "crossbar");
  expect_near_rel(p.layers[1].sense_adc_pj, 20 * 0.005 + 3 * 3.0, "sense/ADC");
  expect_near_rel(p.layers[1].digital_pj, 3 * 0.5 + 8 * 0.25, "digital");
  EXPECT_EQ(p.layers[0].total_pj(), 0.0);
  expect_near_rel(p.per_image().total_pj(), p.total.total_pj() / 2, "per image");
}

// The device-derived defaults: a driven cell draws V_read G from the supply for t, G the mean of
// the P and AP conductances at the read bias; its MTJs dissipate V_read^2 G t of it.
// The write priced is the current the modules are written with: set at the reference
// temperature, or at the operating one when the currents are compensated for it.
TEST(CostTechnology, WriteCurrentIsTheOneTheModulesAreSetTo) {
  for (const auto compensation : {TemperatureCompensation::none, TemperatureCompensation::per_temperature}) {
    HardwareConfig hw = HardwareConfig::defaults();
    hw.mtj.temperature_k = 330.0;
    hw.dropout_module.temperature_compensation = compensation;
    const double p = 0.1;
    const DropoutBank bank(hw, p, 1, 0, 0);
    EXPECT_DOUBLE_EQ(Technology::defaults(hw, p).module.write_current_ua, bank.write_current_ua());
  }
  HardwareConfig hot = HardwareConfig::defaults();
  hot.mtj.temperature_k = 330.0;
  HardwareConfig compensated = hot;
  compensated.dropout_module.temperature_compensation = TemperatureCompensation::per_temperature;
  // Ic0 and the barrier fall with temperature: the compensated current is lower.
  EXPECT_LT(Technology::defaults(compensated, 0.1).module.write_current_ua, Technology::defaults(hot, 0.1).module.write_current_ua);
}

TEST(CostTechnology, DefaultsDerivedFromTheHardware) {
  HardwareConfig hw = HardwareConfig::unwired();
  const double r = hw.mtj.diameter_nm * 1e-3 / 2;
  const double rp = hw.mtj.ra_ohm_um2 / (std::numbers::pi * r * r);
  const double v = hw.crossbar.read_voltage_v;
  const double rap = rp * (1 + hw.mtj.tmr / (1 + (v / hw.mtj.tmr_half_bias_v) * (v / hw.mtj.tmr_half_bias_v)));
  const Technology t = Technology::defaults(hw);
  const double g = 0.5 * (1 / rp + 1 / rap);
  expect_near_rel(t.crossbar.cell_read_fj, t.supply.vdd_v * v * g * t.crossbar.cell_read_ns * 1e6, "cell read");
  expect_near_rel(t.crossbar.cell_read_mtj_fj, v * v * g * t.crossbar.cell_read_ns * 1e6, "cell read, MTJ part");
  EXPECT_GT(t.crossbar.cell_read_mtj_fj, 1.0);  // 1-10 fJ per MTJ read
  EXPECT_LT(t.crossbar.cell_read_mtj_fj, 10.0);
  EXPECT_GT(t.module.read_fj, t.sense.decision_fj);  // the module's read includes its sense amplifier
  EXPECT_GT(t.module.write_pj * 1e3, t.module.read_fj);  // a write draws more than a read
  EXPECT_EQ(t.module.write_ns, hw.dropout_module.pulse_width_ns);
  EXPECT_EQ(t.module.reset_ns, hw.dropout_module.reset_pulse_ns);
  // Twice the read bias: more than twice the current, as TMR and with it R_AP fall with bias.
  hw.crossbar.read_voltage_v = 0.2;
  const double rap2 = rp * (1 + hw.mtj.tmr / (1 + (0.2 / hw.mtj.tmr_half_bias_v) * (0.2 / hw.mtj.tmr_half_bias_v)));
  expect_near_rel(Technology::defaults(hw).crossbar.cell_read_fj,
                  t.supply.vdd_v * 0.2 * 0.5 * (1 / rp + 1 / rap2) * t.crossbar.cell_read_ns * 1e6, "cell read at 0.2 V");
  EXPECT_GT(Technology::defaults(hw).crossbar.cell_read_fj, 2.0 * t.crossbar.cell_read_fj);
}

// A module read is priced by the state it finds: derived from the P and AP read currents, with
// read_fj their mean at p; a file that prices the read without its states prices both alike.
TEST(CostTechnology, ReadsArePricedByTheStateTheyFind) {
  const double p = 0.1;
  const Technology t = Technology::defaults(HardwareConfig::defaults(), p);
  const ModuleTech& m = t.module;
  const double vdd = t.supply.vdd_v, sense = t.sense.decision_fj;
  expect_near_rel(m.read_p_fj, vdd * m.read_p_current_ua * m.read_ns + sense, "P read");
  expect_near_rel(m.read_ap_fj, vdd * m.read_ap_current_ua * m.read_ns + sense, "AP read");
  expect_near_rel(m.read_fj, (1 - p) * m.read_p_fj + p * m.read_ap_fj, "the mean read");
  expect_near_rel(m.read_current_ua, (1 - p) * m.read_p_current_ua + p * m.read_ap_current_ua, "the mean current");
  // (R_AP(V) + R_acc) / (R_P + R_acc) = (9718 + 2000) / (3979 + 2000) = 1.96 at the default.
  EXPECT_GT(m.read_p_current_ua, 1.5 * m.read_ap_current_ua);
  EXPECT_LT(m.read_p_current_ua, 2.0 * m.read_ap_current_ua);
  const auto dir = fresh_dir("read-states");
  write_file(dir / "flat.json", "{\"module\": {\"read_fj\": 40}}");
  Technology flat = Technology::load((dir / "flat.json").string());
  EXPECT_EQ(flat.module.read_p_fj, 40.0);
  EXPECT_EQ(flat.module.read_ap_fj, 40.0);
  write_file(dir / "current.json", "{\"module\": {\"read_current_ua\": 30}}");
  const Technology current = Technology::load((dir / "current.json").string());
  expect_near_rel(current.module.read_fj, vdd * 30 * m.read_ns + sense, "from the given current");
  EXPECT_EQ(current.module.read_p_fj, current.module.read_fj);
  EXPECT_EQ(current.module.read_ap_fj, current.module.read_fj);
  write_file(dir / "ap.json", "{\"module\": {\"read_ap_current_ua\": 5}}");
  const Technology ap = Technology::load((dir / "ap.json").string());
  expect_near_rel(ap.module.read_ap_fj, vdd * 5 * m.read_ns + sense, "AP read from its current");
  EXPECT_EQ(ap.module.read_p_fj, m.read_p_fj);
  expect_near_rel(ap.module.read_fj, (1 - p) * m.read_p_fj + p * ap.module.read_ap_fj, "the mean of the states");
  // With a state given, a read_fj given too follows the states (one read price, never two), and
  // the whole commented template, edited in one state, reads back consistent.
  write_file(dir / "both.json", "{\"module\": {\"read_fj\": 10, \"read_p_fj\": 20}}");
  const Technology both = Technology::load((dir / "both.json").string());
  expect_near_rel(both.module.read_fj, (1 - p) * 20 + p * m.read_ap_fj, "read_fj from the states");
  Technology edited = Technology::defaults();
  edited.module.read_ap_fj = 500;
  write_file(dir / "template.json", edited.table().to_commented_json());
  const Technology reloaded = Technology::load((dir / "template.json").string());
  expect_near_rel(reloaded.module.read_fj, (1 - p) * m.read_p_fj + p * 500, "the template's read_fj");
  const CostReport r = cost_report(spec_of("vgg-small", 16, "all", DropoutKind::spatial, p), HardwareConfig::defaults(),
                                   reloaded, 20);
  expect_near_rel(r.accountings.front().ratio(), r.dropout_energy_element_over_spatial(), "one ratio");
  // A flat read (no state given) writes and reads back to the same prices.
  write_file(dir / "flat-template.json", flat.table().to_commented_json());
  const Technology flat_back = Technology::load((dir / "flat-template.json").string());
  EXPECT_EQ(flat_back.module.read_fj, 40.0);
  EXPECT_EQ(flat_back.module.read_p_fj, 40.0);
  EXPECT_EQ(flat_back.module.read_ap_fj, 40.0);
  fs::remove_all(dir);
}

// A p below what the device does with no write current has no write to price: refused as hw
// refuses it, not priced at a fallback current; a p that needs I >= Ic0 is priced at Ic0.
TEST(CostTechnology, APBelowTheZeroCurrentFloorIsRefused) {
  const HardwareConfig hw = HardwareConfig::defaults();
  try {
    Technology::defaults(hw, 1e-20);
    ADD_FAILURE() << "priced p = 1e-20";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("below what the device does with no write current"), std::string::npos)
        << e.what();
  }
  EXPECT_LT(Technology::defaults(hw, 1e-18).module.write_current_ua, 5.0);
  EXPECT_EQ(Technology::defaults(hw, 0.9999).module.write_current_ua, hw.mtj.ic0_ua);
}

TEST(CostTechnology, CommentedDefaultReadsBackToTheSameValues) {
  const auto dir = fresh_dir("roundtrip");
  Technology t = Technology::defaults();
  t.adc.conversion_pj = 0.75;
  t.digital.mac_lanes = 32;
  write_file(dir / "tech.json", t.table().to_commented_json());
  const Technology back = Technology::load((dir / "tech.json").string());
  EXPECT_EQ(back.adc.conversion_pj, 0.75);
  EXPECT_EQ(back.digital.mac_lanes, 32);
  EXPECT_EQ(back.crossbar.cell_read_fj, t.crossbar.cell_read_fj);
  EXPECT_EQ(back.module.area_um2, t.module.area_um2);
  // A partial file keeps the other defaults.
  write_file(dir / "partial.json", "{ // per-event energies\n \"module\": {\"write_pj\": 0.5} }");
  const Technology partial = Technology::load((dir / "partial.json").string());
  EXPECT_EQ(partial.module.write_pj, 0.5);
  EXPECT_EQ(partial.module.reset_pj, Technology::defaults().module.reset_pj);
  fs::remove_all(dir);
}

// Acceptance 5: negative or missing values, unknown keys and wrong types are one-line errors
// naming the key (and the file).
TEST(CostTechnology, BadFilesNameTheKey) {
  const auto dir = fresh_dir("tech-errors");
  struct Case {
    std::string name, text, key;
  };
  const std::vector<Case> cases = {
      {"negative", R"({"module": {"write_pj": -0.1}})", "module.write_pj"},
      {"negative-area", R"({"adc": {"area_um2": -5}})", "adc.area_um2"},
      {"missing-value", R"({"sense": {"decision_fj": null}})", "sense.decision_fj"},
      {"unknown-key", R"({"module": {"wirte_pj": 1.0}})", "module.wirte_pj"},
      {"unknown-section", R"({"memristor": {"read_fj": 1.0}})", "memristor"},
      {"wrong-type", R"({"adc": {"conversion_pj": "cheap"}})", "adc.conversion_pj"},
      {"wrong-integer", R"({"adc": {"columns_per_adc": 2.5}})", "adc.columns_per_adc"},
      {"zero-lanes", R"({"digital": {"mac_lanes": 0}})", "digital.mac_lanes"},
      {"negative-ap-read", R"({"module": {"read_ap_fj": -1}})", "module.read_ap_fj"},
      {"p-read-current-text", R"({"module": {"read_p_current_ua": "a"}})", "module.read_p_current_ua"},
      {"huge-p-read", R"({"module": {"read_p_fj": 1e300}})", "module.read_p_fj"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const auto path = dir / (c.name + ".json");
    write_file(path, c.text);
    try {
      Technology::load(path.string());
      ADD_FAILURE() << "accepted " << c.text;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(c.key), std::string::npos) << what;
      EXPECT_NE(what.find(path.string()), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
  EXPECT_THROW(Technology::load((dir / "absent.json").string()), Error);
  fs::remove_all(dir);
}
