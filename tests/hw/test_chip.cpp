// The simulated chip as the engine's backend: the ideal preset reproduces the engine, the screened
// analog path equals the full one, thread counts change nothing, module variation shifts the drop rate.
#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/counter_rng.h"
#include "core/error.h"
#include "engine/im2col.h"
#include "engine/threshold.h"
#include "hw/chip.h"
#include "hw/dropout_module.h"
#include "hw/hardware_config.h"
#include "hw/mtj.h"
#include "model/dropout_mask.h"
#include "random_networks.h"

using namespace spinbayes;

TEST(Chip, IdealPresetReproducesTheEngine) {
  for (const DropoutKind kind : {DropoutKind::spatial, DropoutKind::element, DropoutKind::none}) {
    for (const std::string architecture : {"vgg-small", "lenet", "resnet20", "resnet18", "custom", "own sites"}) {
      const ModelIR ir = spread_model_ir(architecture == "custom"      ? residual_network_spec(kind)
                                         : architecture == "own sites" ? own_dropout_spec(kind)
                                                                       : spec_of(architecture, architecture == "resnet20" ? 4 : 8, kind),
                                         11);
      const ImageSet images = noise_images(6, 5);
      const Engine engine(ir);
      const Chip chip(ir, HardwareConfig::ideal(), 3);
      const McPredictions a = engine.predict(images, 4, 99, true);
      Ledger ledger;
      const McPredictions b = chip.predict(images, 4, 99, true, &ledger);
      EXPECT_EQ(a.probs, b.probs) << architecture << " " << to_string(kind);
      // Access transistors scale every cell's current alike: without variation the chip stays exact.
      HardwareConfig transistors = HardwareConfig::ideal();
      transistors.crossbar.access_resistance_ohm = 2000.0;
      EXPECT_EQ(Chip(ir, transistors, 3).predict(images, 4, 99, true).probs, a.probs) << architecture;
      EXPECT_GT(ledger.total().cell_reads, 0u);
    }
  }
}

// The screen only skips the analog sum where it cannot change the decision: screened and full
// analog evaluation agree bit for bit on a chip with variation, offsets, faults and every mask scheme.
TEST(Chip, ScreenedAnalogPathEqualsTheFullAnalogPath) {
  for (const int faults : {0, 1}) {
  for (const DropoutKind kind : {DropoutKind::spatial, DropoutKind::element}) {
  for (const bool residual : {false, true}) {
    const ModelIR ir = spread_model_ir(residual ? residual_network_spec(kind) : spec_of("vgg-small", 8, kind), 21);
    HardwareConfig hw = HardwareConfig::defaults();
    hw.mtj.sigma_rp = hw.mtj.sigma_tmr = 0.05;
    hw.faults.cell_stuck_p = hw.faults.cell_stuck_ap = 0.002;
    hw.faults.read_disturb = 0.01;
    if (faults == 1) {  // the test-chip campaign's faults on top
      hw.faults.tmr_drift = -0.2, hw.faults.rp_drift = 0.1, hw.faults.adc_gain_error = -0.08;
      hw.faults.sense_offset_ua = 3.0, hw.faults.dead_tiles = 2, hw.faults.module_ic0_drift = 0.01;
      hw.crossbar.sense_offset_relative = 0.01;
      hw.crossbar.access_resistance_ohm = 2000.0;
    }
    hw.crossbar.tile_rows = 64;  // every layer spans several tiles
    HardwareConfig full = hw;
    full.crossbar.screen_sigmas = 0.0;
    const ImageSet images = noise_images(4, 8);
    const McPredictions a = Chip(ir, hw, 5).predict(images, 3, 1, true);
    const McPredictions b = Chip(ir, full, 5).predict(images, 3, 1, true);
    EXPECT_EQ(a.probs, b.probs) << to_string(kind);
    // ...and the hardware made a difference.
    const McPredictions ideal = Chip(ir, HardwareConfig::ideal(), 5).predict(images, 3, 1, true);
    EXPECT_NE(a.probs, ideal.probs);
  }
  }
  }
}

// The windows of the chip's second layer on a noise image, with about a quarter of the rows

TEST(Chip, SameSeedSamePredictionsWithOneAndTwoThreads) {
  const ModelIR ir = spread_model_ir(spec_of("lenet", 8, DropoutKind::element), 2);
  HardwareConfig hw = HardwareConfig::defaults();
  hw.faults.read_disturb = 0.05;
  const Chip chip(ir, hw, 4);
  const ImageSet images = noise_images(16, 1);
  omp_set_num_threads(1);
  Ledger one, two;
  const McPredictions a = chip.predict(images, 5, 3, true, &one);
  omp_set_num_threads(2);
  const McPredictions b = chip.predict(images, 5, 3, true, &two);
  EXPECT_EQ(a.probs, b.probs);
  EXPECT_EQ(one.layers, two.layers);
  // A different chip seed is a different chip.
  const McPredictions c = Chip(ir, hw, 5).predict(images, 5, 3, true);
  EXPECT_NE(a.probs, c.probs);
}

// A supply fluctuation shared by a layer's drivers: in each pass every module is written with
// I (1 + sigma z), one z per pass and layer. The dropped count of n channels then has the variance
// n E[p_z (1 - p_z)] + n^2 Var(p_z) (binomial given z, plus the shared part), well above the
// binomial n p (1 - p) of independent modules; its levels' probabilities sum to 1.
TEST(Chip, SupplyFluctuationCorrelatesALayersMasks) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  HardwareConfig hw = HardwareConfig::ideal();
  hw.dropout_module.supply_noise_relative = 0.02;
  const Chip chip(ir, hw, 1);
  const DropoutBank& bank = chip.bank(2);
  ASSERT_TRUE(bank.fluctuates());
  double total = 0.0, mean_p = 0.0, mean_pq = 0.0, mean_p2 = 0.0;
  const MtjSwitching device = nominal_switching(hw.mtj, true);
  const double current = bank.write_current_ua(), pulse = hw.dropout_module.pulse_width_ns;
  for (int l = 0; l < DropoutBank::kSupplyLevels; ++l) {
    const double w = DropoutBank::supply_level_probability(l);
    const double p = switching_probability(device, current * (1.0 + 0.02 * DropoutBank::supply_z(l)), pulse);
    total += w;
    mean_p += w * p;
    mean_pq += w * p * (1.0 - p);
    mean_p2 += w * p * p;
  }
  EXPECT_NEAR(total, 1.0, 1e-12);
  EXPECT_NEAR(bank.probability(5), mean_p, 1e-12);
  const int n = 16, passes = 4000;
  const double expected_var = n * mean_pq + n * n * (mean_p2 - mean_p * mean_p);
  const double binomial_var = n * mean_p * (1.0 - mean_p);
  ASSERT_GT(expected_var, 2.0 * binomial_var);  // the shared part dominates at 2 %
  std::vector<double> counts;
  LayerEvents events;
  std::vector<BitWord> keep;
  for (int s = 0; s < passes; ++s) {
    chip.masks().channel_keep(MaskKey{1, 0, static_cast<std::uint64_t>(s), 2}, keep, events);
    counts.push_back(n - std::popcount(keep[0]));
  }
  double mean = 0.0, var = 0.0;
  for (double c : counts) mean += c / passes;
  for (double c : counts) var += (c - mean) * (c - mean) / (passes - 1);
  EXPECT_NEAR(mean, n * mean_p, 0.1);
  EXPECT_NEAR(var / expected_var, 1.0, 0.12) << var << " vs " << expected_var << " (binomial " << binomial_var << ")";
  // Another layer draws its own level: the same pass need not share it.
  int other = -1;
  for (int i = 3; i < static_cast<int>(ir.layers.size()) && other < 0; ++i) other = chip.bank(i).fluctuates() ? i : -1;
  ASSERT_GT(other, 2);
  int differ = 0;
  for (std::uint64_t s = 0; s < 50; ++s) differ += bank.supply_level(1, 0, s) != chip.bank(other).supply_level(1, 0, s);
  EXPECT_GT(differ, 25);
}

TEST(Chip, ModuleVariationShiftsTheDropRate) {
  // The fraction of dropped channels follows the modules' own probabilities: a hot chip drops more.
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  HardwareConfig hw = HardwareConfig::ideal();
  hw.mtj.temperature_k = 340.0;
  const Chip chip(ir, hw, 1);
  const DropoutBank& bank = chip.bank(2);
  double mean = 0.0;
  for (int m = 0; m < bank.size(); ++m) mean += bank.probability(m) / bank.size();
  EXPECT_GT(mean, 0.25);  // p = 0.2 at 300 K
  ASSERT_EQ(chip.masks().grain(2), MaskGrain::channel);
  int dropped = 0, total = 0;
  LayerEvents events;
  std::vector<BitWord> keep;
  for (int s = 0; s < 400; ++s) {
    chip.masks().channel_keep(MaskKey{1, 0, static_cast<std::uint64_t>(s), 2}, keep, events);
    ASSERT_EQ(keep.size(), 1u);
    // Module c draws unit c of this pass against its own bound: one bit per channel, held over the map.
    const DropoutDraws draws(1, 0, static_cast<std::uint64_t>(s), 2, ir.spec.p);
    for (int c = 0; c < 16; ++c, ++total) {
      const bool kept = (keep[0] >> c) & 1u;
      dropped += kept ? 0 : 1;
      EXPECT_EQ(kept, draws.draw53(static_cast<std::uint64_t>(c)) >= bank.drop_bound(c)) << c;
    }
    EXPECT_EQ(keep[0] >> 16, 0u);  // no bits past the channels
  }
  EXPECT_NEAR(static_cast<double>(dropped) / total, mean, 0.04);
  EXPECT_EQ(events.module_writes, 400u * 16u);
}


// Per-element modules of a convolution under read disturb: element (c, y, x) is read by every
// window whose taps land on it, in raster order, and a dropped one flips to P at its first
// disturbing read. Each element's keep bits over the windows that read it are then some drops
// followed by keeps only; its k-th read finds it dropped with probability p (1 - q)^(k + 1); the
// ledger's AP reads are exactly the drops the windows saw.
TEST(Chip, ReadDisturbReleasesPerElementModulesForTheLaterWindows) {
  ModelSpec spec = spec_of("vgg-small", 8, DropoutKind::element);
  spec.p = 0.5;
  const ModelIR ir = spread_model_ir(spec, 4);
  HardwareConfig hw = HardwareConfig::ideal();
  hw.dropout_module.element_masks = ElementMasks::per_element;
  const double q = 0.3;
  hw.faults.read_disturb = q;
  const Chip chip(ir, hw, 2);
  const CompiledModel model(ir);
  int layer = -1;
  for (int i = 1; i < static_cast<int>(model.layers().size()) && layer < 0; ++i) {
    if (model.layer(i).shape.dropout_before && chip.masks().layout(i) == ModuleLayout::element_per_element) layer = i;
  }
  ASSERT_GE(layer, 1);
  ASSERT_EQ(chip.masks().grain(layer), MaskGrain::window);
  const EngineLayer& l = model.layer(layer);
  ASSERT_EQ(l.kernel, 3);
  BinaryMap map{l.in_c, l.in_h, l.in_w, BitMatrix(l.in_h * l.in_w, l.in_c), BitMatrix()};
  Patches unmasked;
  im2col_bits(map, l.kernel, l.stride, l.padding, unmasked);
  const int windows = unmasked.out_h * unmasked.out_w;
  std::vector<double> found_dropped(9, 0.0), reads_at(9, 0.0);
  const int passes = 300;
  for (int s = 0; s < passes; ++s) {
    Patches patches;
    im2col_bits(map, l.kernel, l.stride, l.padding, patches);
    LayerEvents events;
    chip.masks().mask_patches(MaskKey{7, 0, static_cast<std::uint64_t>(s), layer}, patches, 0, events);
    std::uint64_t dropped_reads = 0;
    // Per element, its reads in raster order: how many so far, and whether one found it kept.
    std::vector<int> reads(static_cast<std::size_t>(l.in_c * l.in_h * l.in_w), 0);
    std::vector<bool> released(reads.size(), false);
    for (int m = 0; m < windows; ++m) {
      const int oy = m / unmasked.out_w, ox = m % unmasked.out_w;
      int kept = 0;
      for (int ky = 0; ky < 3; ++ky) {
        for (int kx = 0; kx < 3; ++kx) {
          const int y = oy * l.stride - l.padding + ky, x = ox * l.stride - l.padding + kx;
          for (int c = 0; c < l.in_c; ++c) {
            const int bit = (ky * 3 + kx) * l.in_c + c;
            const bool valid = unmasked.keep.get(m, bit), keep = patches.keep.get(m, bit);
            ASSERT_TRUE(valid || !keep);  // only in-map taps are driven
            kept += keep ? 1 : 0;
            if (!valid) continue;
            const auto unit = static_cast<std::size_t>((c * l.in_h + y) * l.in_w + x);
            const int k = reads[unit]++;
            ASSERT_TRUE(!released[unit] || keep) << "a released module read dropped again";
            released[unit] = released[unit] || keep;
            found_dropped[static_cast<std::size_t>(k)] += keep ? 0.0 : 1.0;
            reads_at[static_cast<std::size_t>(k)] += 1.0;
            dropped_reads += keep ? 0 : 1;
          }
        }
      }
      EXPECT_EQ(patches.kept[static_cast<std::size_t>(m)], kept);
    }
    EXPECT_EQ(events.module_reads_ap, dropped_reads);
    EXPECT_EQ(events.module_writes, reads.size());
    EXPECT_EQ(events.module_reads,
              static_cast<std::uint64_t>(std::accumulate(unmasked.kept.begin(), unmasked.kept.end(), std::int64_t{0})));
    EXPECT_LE(events.module_writes_ap, events.module_writes);
  }
  // The k-th read of an element finds its module dropped with probability p (1 - q)^(k + 1).
  for (int k = 0; k < 9; ++k) {
    const double n = reads_at[static_cast<std::size_t>(k)];
    ASSERT_GT(n, 1000.0) << k;
    const double want = spec.p * std::pow(1.0 - q, k + 1);
    EXPECT_NEAR(found_dropped[static_cast<std::size_t>(k)] / n, want, 6.0 * std::sqrt(want * (1 - want) / n) + 1e-3) << k;
  }
}
