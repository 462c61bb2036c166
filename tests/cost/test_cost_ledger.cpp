// The cost model's analytic counts against the ledger the chip simulator fills on a full Monte
// Carlo run: every deterministic count equal, word-line drives and cell reads within the spread
// of the dropout masks around their expectation.
#include <gtest/gtest.h>

#include <algorithm>
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
      // The modules the writes left in AP, and the reads that found them there: p of each
      // expected, within six standard deviations of the writes' Bernoulli sum (a write's state is
      // read up to `reads_per_write` times; an element module at most K^2 times).
      EXPECT_LE(got.module_writes_ap, got.module_writes);
      EXPECT_LE(got.module_reads_ap, got.module_reads);
      const double sigma_writes = std::sqrt(want.module_writes * m.p * (1 - m.p));
      const double reads_per_write =
          want.module_writes > 0 ? std::max(want.module_reads / want.module_writes, double(m.kernel * m.kernel)) : 0.0;
      EXPECT_NEAR(static_cast<double>(got.module_writes_ap), want.module_writes_ap, 6 * sigma_writes + 1e-9);
      EXPECT_NEAR(static_cast<double>(got.module_reads_ap), want.module_reads_ap,
                  6 * sigma_writes * reads_per_write + 1e-9);
      if (m.dropout) {
        EXPECT_GT(got.module_writes_ap, 0u);
        EXPECT_NE(static_cast<double>(got.module_reads_ap), want.module_reads_ap);  // as they fell
        // A spatial module is read at every window in the state its write left.
        if (m.dropout_kind == DropoutKind::spatial && !m.linear) {
          EXPECT_EQ(got.module_reads_ap, got.module_writes_ap * static_cast<std::uint64_t>(m.windows));
        }
      } else {
        EXPECT_EQ(got.module_writes_ap + got.module_reads_ap, 0u);
      }
    }
    // Priced, the two bills agree to the spread of the masks; the modules' part exactly where the
    // reads are priced by the state they found: the AP reads the run counted against p of them.
    const Technology tech = Technology::defaults(hw);
    ASSERT_LT(tech.module.read_ap_fj, tech.module.read_p_fj);  // an AP module draws less current
    EnergyBreakdown analytic;
    double ap_reads_off = 0;  // AP reads counted less those expected
    for (std::size_t i = 0; i < expected.size(); ++i) {
      analytic += price_events(expected[i], tech);
      ap_reads_off += static_cast<double>(ledger.layers[i].module_reads_ap) - expected[i].module_reads_ap;
    }
    const PricedLedger priced = price_ledger(ledger, tech);
    const double state_pj = ap_reads_off * (tech.module.read_ap_fj - tech.module.read_p_fj) * 1e-3;
    EXPECT_NEAR(priced.total.modules_pj, analytic.modules_pj + state_pj, 1e-9 * analytic.modules_pj);
    EXPECT_NEAR(priced.total.crossbar_pj, analytic.crossbar_pj, 0.02 * analytic.crossbar_pj);
  }
}

// Conditional reset on a simulated run resets the modules its writes left in AP, as they fell:
// at 340 K the default modules drop about half the time, not the p they were trimmed for, and
// the bill follows the run, not the technology's p.
TEST(CostLedger, ConditionalResetsAndReadsFollowTheModulesRealizedStates) {
  ModelSpec spec;
  spec.architecture = "vgg-small";
  spec.width = 8;
  spec.dropout = DropoutKind::spatial;
  spec.p = 0.1;
  HardwareConfig hw = HardwareConfig::defaults();
  hw.mtj.temperature_k = 340.0;
  const Chip chip(spread_model_ir(spec, 3), hw, 5);
  Ledger ledger;
  chip.predict(noise_images(4, 2), 6, 9, true, &ledger);
  const LayerEvents total = ledger.total();
  ASSERT_GT(total.module_writes, 0u);
  const double realized = static_cast<double>(total.module_writes_ap) / static_cast<double>(total.module_writes);
  EXPECT_GT(realized, 0.3);  // far above the p = 0.1 of the trim (hw prints the shift)
  Technology always = Technology::defaults(hw, spec.p), conditional = always;
  conditional.module.reset = ResetPolicy::conditional;
  const PricedLedger a = price_ledger(ledger, always), c = price_ledger(ledger, conditional);
  for (std::size_t i = 0; i < ledger.layers.size(); ++i) {
    const LayerEvents& e = ledger.layers[i];
    const auto n = [](std::uint64_t x) { return static_cast<double>(x); };
    // Always: every write reset; reads at the price of the state found.
    const double reads_pj =
        ((n(e.module_reads) - n(e.module_reads_ap)) * always.module.read_p_fj + n(e.module_reads_ap) * always.module.read_ap_fj) * 1e-3;
    EXPECT_NEAR(a.layers[i].modules_pj,
                n(e.module_resets) * always.module.reset_pj + n(e.module_writes) * always.module.write_pj + reads_pj,
                1e-9 * (1 + a.layers[i].modules_pj));
    // Conditional: a read before each write (finding the AP modules the last write left) and a
    // reset of those only.
    const double check_pj = ((n(e.module_writes) - n(e.module_writes_ap)) * always.module.read_p_fj +
                             n(e.module_writes_ap) * always.module.read_ap_fj) * 1e-3;
    EXPECT_NEAR(c.layers[i].modules_pj,
                n(e.module_writes_ap) * always.module.reset_pj + n(e.module_writes) * always.module.write_pj + reads_pj +
                    check_pj,
                1e-9 * (1 + c.layers[i].modules_pj));
  }
  // Priced at the technology's p the conditional resets would be about p / realized of these.
  EXPECT_GT(static_cast<double>(total.module_writes_ap), 3.0 * spec.p * static_cast<double>(total.module_writes));
}

// Under a temperature above the trim's, a DAC trim, failed resets and read disturb, the analytic
// counts follow what the modules do: with the chip's own modules' mean drop probability and the
// read disturb, every layer's AP writes, AP reads and driven rows match the ledger within the
// spread of the masks; and module_rates, the mean over a population of modules, agrees with the
// chip's modules within their spread, far from the p they were trimmed for.
TEST(CostLedger, AnalyticCountsFollowTheModulesUnderTemperatureAndReadDisturb) {
  const int samples = 8, images = 6;
  for (const Case& c : {Case{"spatial", "vgg-small", DropoutKind::spatial, ElementMasks::per_window},
                        Case{"element-per-window", "vgg-small", DropoutKind::element, ElementMasks::per_window},
                        Case{"element-per-element", "lenet", DropoutKind::element, ElementMasks::per_element}}) {
    SCOPED_TRACE(c.name);
    ModelSpec spec;
    spec.architecture = c.architecture;
    spec.width = 8;
    spec.dropout = c.kind;
    spec.p = 0.2;
    HardwareConfig hw = HardwareConfig::defaults();
    hw.dropout_module.element_masks = c.element_masks;
    hw.dropout_module.trim_dac_bits = 6;
    hw.mtj.temperature_k = 330.0;
    hw.faults.read_disturb = 0.02;
    const double q = hw.faults.read_disturb;
    const Chip chip(spread_model_ir(spec, 3), hw, 11);
    Ledger ledger;
    chip.predict(noise_images(images, 5), samples, 17, true, &ledger);
    const ModuleRates population = module_rates(hw, spec.p);
    EXPECT_GT(population.p, 1.3 * spec.p);  // the modules drop far more often than trimmed for
    EXPECT_EQ(population.read_disturb, q);
    const std::vector<LayerMapping> mapping = map_layers(spec, hw.crossbar);
    int checked = 0, disturbed = 0;
    for (std::size_t i = 0; i < mapping.size(); ++i) {
      const LayerMapping& m = mapping[i];
      if (!m.dropout || !m.on_crossbar) continue;
      SCOPED_TRACE(m.name);
      const DropoutBank& bank = chip.bank(static_cast<int>(i));
      ASSERT_GT(bank.size(), 0);
      double sum = 0.0, sum2 = 0.0;
      for (int k = 0; k < bank.size(); ++k) sum += bank.probability(k), sum2 += bank.probability(k) * bank.probability(k);
      const double own = sum / bank.size(), spread = std::sqrt(std::max(0.0, sum2 / bank.size() - own * own));
      EXPECT_NEAR(population.p, own, 6.0 * spread / std::sqrt(bank.size()) + 1e-3);
      const double passes = static_cast<double>(images) * (m.per_sample ? samples : 1);
      const EventCounts want = expected_pass_events(m, c.kind, ModuleRates{own, q}, c.element_masks).scaled(passes);
      const LayerEvents& got = ledger.layers[i];
      EXPECT_EQ(static_cast<double>(got.module_writes), want.module_writes);
      EXPECT_EQ(static_cast<double>(got.module_reads), want.module_reads);
      // A module's AP reads: min(F, L) with F geometric, L its reads; its variance below p E[F^2]
      // = p (1 - q)(2 - q) / q^2, or p L^2; each AP read leaves `gated` rows undriven.
      const double reads_per_write = want.module_reads / want.module_writes;
      const double second = std::min(reads_per_write * reads_per_write, (1 - q) * (2 - q) / (q * q));
      const double gated = c.kind == DropoutKind::spatial && !m.linear ? m.kernel * m.kernel : 1.0;
      const double sigma_reads = std::sqrt(want.module_writes * own * second);
      EXPECT_NEAR(static_cast<double>(got.module_writes_ap), want.module_writes_ap,
                  6 * std::sqrt(want.module_writes * own) + 1e-9);
      EXPECT_NEAR(static_cast<double>(got.module_reads_ap), want.module_reads_ap, 6 * sigma_reads + 1e-9);
      EXPECT_NEAR(static_cast<double>(got.wordline_drives), want.wordline_drives, 6 * sigma_reads * gated * m.col_tiles + 1e-9);
      // Read disturb matters where a module is read many times: without it the counts would be far off.
      if (reads_per_write >= 9) {
        const EventCounts undisturbed = expected_pass_events(m, c.kind, ModuleRates{own, 0.0}, c.element_masks).scaled(passes);
        EXPECT_GT(std::fabs(undisturbed.module_reads_ap - want.module_reads_ap), 6 * sigma_reads);
        ++disturbed;
      }
      ++checked;
    }
    EXPECT_GT(checked, 0);
    const bool read_once = c.kind == DropoutKind::element && c.element_masks == ElementMasks::per_window;
    if (!read_once) {
      EXPECT_GT(disturbed, 0);
    }
  }
}
