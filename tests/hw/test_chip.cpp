// The spintronic chip simulator: MTJ switching against closed forms and simulated writes, module
// variation against its analytic spread, hardware config files, and the chip against the engine
// (ideal preset: identical; default: the screened analog path equal to the full one).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "core/counter_rng.h"
#include "core/error.h"
#include "hw/chip.h"
#include "hw/dropout_module.h"
#include "hw/hardware_config.h"
#include "hw/mtj.h"
#include "model/dropout_mask.h"
#include "random_networks.h"

using namespace spinbayes;

namespace {

ModelSpec spec_of(const std::string& architecture, int width, DropoutKind dropout) {
  ModelSpec spec;
  spec.architecture = architecture;
  spec.width = width;
  spec.dropout = dropout;
  spec.p = 0.2;
  return spec;
}

std::filesystem::path write_temp(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("spinbayes-hw-" + name);
  std::ofstream(path) << text;
  return path;
}

double standard_deviation(const std::vector<double>& v, double* mean_out = nullptr) {
  double mean = 0.0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double var = 0.0;
  for (double x : v) var += (x - mean) * (x - mean);
  if (mean_out != nullptr) *mean_out = mean;
  return std::sqrt(var / static_cast<double>(v.size() - 1));
}

}  // namespace

TEST(Mtj, SwitchingProbabilityMatchesClosedForm) {
  // tau = tau0 exp(Delta (1 - I / Ic0)); P = 1 - exp(-t / tau), values computed by hand.
  EXPECT_NEAR(switching_probability({40.0, 40.0, 1.0}, 30.0, 1000.0), 0.044384773569994485, 1e-15);
  EXPECT_NEAR(switching_probability({60.0, 50.0, 2.0}, 30.0, 50.0), 9.437836356244107e-10, 1e-22);
  EXPECT_NEAR(write_current_for({45.0, 45.0, 1.0}, 0.1, 5.0), 41.14019476025346, 1e-9);
  // R_P = RA / (pi d^2 / 4): 5 Ohm um^2 over a 40 nm disc.
  EXPECT_NEAR(MtjParams{}.rp_ohm(), 3978.8735772973837, 1e-6);
  MtjParams mtj;
  EXPECT_NEAR(tmr_at_bias(mtj, 0.5), mtj.tmr / 2.0, 1e-12);  // V = V_h halves the TMR
  EXPECT_NEAR(resistance_ohm(mtj, MtjState::antiparallel, 0.0), mtj.rp_ohm() * (1.0 + mtj.tmr), 1e-9);
  // More current, more switching; a hotter device (lower Delta) switches more.
  EXPECT_LT(switching_probability({45, 45, 1}, 40.0, 5.0), switching_probability({45, 45, 1}, 42.0, 5.0));
  EXPECT_LT(switching_probability({45, 45, 1}, 40.0, 5.0), switching_probability({40, 45, 1}, 40.0, 5.0));
}

TEST(Mtj, WriteCurrentInvertsTheSwitchingProbability) {
  const MtjSwitching device{45.0, 45.0, 1.0};
  for (double p : {0.01, 0.1, 0.25, 0.5, 0.9}) {
    const double current = write_current_for(device, p, 5.0);
    EXPECT_LT(current, device.ic0_ua);
    EXPECT_NEAR(switching_probability(device, current, 5.0), p, 1e-12) << p;
  }
  EXPECT_THROW(write_current_for(device, 0.0, 5.0), Error);
  EXPECT_THROW(write_current_for(device, 1.0, 5.0), Error);
  EXPECT_THROW(write_current_for(device, 0.999, 0.5), Error);  // would need I >= Ic0
}

TEST(Mtj, CalibratedCurrentReproducesTargetOverSimulatedWrites) {
  // 10^5 writes of the nominal device at the calibrated current, each simulated as a thermally
  // activated switching event: the waiting time is exponential with mean tau, and the module
  // switches iff it comes before the end of the pulse.
  const HardwareConfig hw = HardwareConfig::defaults();
  const MtjSwitching device = nominal_switching(hw.mtj, true);
  const double pulse = hw.dropout_module.pulse_width_ns;
  for (double p : {0.05, 0.1, 0.3, 0.5}) {
    const double current = write_current_for(device, p, pulse);
    const double tau = device.tau0_ns * std::exp(device.delta * (1.0 - current / device.ic0_ua));
    SplitMix64 rng(static_cast<std::uint64_t>(p * 1000));
    int switched = 0;
    const int writes = 100000;
    for (int i = 0; i < writes; ++i) switched += -tau * std::log(1.0 - rng.uniform()) < pulse ? 1 : 0;
    EXPECT_NEAR(static_cast<double>(switched) / writes, p, 0.01) << p;
  }
}

TEST(DropoutModules, SpreadOfProbabilityMatchesAnalyticSpread) {
  HardwareConfig hw = HardwareConfig::defaults();
  hw.dropout_module.write_current = "per_chip";  // one current for every module: their p spreads
  // Small spreads, where the first-order formula holds (ln tau varies by about 0.09).
  hw.mtj.sigma_delta = 0.01;
  hw.mtj.sigma_ic0 = 0.002;
  const double p = 0.1;
  const DropoutBank bank(hw, p, 20000, 7, 3);
  std::vector<double> probs;
  for (int m = 0; m < bank.size(); ++m) probs.push_back(bank.probability(m));
  double mean = 0.0;
  const double measured = standard_deviation(probs, &mean);
  const MtjSwitching nominal = nominal_switching(hw.mtj, true);
  const double analytic = switching_probability_spread(nominal, bank.write_current_ua(),
                                                       hw.dropout_module.pulse_width_ns, 0.01, 0.002);
  EXPECT_GT(analytic, 0.005);  // the spread is not negligible at these sigmas
  EXPECT_NEAR(measured / analytic, 1.0, 0.05);
  EXPECT_NEAR(mean, p, 0.3 * analytic);

  // Trimmed currents (per_module) cancel the device spread at the calibration temperature.
  hw.dropout_module.write_current = "per_module";
  const DropoutBank trimmed(hw, p, 2000, 7, 3);
  for (int m = 0; m < trimmed.size(); ++m) ASSERT_NEAR(trimmed.probability(m), p, 1e-9);
  // ...but not the temperature: hotter chips switch more.
  hw.mtj.temperature_k = 330.0;
  const DropoutBank hot(hw, p, 10, 7, 3);
  for (int m = 0; m < hot.size(); ++m) EXPECT_GT(hot.probability(m), p + 0.01);
}

TEST(DropoutModules, StuckModulesAlwaysKeepOrAlwaysDrop) {
  HardwareConfig hw = HardwareConfig::ideal();
  hw.faults.module_stuck_p = 0.2;
  hw.faults.module_stuck_ap = 0.3;
  const DropoutBank bank(hw, 0.1, 10000, 1, 1);
  int keep = 0, drop = 0;
  for (int m = 0; m < bank.size(); ++m) {
    keep += bank.probability(m) == 0.0 ? 1 : 0;
    drop += bank.probability(m) == 1.0 ? 1 : 0;
  }
  EXPECT_NEAR(keep / 10000.0, 0.2, 0.02);
  EXPECT_NEAR(drop / 10000.0, 0.3, 0.02);
}

TEST(HardwareConfigFile, DefaultRoundTripsThroughItsCommentedJson) {
  HardwareConfig hw = HardwareConfig::defaults();
  const std::string text = hw.table().to_commented_json();
  EXPECT_NE(text.find("Ikeda"), std::string::npos);  // sources travel with the values
  HardwareConfig changed = HardwareConfig::ideal();
  changed.table().apply_file(write_temp("roundtrip.json", text));
  EXPECT_EQ(changed.mtj.sigma_rp, hw.mtj.sigma_rp);
  EXPECT_EQ(changed.crossbar.adc_bits, hw.crossbar.adc_bits);
  EXPECT_EQ(changed.dropout_module.element_masks, hw.dropout_module.element_masks);
}

TEST(HardwareConfigFile, BadFilesGiveOneLineErrorsNamingTheKey) {
  const auto expect_error = [](const std::string& name, const std::string& text, const std::string& needle) {
    const auto path = write_temp(name, text);
    try {
      HardwareConfig::load(path.string());
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  };
  expect_error("unknown.json", R"({"mtj": {"tmr": 1.2, "colour": 3}})", "mtj.colour");
  expect_error("unknown-section.json", R"({"magnet": {"tmr": 1.2}})", "magnet");
  expect_error("range.json", R"({"crossbar": {"adc_bits": 40}})", "crossbar.adc_bits");
  expect_error("negative.json", R"({"mtj": {"ra_ohm_um2": -5}})", "mtj.ra_ohm_um2");
  expect_error("type.json", R"({"mtj": {"delta": "high"}})", "mtj.delta");
  expect_error("choice.json", R"({"dropout_module": {"write_current": "max"}})", "dropout_module.write_current");
  expect_error("tile.json", R"({"crossbar": {"tile_rows": 100}})", "crossbar.tile_rows");
  expect_error("json.json", R"({"mtj": {"tmr": 1.2,,}})", "not valid JSON");
  EXPECT_THROW(HardwareConfig::load("no-such-preset"), Error);
  // Comments are allowed, and a partial file keeps the other defaults.
  const auto ok = write_temp("ok.json", "// a hotter chip\n{\"mtj\": {\"temperature_k\": 350}}\n");
  const HardwareConfig hw = HardwareConfig::load(ok.string());
  EXPECT_EQ(hw.mtj.temperature_k, 350.0);
  EXPECT_EQ(hw.mtj.tmr, HardwareConfig::defaults().mtj.tmr);
}

// With the ideal preset the chip computes exactly what the engine computes, for every dropout kind.
TEST(Chip, IdealPresetReproducesTheEngine) {
  for (const DropoutKind kind : {DropoutKind::spatial, DropoutKind::element, DropoutKind::none}) {
    for (const std::string architecture : {"vgg-small", "lenet"}) {
      const ModelIR ir = spread_model_ir(spec_of(architecture, 8, kind), 11);
      const ImageSet images = noise_images(6, 5);
      const Engine engine(ir);
      const Chip chip(ir, HardwareConfig::ideal(), 3);
      const McPredictions a = engine.predict(images, 4, 99, true);
      Ledger ledger;
      const McPredictions b = chip.predict(images, 4, 99, true, &ledger);
      EXPECT_EQ(a.probs, b.probs) << architecture << " " << to_string(kind);
      EXPECT_GT(ledger.total().cell_reads, 0u);
    }
  }
}

// The screen only skips the analog sum where it cannot change the decision: screened and full
// analog evaluation agree bit for bit on a chip with variation, offsets, faults and every mask scheme.
TEST(Chip, ScreenedAnalogPathEqualsTheFullAnalogPath) {
  for (const DropoutKind kind : {DropoutKind::spatial, DropoutKind::element}) {
    const ModelIR ir = spread_model_ir(spec_of("vgg-small", 8, kind), 21);
    HardwareConfig hw = HardwareConfig::defaults();
    hw.mtj.sigma_rp = hw.mtj.sigma_tmr = 0.05;
    hw.faults.cell_stuck_p = hw.faults.cell_stuck_ap = 0.002;
    hw.faults.read_disturb = 0.01;
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

// The windows of the chip's second layer on a noise image, with about a quarter of the rows
// left undriven (random keep bits).
Patches driven_patches(const Chip& chip, unsigned image_seed, std::uint64_t keep_seed) {
  const Engine& engine = chip.engine();
  const BinaryMap map = engine.run_prefix(noise_images(1, image_seed).image(0));
  Patches patches;
  const auto& layer = engine.layers()[1];
  im2col_bits(map, layer.kernel, layer.stride, layer.padding, patches);
  std::mt19937_64 gen(keep_seed);
  for (int m = 0; m < patches.keep.rows; ++m) {
    for (int w = 0; w < patches.keep.words; ++w) patches.keep.row(m)[w] &= gen() | gen();
  }
  return patches;
}

// The same windows under a spatial mask: every channel dropped with probability 1/10, for all
// taps inside the map alike (what the chip's spatial modules do).
Patches spatial_patches(const Chip& chip, unsigned image_seed, std::uint64_t keep_seed) {
  const Engine& engine = chip.engine();
  BinaryMap map = engine.run_prefix(noise_images(1, image_seed).image(0));
  std::mt19937_64 gen(keep_seed);
  std::vector<BitWord> channels(static_cast<std::size_t>(map.signs.words), 0);
  for (int c = 0; c < map.channels; ++c) {
    if (gen() % 10 != 0) channels[static_cast<std::size_t>(c / kBitsPerWord)] |= BitWord{1} << (c % kBitsPerWord);
  }
  map.keep = BitMatrix(map.height * map.width, map.channels);
  for (int pix = 0; pix < map.keep.rows; ++pix) std::copy(channels.begin(), channels.end(), map.keep.row(pix));
  Patches patches;
  const auto& layer = engine.layers()[1];
  im2col_bits(map, layer.kernel, layer.stride, layer.padding, patches);
  return patches;
}

// The GEMM's dots of window m on the cells' bits (stuck cells are the layer's to correct).
std::vector<std::int32_t> window_dots(const Patches& patches, int m, const CrossbarLayer& array, int cols) {
  std::vector<std::int32_t> dots(static_cast<std::size_t>(cols));
  for (int j = 0; j < cols; ++j) {
    int kept = 0, mismatched = 0;
    for (int w = 0; w < patches.keep.words; ++w) {
      const BitWord k = patches.keep.row(m)[w];
      kept += std::popcount(k);
      mismatched += std::popcount((patches.signs.row(m)[w] ^ array.weights().row(j)[w]) & k);
    }
    dots[static_cast<std::size_t>(j)] = kept - 2 * mismatched;
  }
  return dots;
}

// The conditioned screen's centre and variance describe this chip's analog sums: on windows under
// a spatial mask (borders included), the residual (analog value - centre) / sqrt(variance) has a
// mean square near one (a little under: where it cannot tell, the variance takes the larger) and
// stays well inside the screen's 6 sigmas, and the centre takes most of the deviation from the
// ideal dot away. Random keep bits are not conditioned.
TEST(Chip, ConditionedScreenPredictsTheAnalogSum) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  HardwareConfig hw = HardwareConfig::defaults();
  hw.crossbar.tile_rows = 4096;  // one tile: the sense amplifier sees the sum itself
  hw.mtj.sigma_rp = hw.mtj.sigma_tmr = 0.05;
  const Chip chip(ir, hw, 13);
  const CrossbarLayer& array = chip.array(1);
  const int cols = chip.engine().layers()[1].shape.out_channels;
  double z2 = 0.0, largest = 0.0, raw2 = 0.0, left2 = 0.0;
  int n = 0, borders = 0;
  for (const unsigned image : {5u, 6u}) {
    const Patches patches = spatial_patches(chip, image, image + 1);
    const CrossbarLayer::ScreenTerms interior = array.screen_terms(patches, patches.out_w + 1);
    ASSERT_TRUE(interior.conditioned);
    for (int m = 0; m < patches.signs.rows; ++m) {
      const CrossbarLayer::ScreenTerms st = array.screen_terms(patches, m);
      ASSERT_TRUE(st.conditioned) << m;
      ASSERT_GT(st.base, 0.0);
      borders += st.s0 != interior.s0;
      const std::vector<std::int32_t> dots = window_dots(patches, m, array, cols);
      std::int32_t sum = 0;
      for (int j = 0; j < cols; ++j) {
        array.tile_sums_reference(patches, m, j, &sum);
        const double value = array.column_value(&sum);
        const double dot = dots[static_cast<std::size_t>(j)];
        const double centre = dot + st.a * st.s0[j] + st.b * st.se[j];
        const double z = (value - centre) / std::sqrt(st.base + st.slope * dot);
        z2 += z * z;
        largest = std::max(largest, std::fabs(z));
        raw2 += std::pow(value - dot, 2);
        left2 += std::pow(value - centre, 2);
        ++n;
      }
    }
  }
  EXPECT_GT(borders, 0);
  EXPECT_GT(z2 / n, 0.6);
  EXPECT_LT(z2 / n, 1.15);
  EXPECT_LT(largest, 5.0);
  EXPECT_LT(left2, 0.6 * raw2);  // measured: 0.38 (mean square 0.86, largest 3.4 sigmas)
  EXPECT_FALSE(array.screen_terms(driven_patches(chip, 5, 3), 0).conditioned);
}

TEST(Chip, SimdTileSumsMatchThePlainLoop) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 4);
  // With variation: the SIMD and plain sums agree exactly. Without, but with stuck cells: each
  // tile's sum is cell_scale x its exact dot.
  for (const bool variation : {true, false}) {
    HardwareConfig hw = HardwareConfig::defaults();
    hw.crossbar.tile_rows = 64;
    if (!variation) {
      hw.mtj.sigma_rp = hw.mtj.sigma_tmr = 0.0;
      hw.faults.cell_stuck_p = hw.faults.cell_stuck_ap = 0.01;
    }
    const Chip chip(ir, hw, 9);
    const auto& layer = chip.engine().layers()[1];
    const Patches patches = driven_patches(chip, 3, 1);
    const CrossbarLayer& array = chip.array(1);
    const auto tiles = static_cast<std::size_t>(array.row_tiles());
    ASSERT_GT(tiles, 1u);
    std::vector<std::int32_t> fast(tiles), plain(tiles);
    int differ = 0;
    for (int m = 0; m < patches.signs.rows; m += 7) {
      for (int j = 0; j < layer.shape.out_channels; ++j) {
        array.tile_sums(patches, m, j, fast.data());
        array.tile_sums_reference(patches, m, j, plain.data());
        ASSERT_EQ(fast, plain);
        for (std::size_t t = 0; t < tiles; ++t) {
          const std::int32_t ideal = array.cell_scale() * array.tile_dot(patches, m, j, static_cast<int>(t));
          if (!variation) {
            ASSERT_EQ(plain[t], ideal);
          }
          differ += plain[t] != ideal;
        }
      }
    }
    if (variation) {
      EXPECT_GT(differ, 0);
    }
  }
}

TEST(Chip, VectorScreenMatchesTheColumnByColumnDecisions) {
  // Device variation, faults and sense-amplifier offsets, on one-tile and several-tile columns,
  // with a third of the rows not driven.
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  for (const int tile_rows : {64, 4096}) {
    HardwareConfig hw = HardwareConfig::defaults();
    hw.crossbar.tile_rows = tile_rows;
    hw.faults.cell_stuck_p = hw.faults.cell_stuck_ap = 0.003;
    const Chip chip(ir, hw, 11);
    const auto& layer = chip.engine().layers()[1];
    const CrossbarLayer& array = chip.array(1);
    const int cols = layer.shape.out_channels, words = (cols + kBitsPerWord - 1) / kBitsPerWord;
    int analog = 0;
    // Random keep bits (the ensemble screen) and a spatial mask (the conditioned one).
    for (const bool spatial : {false, true}) {
      const Patches patches = spatial ? spatial_patches(chip, 5, 3) : driven_patches(chip, 5, 3);
      for (int m = 0; m < patches.signs.rows; ++m) {
        const std::vector<std::int32_t> dots = window_dots(patches, m, array, cols);
        std::vector<BitWord> fast(static_cast<std::size_t>(words)), plain(static_cast<std::size_t>(words));
        LayerEvents events;
        array.sense_row(patches, m, dots.data(), layer.dot_sign.data(), layer.dot_bound[1].data(), fast.data(), events);
        array.sense_row_reference(patches, m, dots.data(), layer.dot_sign.data(), layer.dot_bound[1].data(), plain.data());
        ASSERT_EQ(fast, plain) << "tile_rows " << tile_rows << ", window " << m;
        // Every column read out (as the output layer is): the SIMD batch against column by column.
        std::vector<double> read(static_cast<std::size_t>(cols));
        array.read_row(patches, m, dots.data(), read.data(), events);
        std::vector<std::int32_t> sums(static_cast<std::size_t>(array.row_tiles()));
        for (int j = 0; j < cols; ++j) {
          array.tile_sums_reference(patches, m, j, sums.data());
          ASSERT_EQ(read[static_cast<std::size_t>(j)], array.column_value(sums.data())) << j;
        }
        std::vector<BitWord> ideal(static_cast<std::size_t>(words));
        threshold_bits(dots.data(), layer.dot_sign.data(), layer.dot_bound[1].data(), cols, ideal.data());
        analog += fast != ideal;
      }
    }
    EXPECT_GT(analog, 0) << "the analog path never changed a decision";
  }
}

TEST(Chip, SimdAdcCodesMatchTheScalarConversion) {
  // Coarse and fine ADCs, tiles of 128 and 192 rows (power-of-two and other divisors), and the
  // exact ties of round-half-away-from-zero.
  const ModelIR ir = spread_model_ir(spec_of("lenet", 8, DropoutKind::spatial), 1);
  for (const int bits : {4, 8}) {
    for (const int tile_rows : {128, 192}) {
      HardwareConfig hw = HardwareConfig::defaults();
      hw.crossbar.adc_bits = bits;
      hw.crossbar.tile_rows = tile_rows;
      const Chip chip(ir, hw, 2);
      const CrossbarLayer& array = chip.array(1);
      std::vector<std::int32_t> sums;
      for (std::int32_t v = -20000; v <= 20000; v += 7) sums.push_back(v);
      for (std::int32_t v = -300; v <= 300; ++v) sums.push_back(v);
      sums.insert(sums.end(), {4096, -4096, 12288});
      std::vector<std::int32_t> codes(sums.size());
      array.adc_codes(sums.data(), static_cast<int>(sums.size()), codes.data());
      int ties = 0;
      for (std::size_t i = 0; i < sums.size(); ++i) {
        ASSERT_EQ(codes[i], array.adc_code(sums[i])) << sums[i];
        const int levels = (1 << bits) / 2 - 1;
        const double step = static_cast<double>(tile_rows) / levels;
        const double x = sums[i] / (step * array.cell_scale());
        ties += std::fabs(std::fabs(x - std::trunc(x)) - 0.5) < 1e-9;
      }
      if (bits == 8 && tile_rows == 128) {
        EXPECT_GT(ties, 0);  // 4096 / 64 dot units = 63.5 steps of 128 / 127
      }
    }
  }
}

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
  BinaryMap map;
  map.channels = 16;
  map.height = map.width = 4;
  map.signs = BitMatrix(16, 16);
  int dropped = 0, total = 0;
  LayerEvents events;
  for (int s = 0; s < 400; ++s) {
    BinaryMap m = map;
    chip.mask_map(2, m, 1, 0, static_cast<std::uint64_t>(s), events);
    // Module c draws unit c of this pass against its own bound, the same bit at every pixel.
    const DropoutDraws draws(1, 0, static_cast<std::uint64_t>(s), 2, ir.spec.p);
    for (int c = 0; c < 16; ++c, ++total) {
      dropped += m.keep.get(0, c) ? 0 : 1;
      EXPECT_EQ(m.keep.get(0, c), draws.draw53(static_cast<std::uint64_t>(c)) >= bank.drop_bound(c)) << c;
      EXPECT_EQ(m.keep.get(15, c), m.keep.get(0, c)) << c;
    }
  }
  EXPECT_NEAR(static_cast<double>(dropped) / total, mean, 0.04);
  EXPECT_EQ(events.module_writes, 400u * 16u);
}
