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

