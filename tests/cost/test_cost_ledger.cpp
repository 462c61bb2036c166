// The cost model's analytic counts against the ledger the chip simulator fills on a full Monte
// Carlo run: every deterministic count equal, word-line drives and cell reads within the spread
// of the dropout masks around their expectation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "cost/cost_model.h"
#include "data/image_set.h"
#include "hw/chip.h"
#include "model/model_ir.h"
#include "random_networks.h"

using namespace spinbayes;

namespace {

struct Case {
  std::string name;
  std::string architecture;
  DropoutKind kind;
  ElementMasks element_masks;
};

}  // namespace

TEST(CostLedger, AnalyticCountsAgreeWithTheChipLedger) {
  const int samples = 8, images = 6;
  for (const Case& c : {Case{"spatial", "vgg-small", DropoutKind::spatial, ElementMasks::per_window},
                        Case{"element-per-window", "vgg-small", DropoutKind::element, ElementMasks::per_window},
                        Case{"element-per-element", "lenet", DropoutKind::element, ElementMasks::per_element},
                        Case{"none", "lenet", DropoutKind::none, ElementMasks::per_window},
                        Case{"resnet20 spatial", "resnet20", DropoutKind::spatial, ElementMasks::per_window},
                        Case{"resnet18 element", "resnet18", DropoutKind::element, ElementMasks::per_element},
                        Case{"residual file", "custom", DropoutKind::spatial, ElementMasks::per_window},
                        Case{"layers' own sites", "own", DropoutKind::spatial, ElementMasks::per_window},
                        Case{"layers' own sites only", "own", DropoutKind::none, ElementMasks::per_element}}) {
    SCOPED_TRACE(c.name);
    ModelSpec spec = c.architecture == "custom" ? residual_network_spec(c.kind)
                     : c.architecture == "own"  ? own_dropout_spec(c.kind)
                                                : ModelSpec{};
    spec.architecture = c.architecture == "own" ? "custom" : c.architecture;
    spec.width = spec.architecture == "custom" ? 0 : c.architecture == "resnet20" ? 4 : 8;
    spec.dropout = c.kind;
    spec.p = 0.2;
    HardwareConfig hw = HardwareConfig::ideal();
    hw.dropout_module.element_masks = c.element_masks;
    hw.crossbar.tile_rows = 64;  // several row tiles: ADC conversions and digital accumulation too
    hw.crossbar.tile_cols = 8;   // several column tiles
    const Chip chip(spread_model_ir(spec, 3), hw, 11);
    Ledger ledger;
    chip.predict(noise_images(images, 5), samples, 17, spec.has_dropout(), &ledger);
    const std::vector<EventCounts> expected = expected_ledger(spec, hw, samples, images);
    const std::vector<LayerMapping> mapping = map_layers(spec, hw.crossbar);
    ASSERT_EQ(ledger.layers.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      SCOPED_TRACE(mapping[i].name);
      const LayerEvents& got = ledger.layers[i];
      const EventCounts& want = expected[i];
      EXPECT_EQ(static_cast<double>(got.module_resets), want.module_resets);
      EXPECT_EQ(static_cast<double>(got.module_writes), want.module_writes);
      EXPECT_EQ(static_cast<double>(got.module_reads), want.module_reads);
      EXPECT_EQ(static_cast<double>(got.sense_decisions), want.sense_decisions);
      EXPECT_EQ(static_cast<double>(got.adc_conversions), want.adc_conversions);
      EXPECT_EQ(static_cast<double>(got.digital_accumulates), want.digital_accumulates);
      EXPECT_EQ(static_cast<double>(got.digital_macs), want.digital_macs);
      // Driven rows: a sum of independent keep bits, each gating `group` rows summed over windows
      // (a spatial bit gates its channel's in-map rows; an element bit one row of one window, or
      // one input element's taps). Six standard deviations of that sum over all passes.
      const LayerMapping& m = mapping[i];
      const double passes = static_cast<double>(images) * (m.per_sample && m.dropout ? samples : 1);
      double sigma_rows = 0;
      if (m.dropout) {
        const double bits = m.dropout_kind == DropoutKind::spatial && !m.linear ? m.in_channels
                            : c.element_masks == ElementMasks::per_element || m.linear
                                ? static_cast<double>(m.in_channels) * m.in_h * m.in_w
                                : static_cast<double>(m.in_map_rows);
        const double group = static_cast<double>(m.in_map_rows) / bits;
        sigma_rows = std::sqrt(passes * bits * m.p * (1 - m.p)) * group;
      }
      EXPECT_NEAR(static_cast<double>(got.wordline_drives), want.wordline_drives, 6 * sigma_rows * m.col_tiles + 1e-9);
      EXPECT_NEAR(static_cast<double>(got.cell_reads), want.cell_reads, 6 * sigma_rows * m.cols + 1e-9);
      if (m.dropout) {
        EXPECT_NE(static_cast<double>(got.cell_reads), want.cell_reads);  // the masks were random
      }
    }
    // Priced, the two bills agree to the spread of the masks.
    const Technology tech = Technology::defaults(hw);
    EnergyBreakdown analytic;
    for (const EventCounts& e : expected) analytic += price_events(e, tech);
    const PricedLedger priced = price_ledger(ledger, tech);
    EXPECT_NEAR(priced.total.modules_pj, analytic.modules_pj, 1e-9 * analytic.modules_pj);
    EXPECT_NEAR(priced.total.crossbar_pj, analytic.crossbar_pj, 0.02 * analytic.crossbar_pj);
  }
}
