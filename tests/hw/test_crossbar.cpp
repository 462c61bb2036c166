// One crossbar layer's read-out: the screen's centre and variance against the analog sums, the SIMD
// tile sums, screen and ADC codes against their plain loops.
#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/counter_rng.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/streams.h"
#include "engine/im2col.h"
#include "engine/threshold.h"
#include "hw/chip.h"
#include "hw/dropout_module.h"
#include "hw/hardware_config.h"
#include "hw/ir_drop.h"
#include "hw/mtj.h"
#include "hw/tile_sums.h"
#include "model/dropout_mask.h"
#include "random_networks.h"

using namespace spinbayes;

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
  HardwareConfig hw = HardwareConfig::unwired();
  hw.crossbar.tile_rows = 4096;  // one tile: the sense amplifier sees the sum itself
  hw.mtj.sigma_rp = hw.mtj.sigma_tmr = 0.05;
  const Chip chip(ir, hw, 13);
  const CrossbarLayer& array = chip.array(1);
  const int cols = chip.engine().layers()[1].shape.out_channels;
  double z2 = 0.0, largest = 0.0, raw2 = 0.0, left2 = 0.0;
  int n = 0, borders = 0;
  for (const unsigned image : {5u, 6u}) {
    const Patches patches = spatial_patches(chip, image, image + 1);
    const CrossbarScreen::Terms interior = array.screen().terms(patches, patches.out_w + 1);
    ASSERT_TRUE(interior.conditioned);
    for (int m = 0; m < patches.signs.rows; ++m) {
      const CrossbarScreen::Terms st = array.screen().terms(patches, m);
      ASSERT_TRUE(st.conditioned) << m;
      ASSERT_GT(st.base, 0.0);
      borders += st.s0 != interior.s0;
      const std::vector<std::int32_t> dots = window_dots(patches, m, array, cols);
      std::int32_t sum = 0;
      for (int j = 0; j < cols; ++j) {
        array.cells().tile_sums_reference(patches, m, j, &sum);
        const double value = array.column_value(j, &sum);
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
  EXPECT_FALSE(array.screen().terms(driven_patches(chip, 5, 3), 0).conditioned);
}

// Under IR drop and calibration (the wired preset's access transistors, wires, 64-row ADC tiles
// and per-tile gain and offset) the screen conditions on the devices' deviations as the read-out
// sees them, besides centring the wires' part: on spatial windows every analog value lies within
// the screen's sigmas of its centre, and the chip's own sums take a good part of what is left
// after the systematic centre away. Random keep bits are not conditioned.
TEST(Chip, ConditionedScreenHoldsUnderWiresAndCalibration) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  HardwareConfig hw = HardwareConfig::wired();
  hw.mtj.sigma_rp = hw.mtj.sigma_tmr = 0.05;
  const Chip chip(ir, hw, 13);
  const CrossbarLayer& array = chip.array(1);
  const CellArray& cells = array.cells();
  ASSERT_TRUE(cells.ir_drop());
  ASSERT_TRUE(cells.calibrated());
  ASSERT_GT(cells.row_tiles(), 1);
  ASSERT_NE(cells.tap_deviation(0), nullptr);
  const int cols = chip.engine().layers()[1].shape.out_channels;
  const double sigmas = array.screen().sigmas();
  ASSERT_GT(sigmas, 0.0);
  double worst = 0.0, conditioned2 = 0.0, centred2 = 0.0;
  int n = 0;
  std::vector<std::int32_t> sums(static_cast<std::size_t>(cells.row_tiles()));
  for (const unsigned image : {5u, 6u}) {
    const Patches patches = spatial_patches(chip, image, image + 1);
    const PatchRows rows(patches);
    for (int m = 0; m < patches.signs.rows; ++m) {
      const CrossbarScreen::Terms st = array.screen_terms(rows, m);
      ASSERT_TRUE(st.conditioned) << m;
      CrossbarScreen::Terms unconditioned = st;
      unconditioned.a = unconditioned.b = 0.0;
      const std::vector<std::int32_t> dots = window_dots(patches, m, array, cols);
      for (int j = 0; j < cols; ++j) {
        const std::int32_t dot = dots[static_cast<std::size_t>(j)];
        cells.tile_sums_reference(rows, m, j, sums.data());
        const double value = array.column_value(j, sums.data());
        const double left = value - (dot + st.centre(j, dot));
        const double variance = st.base + st.slope * dot + array.screen().column_variance()[j];
        worst = std::max(worst, std::fabs(left) / std::sqrt(variance));
        conditioned2 += left * left;
        centred2 += std::pow(value - (dot + unconditioned.centre(j, dot)), 2);
        ++n;
      }
    }
  }
  std::printf("wired: largest |value - centre| %.2f screen sigmas; left after conditioning %.2f of the centred\n",
              worst, conditioned2 / centred2);
  EXPECT_LT(worst, sigmas);
  EXPECT_LT(conditioned2, 0.8 * centred2);
  EXPECT_FALSE(array.screen().terms(PatchRows(driven_patches(chip, 5, 3)), 0).conditioned);
}

// The calibrated read-out of many columns at once (SIMD where the CPU has it, converting as it
// goes) gives every column exactly the double column_value() gives from the plain tile sums, in
// full groups of columns and in the last, partial one; on the default chip, and through coarse
// ADCs with a gain error on tiles of 192 rows (a step that is no integer, a quotient that is no
// product by a reciprocal).
TEST(Chip, CalibratedReadoutOfManyColumnsMatchesColumnByColumn) {
  HardwareConfig coarse = HardwareConfig::wired();
  coarse.crossbar.tile_rows = 192;
  coarse.crossbar.adc_bits = 6;
  coarse.faults.adc_gain_error = 0.03;
  // Width 22: the first hidden layer's 198 rows span two 192-row tiles.
  for (const auto& [width, hw] : {std::pair{14, HardwareConfig::wired()}, std::pair{22, coarse}}) {
    const ModelIR ir = spread_model_ir(spec_of("vgg-small", width, DropoutKind::spatial), 6);
    const Chip chip(ir, hw, 5);
    const CrossbarLayer& array = chip.array(1);
    const CellArray& cells = array.cells();
    ASSERT_TRUE(cells.calibrated());
    ASSERT_TRUE(array.uses_adc());
    ASSERT_GT(cells.row_tiles(), 1);
    const int cols = cells.cols();
    ASSERT_NE(cols % kColumnGroup, 0);  // a partial group
    const Patches patches = driven_patches(chip, 5, 3);
    std::vector<double> read(static_cast<std::size_t>(cols));
    std::vector<std::int32_t> sums(static_cast<std::size_t>(cells.row_tiles()));
    int differ_from_dot = 0;
    for (int m = 0; m < patches.signs.rows; m += 5) {
      const std::vector<std::int32_t> dots = window_dots(patches, m, array, cols);
      LayerEvents events;
      array.read_row(patches, m, dots.data(), read.data(), events);
      for (int j = 0; j < cols; ++j) {
        cells.tile_sums_reference(patches, m, j, sums.data());
        ASSERT_EQ(read[static_cast<std::size_t>(j)], array.column_value(j, sums.data())) << m << " " << j;
        differ_from_dot += read[static_cast<std::size_t>(j)] != dots[static_cast<std::size_t>(j)];
      }
    }
    EXPECT_GT(differ_from_dot, 0);
  }
}

TEST(Chip, SimdTileSumsMatchThePlainLoop) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 4);
  // With variation: the SIMD and plain sums agree exactly. Without, but with stuck cells: each
  // tile's sum is cell_scale x its exact dot.
  for (const bool variation : {true, false}) {
    HardwareConfig hw = HardwareConfig::unwired();
    hw.crossbar.tile_rows = 64;
    if (!variation) {
      hw.mtj.sigma_rp = hw.mtj.sigma_tmr = 0.0;
      hw.faults.cell_stuck_p = hw.faults.cell_stuck_ap = 0.01;
    }
    const Chip chip(ir, hw, 9);
    const auto& layer = chip.engine().layers()[1];
    const Patches patches = driven_patches(chip, 3, 1);
    const CrossbarLayer& array = chip.array(1);
    const auto tiles = static_cast<std::size_t>(array.cells().row_tiles());
    ASSERT_GT(tiles, 1u);
    std::vector<std::int32_t> fast(tiles), plain(tiles);
    int differ = 0;
    for (int m = 0; m < patches.signs.rows; m += 7) {
      for (int j = 0; j < layer.shape.out_channels; ++j) {
        array.cells().tile_sums(patches, m, &j, 1, fast.data());
        array.cells().tile_sums_reference(patches, m, j, plain.data());
        ASSERT_EQ(fast, plain);
        for (std::size_t t = 0; t < tiles; ++t) {
          const std::int32_t ideal = array.cells().cell_scale() * array.tile_dot(patches, m, j, static_cast<int>(t));
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

// Stuck cells' corrections to the dot: the bit-plane popcounts (plain and AVX-512) agree with
// counting bit by bit, and a layer's correction from its planes agrees with the loop over its list
// in every tile and over the whole column.
TEST(Chip, StuckCorrectionFromPlanesMatchesTheList) {
  std::mt19937_64 gen(17);
  for (int words = 1; words <= 41; words += 4) {
    std::vector<BitWord> plus(static_cast<std::size_t>(words)), minus(plus.size()), keep(plus.size()), x(plus.size());
    int counted = 0;
    for (int w = 0; w < words; ++w) {
      const auto i = static_cast<std::size_t>(w);
      plus[i] = gen() & gen();
      minus[i] = gen() & gen() & ~plus[i];
      keep[i] = gen() | gen();
      x[i] = gen();
      for (int b = 0; b < kBitsPerWord; ++b) {
        const bool low = ((keep[i] & ~x[i]) >> b) & 1u;
        counted += low * ((((plus[i] >> b) & 1u) != 0) - (((minus[i] >> b) & 1u) != 0));
      }
    }
    EXPECT_EQ(stuck_difference(plus.data(), minus.data(), keep.data(), x.data(), words), counted);
    std::int32_t simd = 0;
    if (cpu_features().avx512_vpopcntdq && stuck_difference_avx512(plus.data(), minus.data(), keep.data(), x.data(), words, simd)) {
      EXPECT_EQ(simd, counted) << words << " words";
    }
  }

  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 4);
  HardwareConfig hw = HardwareConfig::defaults();
  hw.crossbar.tile_rows = 64;
  hw.faults.cell_stuck_p = hw.faults.cell_stuck_ap = 0.05;
  const Chip chip(ir, hw, 9);
  const CrossbarLayer& array = chip.array(1);
  const int cols = chip.engine().layers()[1].shape.out_channels, tiles = array.cells().row_tiles();
  ASSERT_GT(tiles, 1);
  int planes = 0, nonzero = 0;
  for (int j = 0; j < cols; ++j) planes += array.cells().stuck(j).size() > static_cast<std::size_t>(words_for_bits(array.cells().rows())) / 8;
  EXPECT_GT(planes, cols / 2);  // the planes, not the list, on most columns
  const Patches patches = driven_patches(chip, 3, 1);
  for (int m = 0; m < patches.signs.rows; m += 3) {
    for (int j = 0; j < cols; ++j) {
      for (int t = -1; t < tiles; ++t) {
        const int r0 = t < 0 ? 0 : t * hw.crossbar.tile_rows;
        const int r1 = t < 0 ? array.cells().rows() : std::min(array.cells().rows(), r0 + hw.crossbar.tile_rows);
        const std::int32_t fast = array.stuck_correction(patches, m, j, r0, r1);
        ASSERT_EQ(fast, array.stuck_correction_reference(patches, m, j, r0, r1)) << m << " " << j << " " << t;
        nonzero += fast != 0;
      }
    }
  }
  EXPECT_GT(nonzero, 0);
}

TEST(Chip, VectorScreenMatchesTheColumnByColumnDecisions) {
  // Device variation, faults and sense-amplifier offsets, on one-tile and several-tile columns,
  // with a third of the rows not driven.
  // Then the faults that move a column off its dot in other ways: drift and ADC gain (a gain on
  // the value), a sense-amplifier offset fault, dead tiles (forced analog).
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  for (const int variant : {0, 1, 2, 3}) {
   for (const int tile_rows : {64, 4096}) {
    HardwareConfig hw = HardwareConfig::defaults();
    hw.crossbar.tile_rows = tile_rows;
    hw.faults.cell_stuck_p = hw.faults.cell_stuck_ap = 0.003;
    if (variant == 1) hw.faults.tmr_drift = -0.3, hw.faults.rp_drift = 0.1, hw.faults.adc_gain_error = 0.07;
    if (variant == 2) hw.faults.sense_offset_ua = 6.0;
    if (variant == 3) hw.faults.dead_tiles = 4, hw.faults.adc_gain_error = -0.1;
    const Chip chip(ir, hw, 11);
    if (variant == 1) {
      ASSERT_NE(chip.array(1).gain(), 1.0);
    }
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
        ASSERT_EQ(fast, plain) << "variant " << variant << ", tile_rows " << tile_rows << ", window " << m;
        // Every column read out (as the output layer is): the SIMD batch against column by column.
        std::vector<double> read(static_cast<std::size_t>(cols));
        array.read_row(patches, m, dots.data(), read.data(), events);
        std::vector<std::int32_t> sums(static_cast<std::size_t>(array.cells().row_tiles()));
        for (int j = 0; j < cols; ++j) {
          array.cells().tile_sums_reference(patches, m, j, sums.data());
          ASSERT_EQ(read[static_cast<std::size_t>(j)], array.column_value(j, sums.data())) << j;
        }
        std::vector<BitWord> ideal(static_cast<std::size_t>(words));
        threshold_bits(dots.data(), layer.dot_sign.data(), layer.dot_bound[1].data(), cols, ideal.data());
        analog += fast != ideal;
      }
    }
    EXPECT_GT(analog, 0) << "the analog path never changed a decision";
   }
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
      array.adc().codes(sums.data(), static_cast<int>(sums.size()), codes.data());
      int ties = 0;
      for (std::size_t i = 0; i < sums.size(); ++i) {
        ASSERT_EQ(codes[i], array.adc().code(sums[i])) << sums[i];
        const int levels = (1 << bits) / 2 - 1;
        const double step = static_cast<double>(tile_rows) / levels;
        const double x = sums[i] / (step * array.cells().cell_scale());
        ties += std::fabs(std::fabs(x - std::trunc(x)) - 0.5) < 1e-9;
      }
      if (bits == 8 && tile_rows == 128) {
        EXPECT_GT(ties, 0);  // 4096 / 64 dot units = 63.5 steps of 128 / 127
      }
    }
  }
}


// ---- Fault injection: each fault of the test-chip campaign is the fault asked for -----------------

namespace {
// Round half away from zero, as the ADC.
double round_away(double x) { return x >= 0.0 ? std::floor(x + 0.5) : -std::floor(0.5 - x); }
}  // namespace

TEST(Faults, StuckModulesTakeTheirShareAndAlwaysKeepOrDrop) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 64, DropoutKind::spatial), 3);
  for (const bool ap : {false, true}) {
    HardwareConfig hw = HardwareConfig::ideal();
    (ap ? hw.faults.module_stuck_ap : hw.faults.module_stuck_p) = 0.2;
    int stuck = 0, modules = 0;
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
      const Chip chip(ir, hw, seed);
      for (int l = 0; l < static_cast<int>(chip.mapping().size()); ++l) {
        const DropoutBank& bank = chip.bank(l);
        for (int m = 0; m < bank.size(); ++m, ++modules) {
          const double p = bank.probability(m);
          ASSERT_TRUE(p == ir.spec.p || p == (ap ? 1.0 : 0.0)) << p;
          stuck += p != ir.spec.p;
        }
      }
    }
    ASSERT_GT(modules, 1000);
    // Binomial(modules, 0.2): the share within 4 standard deviations.
    EXPECT_NEAR(static_cast<double>(stuck) / modules, 0.2, 4.0 * std::sqrt(0.16 / modules)) << ap;
  }
}

TEST(Faults, ModuleDriftSwitchesWithTheDriftedDevice) {
  // Trimmed per module at the nominal device, then Ic0 or Delta moved: every module's probability
  // is the drifted device's under the trimmed current.
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 3);
  for (const bool delta : {false, true}) {
    HardwareConfig hw = HardwareConfig::ideal();
    (delta ? hw.faults.module_delta_drift : hw.faults.module_ic0_drift) = 0.02;
    const Chip chip(ir, hw, 4);
    MtjSwitching device = nominal_switching(hw.mtj, true);
    const double current = write_current_for(device, ir.spec.p, hw.dropout_module.pulse_width_ns);
    (delta ? device.delta : device.ic0_ua) *= 1.02;
    const double expected = switching_probability(device, current, hw.dropout_module.pulse_width_ns);
    EXPECT_LT(expected, ir.spec.p * 0.97);  // a harder device switches less
    const DropoutBank& bank = chip.bank(2);
    ASSERT_GT(bank.size(), 0);
    for (int m = 0; m < bank.size(); ++m) EXPECT_DOUBLE_EQ(bank.probability(m), expected);
  }
}

TEST(Faults, StuckCellsFlipTheirShareOfWeights) {
  // Stuck at P: an MTJ1 that should hold AP (weight -1) holds P, a +1 weight; stuck at AP the
  // other way round.
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 32, DropoutKind::spatial), 3);
  const Chip clean(ir, HardwareConfig::ideal(), 2);
  for (const bool ap : {false, true}) {
    HardwareConfig hw = HardwareConfig::ideal();
    (ap ? hw.faults.cell_stuck_ap : hw.faults.cell_stuck_p) = 0.05;
    const Chip faulty(ir, hw, 2);
    int exposed = 0, flipped = 0, lost = 0;
    for (int l = 1; l < static_cast<int>(faulty.mapping().size()); ++l) {
      const BitMatrix& a = faulty.array(l).weights();
      const BitMatrix& b = clean.array(l).weights();
      for (int j = 0; j < a.rows; ++j) {
        for (int r = 0; r < faulty.mapping()[l].rows; ++r) {
          const bool weak = ap ? b.get(j, r) : !b.get(j, r);  // the weights this fault can flip
          exposed += weak;
          flipped += weak && a.get(j, r) != b.get(j, r);
          lost += !weak && a.get(j, r) != b.get(j, r);
        }
      }
    }
    EXPECT_EQ(lost, 0) << ap;
    EXPECT_NEAR(static_cast<double>(flipped) / exposed, 0.05, 4.0 * std::sqrt(0.05 * 0.95 / exposed)) << ap;
  }
}

TEST(Faults, DriftAndAdcGainScaleWhatTheColumnsRead) {
  // Exact cells and a 16-bit ADC: a column through the ADCs reads sum_t round(G * tile dot_t).
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  HardwareConfig hw = HardwareConfig::ideal();
  hw.crossbar.tile_rows = 64;
  hw.faults.rp_drift = 0.25;
  hw.faults.tmr_drift = -0.2;
  hw.faults.adc_gain_error = 0.1;
  const Chip chip(ir, hw, 3);
  const CrossbarLayer& array = chip.array(1);
  ASSERT_TRUE(array.uses_adc());
  // G_half' / G_half by hand: G = 1 / R_P and 1 / (R_P (1 + TMR(V))), R_P ~ RA.
  const double v = hw.crossbar.read_voltage_v;
  const auto half = [&](double ra_scale, double tmr_scale) {
    MtjParams mtj = hw.mtj;
    mtj.ra_ohm_um2 *= ra_scale;
    mtj.tmr *= tmr_scale;
    return 0.5 * (1.0 / mtj.rp_ohm() - 1.0 / (mtj.rp_ohm() * (1.0 + tmr_at_bias(mtj, v))));
  };
  const double drift = half(1.25, 0.8) / half(1.0, 1.0);
  EXPECT_NEAR(crossbar_gain(hw), drift, 1e-12);
  EXPECT_NEAR(array.gain(), drift * 1.1, 1e-12);
  const Patches patches = driven_patches(chip, 5, 3);
  const int cols = chip.engine().layers()[1].shape.out_channels;
  int moved = 0;
  for (int m = 0; m < patches.signs.rows; m += 7) {
    const std::vector<std::int32_t> dots = window_dots(patches, m, array, cols);
    std::vector<double> read(static_cast<std::size_t>(cols));
    LayerEvents events;
    array.read_row(patches, m, dots.data(), read.data(), events);
    for (int j = 0; j < cols; ++j) {
      double expected = 0.0;
      for (int t = 0; t < array.cells().row_tiles(); ++t) expected += round_away(array.gain() * array.tile_dot(patches, m, j, t));
      ASSERT_EQ(read[static_cast<std::size_t>(j)], expected) << m << " " << j;
      moved += expected != dots[static_cast<std::size_t>(j)];
    }
  }
  EXPECT_GT(moved, 0);
}

TEST(Faults, SenseOffsetFaultGivesEveryAmplifierItsSizeWithEitherSign) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 32, DropoutKind::spatial), 6);
  HardwareConfig hw = HardwareConfig::ideal();
  hw.faults.sense_offset_ua = 5.0;
  hw.crossbar.tile_rows = 4096;  // one row tile: sense amplifiers alone
  const Chip chip(ir, hw, 8);
  const CrossbarLayer& array = chip.array(1);
  ASSERT_FALSE(array.uses_adc());
  int up = 0;
  const int cols = chip.mapping()[1].cols;
  for (int j = 0; j < cols; ++j) {
    EXPECT_NEAR(std::fabs(array.offset(j)) * array.cells().unit_ua(), 5.0, 1e-9);
    up += array.offset(j) > 0.0;
  }
  EXPECT_GT(up, 0);
  EXPECT_LT(up, cols);
}

// The sense offset's relative part, against its closed form: over the columns of a single-tile
// layer, sigma_rel x rows x V G_mid (in uA: derived driven_row_current_ua per row), and the
// absolute part adds in quadrature.
TEST(Chip, RelativeSenseOffsetScalesWithTheCurrentCompared) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 128, DropoutKind::spatial), 6);
  HardwareConfig hw = HardwareConfig::ideal();
  hw.crossbar.tile_rows = 4096;  // one row tile: sense amplifiers alone
  for (const double absolute : {0.0, 4.0}) {
    hw.crossbar.sense_offset_sigma_ua = absolute;
    hw.crossbar.sense_offset_relative = 0.01;
    const Chip chip(ir, hw, 8);
    const CrossbarLayer& array = chip.array(1);
    ASSERT_FALSE(array.uses_adc());
    const int cols = chip.mapping()[1].cols, rows = chip.mapping()[1].rows;
    const double v = hw.crossbar.read_voltage_v;
    const double gp = 1.0 / resistance_ohm(hw.mtj, MtjState::parallel, v), gap = 1.0 / resistance_ohm(hw.mtj, MtjState::antiparallel, v);
    const double compared_ua = rows * v * 0.5 * (gp + gap) * 1e6;
    double sum = 0, squares = 0;
    for (int j = 0; j < cols; ++j) {
      const double ua = array.offset(j) * array.cells().unit_ua();
      sum += ua;
      squares += ua * ua;
    }
    const double mean = sum / cols, sd = std::sqrt(squares / cols - mean * mean);
    const double want = std::sqrt(std::pow(0.01 * compared_ua, 2) + absolute * absolute);
    EXPECT_NEAR(sd, want, 0.15 * want) << cols << " columns of " << rows << " rows, " << absolute << " uA absolute";
    EXPECT_NEAR(mean, 0.0, 0.25 * want);
  }
  // Off: the ideal chip stays exact.
  HardwareConfig off = HardwareConfig::ideal();
  off.crossbar.tile_rows = 4096;
  EXPECT_EQ(Chip(ir, off, 8).array(1).offset(0), 0.0);
}

TEST(Faults, DeadTilesReadNothing) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  HardwareConfig hw = HardwareConfig::defaults();
  hw.crossbar.tile_rows = 64;
  hw.faults.dead_tiles = 3;
  const Chip chip(ir, hw, 5);
  const auto& dead = chip.arrays().dead_tiles();
  ASSERT_EQ(dead.size(), 3u);
  // The tiles of layer 1 that died read zero on every window; the others what they would have.
  const Chip clean(ir, [&] { HardwareConfig h = hw; h.faults.dead_tiles = 0; return h; }(), 5);
  const Patches patches = driven_patches(chip, 5, 3);
  const int cols = chip.mapping()[1].cols, tiles = chip.array(1).cells().row_tiles();
  std::vector<std::int32_t> a(static_cast<std::size_t>(tiles)), b(static_cast<std::size_t>(tiles));
  for (int m = 0; m < patches.signs.rows; m += 5) {
    for (int j = 0; j < cols; ++j) {
      chip.array(1).cells().tile_sums_reference(patches, m, j, a.data());
      clean.array(1).cells().tile_sums_reference(patches, m, j, b.data());
      for (int t = 0; t < tiles; ++t) {
        bool is_dead = false;
        for (const auto& d : dead) is_dead = is_dead || (d.layer == 1 && d.row_tile == t && d.col_tile == j / hw.crossbar.tile_cols);
        EXPECT_EQ(a[static_cast<std::size_t>(t)], is_dead ? 0 : b[static_cast<std::size_t>(t)]);
      }
    }
  }
  // Asking for more dead tiles than the chip has kills them all.
  hw.faults.dead_tiles = 100000;
  std::size_t total = 0;
  for (std::size_t l = 1; l < chip.mapping().size(); ++l) total += static_cast<std::size_t>(chip.mapping()[l].row_tiles * chip.mapping()[l].col_tiles);
  EXPECT_EQ(Chip(ir, hw, 5).arrays().dead_tiles().size(), total);
}

// IR drop on the chip (ir_drop.h): layer 1's first row tile and column tile, read for windows
// with a quarter of their rows undriven, against the nodal solution of that tile with the window's
// inputs; then the screen, which must leave analog every decision the wires could move, and
// calibration, which must bring the columns back toward their dots.
TEST(Chip, IrDropReadsTheTileAsTheNodalSolverDoes) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  HardwareConfig hw = HardwareConfig::ideal();
  hw.crossbar.tile_rows = 64;
  hw.crossbar.tile_cols = 16;
  hw.crossbar.wire_resistance_ohm = 1.75;
  const Chip chip(ir, hw, 3);
  const CrossbarLayer& array = chip.array(1);
  const CellArray& cells = array.cells();
  ASSERT_TRUE(cells.ir_drop());
  ASSERT_FALSE(array.exact());
  const MtjParams& mtj = hw.mtj;
  const double g_p = 1.0 / cell_resistance_ohm(mtj, MtjState::parallel, 0.1, 0.0);
  const double g_ap = 1.0 / cell_resistance_ohm(mtj, MtjState::antiparallel, 0.1, 0.0);
  const Patches window_patches = driven_patches(chip, 5, 3);
  const PatchRows patches(window_patches);
  const int rows = 64, cols = 16;
  double sq = 0, drop_sq = 0, n = 0;
  for (int m = 0; m < window_patches.signs.rows; m += 7) {
    TileCircuit t;
    t.rows = rows;
    t.cols = cols;
    t.wire_ohm = hw.crossbar.wire_resistance_ohm;
    t.read_v = hw.crossbar.read_voltage_v;
    t.ref_p.assign(rows, g_p);
    t.ref_ap.assign(rows, g_ap);
    t.driven.resize(rows);
    t.g.resize(static_cast<std::size_t>(rows) * cols);
    for (int r = 0; r < rows; ++r) {
      t.driven[static_cast<std::size_t>(r)] = patches.driven(m, r);
      for (int c = 0; c < cols; ++c) {
        t.g[static_cast<std::size_t>(r) * cols + c] = patches.sign(m, r) == array.weights().get(c, r) ? g_p : g_ap;
      }
    }
    const std::vector<double> nodal = nodal_column_values(t, 0.5 * (g_p - g_ap));
    // The fast model on the same tile, from the weights (no device variation here).
    std::vector<double> both(static_cast<std::size_t>(rows) * cols * 2);
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < cols; ++c) {
        const bool w = array.weights().get(c, r);
        both[(static_cast<std::size_t>(r) * cols + c) * 2 + 1] = w ? g_p : g_ap;
        both[(static_cast<std::size_t>(r) * cols + c) * 2] = w ? g_ap : g_p;
      }
    }
    const auto map = ir_drop_map(rows, cols, g_p, g_ap, t.wire_ohm, t.read_v);
    const TileReads reads = fast_tile_reads(*map, both, t.ref_p, t.ref_ap);
    std::vector<double> beta(rows), beta_p(rows), beta_ap(rows);
    const double shared = bit_line_relief(*map).betas(t.driven.data(), beta.data(), beta_p.data(), beta_ap.data());
    for (int c = 0; c < cols; ++c) {
      std::vector<std::int32_t> sums(static_cast<std::size_t>(cells.row_tiles()));
      cells.tile_sums_reference(patches, m, c, sums.data());
      const double chip_value = static_cast<double>(sums[0]) / cells.cell_scale();
      const std::int32_t dot = array.tile_dot(patches, m, c, 0);
      // The fast model: each driven row's cell and reference reads, and what the undriven rows give
      // back (+beta where the input matches the weight, -beta where not).
      double cells_part = 0.0, relief = shared;
      for (int r = 0; r < rows; ++r) {
        if (!t.driven[static_cast<std::size_t>(r)]) continue;
        const int one = patches.sign(m, r) ? 1 : 0;
        const std::size_t cell = (static_cast<std::size_t>(r) * cols + c) * 2 + static_cast<std::size_t>(one);
        cells_part += (reads.cell[cell] - reads.ref[static_cast<std::size_t>(r) * 2 + static_cast<std::size_t>(one)]) / (0.5 * (g_p - g_ap));
        const int differ = static_cast<int>(patches.sign(m, r)) ^ static_cast<int>(array.weights().get(c, r));
        const double s = 1.0 - 2.0 * differ;
        relief += s * beta[static_cast<std::size_t>(r)];
      }
      const double fast = cells_part + relief;
      // The chip's cells hold the fast model's values and its relief adds what the undriven rows
      // give back, to their fixed-point rounding.
      ASSERT_NEAR(chip_value, fast, (rows + 1) * 0.5 / cells.cell_scale()) << m << " " << c;
      sq += std::pow(chip_value - nodal[static_cast<std::size_t>(c)], 2);
      drop_sq += std::pow(dot - nodal[static_cast<std::size_t>(c)], 2);
      n += 1;
    }
  }
  const double rms = std::sqrt(sq / n), drop = std::sqrt(drop_sq / n);
  std::printf("chip vs nodal: rms %.3f dot units; the wires take %.3f rms\n", rms, drop);
  // Windows here drive about 3/4 of their rows (fewer at the map's borders), where the map
  // assumes all and the relief gives back to first order (ir_drop.h).
  EXPECT_GT(drop, 2.0);  // the wires matter at this resistance
  EXPECT_LT(rms, 0.3 * drop);
}

// Layer 1's screened decisions against the all-analog ones on windows with random undriven rows
// and under spatial masks: they must be equal. Returns the share of decisions the screen skipped.
double expect_screen_leaves_analog_what_it_must(const ModelIR& ir, const HardwareConfig& hw, const char* what) {
  HardwareConfig all_analog = hw;
  all_analog.crossbar.screen_sigmas = 0.0;
  const Chip chip(ir, hw, 4), plain(ir, all_analog, 4);
  const auto& layer = chip.engine().layers()[1];
  const CrossbarLayer& array = chip.array(1);
  const int cols = layer.shape.out_channels, words = (cols + kBitsPerWord - 1) / kBitsPerWord;
  std::uint64_t skipped = 0, total = 0;
  for (const bool spatial : {false, true}) {
    const Patches patches = spatial ? spatial_patches(chip, 5, 3) : driven_patches(chip, 5, 3);
    for (int m = 0; m < patches.signs.rows; ++m) {
      const std::vector<std::int32_t> dots = window_dots(patches, m, array, cols);
      std::vector<BitWord> screened(static_cast<std::size_t>(words)), analog(static_cast<std::size_t>(words));
      LayerEvents events, all;
      array.sense_row(patches, m, dots.data(), layer.dot_sign.data(), layer.dot_bound[1].data(), screened.data(), events);
      plain.array(1).sense_row(patches, m, dots.data(), layer.dot_sign.data(), layer.dot_bound[1].data(), analog.data(), all);
      EXPECT_EQ(screened, analog) << what << ", window " << m;
      if (screened != analog) return 0.0;
      skipped += events.simulated_decisions - events.analog_decisions;
      total += events.simulated_decisions;
    }
  }
  const double share = static_cast<double>(skipped) / static_cast<double>(total);
  std::printf("%s: %.1f %% of decisions skip the analog sum\n", what, 100.0 * share);
  return share;
}

TEST(Chip, IrDropScreenLeavesAnalogEveryDecisionTheWiresCanMove) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  for (const bool calibrated : {false, true}) {
    for (const double wire : {0.05, 0.5}) {
      HardwareConfig hw = HardwareConfig::defaults();
      hw.crossbar.tile_rows = 64;
      hw.crossbar.wire_resistance_ohm = wire;
      if (calibrated) hw.crossbar.column_calibration = ColumnCalibration::gain_offset;
      const std::string what = fmt::format("wire {:.2f} Ohm, calibrated {}", wire, calibrated);
      const double skipped = expect_screen_leaves_analog_what_it_must(ir, hw, what.c_str());
      if (wire < 0.1) {
        EXPECT_GT(skipped, 0.0);  // small wires: the screen still skips
      } else {
        // Centred on the wires' expected part, the screen still skips a fifth (measured: 31 %
        // calibrated and not; 13-14 % when it was centred on the dot and bounded the whole part,
        // 24 % calibrated before it conditioned on the cells under calibration).
        EXPECT_GT(skipped, 0.2);
      }
    }
  }
}

TEST(Chip, ColumnCalibrationBringsColumnsUnderIrDropBackToTheirDots) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  double error[2] = {0, 0};
  for (const bool calibrated : {false, true}) {
    HardwareConfig hw = HardwareConfig::unwired();
    hw.crossbar.tile_rows = 64;
    hw.crossbar.wire_resistance_ohm = 0.5;
    if (calibrated) hw.crossbar.column_calibration = ColumnCalibration::gain_offset;
    const Chip chip(ir, hw, 4);
    const CrossbarLayer& array = chip.array(1);
    ASSERT_EQ(array.cells().calibrated(), calibrated);
    const int cols = chip.engine().layers()[1].shape.out_channels;
    const Patches patches = spatial_patches(chip, 5, 3);
    double sq = 0, n = 0;
    std::vector<std::int32_t> sums(static_cast<std::size_t>(array.cells().row_tiles()));
    for (int m = 0; m < patches.signs.rows; m += 3) {
      const std::vector<std::int32_t> dots = window_dots(patches, m, array, cols);
      for (int j = 0; j < cols; ++j) {
        array.cells().tile_sums_reference(patches, m, j, sums.data());
        sq += std::pow(array.column_value(j, sums.data()) - dots[static_cast<std::size_t>(j)], 2);
        n += 1;
      }
    }
    error[calibrated] = std::sqrt(sq / n);
  }
  std::printf("rms of value - dot at 0.5 Ohm: %.3f uncalibrated, %.3f calibrated\n", error[0], error[1]);
  // Calibrated with every row driven, it over-corrects windows that drive fewer (less drop):
  // it helps, but leaves the pattern's part.
  EXPECT_LT(error[1], 0.75 * error[0]);
}

// Reference-generator error: every column of a tile reads e x the reference current of the tile's
// driven rows below its dot, one e per tile and chip (nominal devices here: e x mid_units per
// driven row); the screen leaves analog what it can move; calibration with every row driven
// takes it away up to the rows a window leaves undriven.
TEST(Chip, ReferenceErrorShiftsEachTileByItsDrivenRows) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 6);
  HardwareConfig hw = HardwareConfig::ideal();
  hw.crossbar.tile_rows = 64;
  hw.crossbar.tile_cols = 8;
  hw.crossbar.reference_error_relative = 0.02;
  const std::uint64_t seed = 3;
  const Chip chip(ir, hw, seed);
  const CrossbarLayer& array = chip.array(1);
  const CellArray& cells = array.cells();
  ASSERT_TRUE(cells.reference_error());
  ASSERT_TRUE(cells.systematic());
  ASSERT_FALSE(array.exact());
  ASSERT_GT(cells.row_tiles(), 1);
  ASSERT_GT(cells.cols(), hw.crossbar.tile_cols);
  const double mid = cells.mid_units(), scale = cells.cell_scale();
  const Patches window_patches = driven_patches(chip, 5, 3);
  const PatchRows patches(window_patches);
  std::vector<std::int32_t> sums(static_cast<std::size_t>(cells.row_tiles()));
  double largest = 0.0;
  for (int m = 0; m < window_patches.signs.rows; m += 5) {
    for (int j = 0; j < cells.cols(); ++j) {
      cells.tile_sums_reference(patches, m, j, sums.data());
      for (int t = 0; t < cells.row_tiles(); ++t) {
        int driven = 0;
        for (int r = t * hw.crossbar.tile_rows; r < std::min(cells.rows(), (t + 1) * hw.crossbar.tile_rows); ++r) {
          driven += patches.driven(m, r) ? 1 : 0;
        }
        const double e = hw.crossbar.reference_error_relative *
                         gaussian_at(seed, streams::kReferenceError, 1, static_cast<std::uint64_t>(t),
                                     static_cast<std::uint64_t>(j / hw.crossbar.tile_cols));
        const double expected = array.tile_dot(patches, m, j, t) - e * driven * mid;
        ASSERT_NEAR(sums[static_cast<std::size_t>(t)] / scale, expected, driven * 0.5 / scale + 1e-9)
            << "window " << m << ", column " << j << ", tile " << t;
        largest = std::max(largest, std::fabs(e * driven * mid));
      }
    }
  }
  EXPECT_GT(largest, 1.0);  // 2 % of a tile's reference current is several dot units

  // The screen, with the devices' spread and offsets too, uncalibrated and calibrated.
  for (const bool calibrated : {false, true}) {
    HardwareConfig real = HardwareConfig::defaults();
    real.crossbar.tile_rows = 64;
    real.crossbar.reference_error_relative = 0.01;
    if (calibrated) real.crossbar.column_calibration = ColumnCalibration::gain_offset;
    const std::string what = fmt::format("reference error 1 %, calibrated {}", calibrated);
    EXPECT_GT(expect_screen_leaves_analog_what_it_must(ir, real, what.c_str()), 0.0);
  }

  // Calibration (every row driven) on windows under a spatial mask: what it leaves is the error
  // of the rows the window does not drive, e (n - n_driven) mid_units per tile.
  HardwareConfig c = hw;
  c.crossbar.column_calibration = ColumnCalibration::gain_offset;
  const Chip calibrated(ir, c, seed);
  const CrossbarLayer& a = calibrated.array(1);
  const Patches spatial = spatial_patches(calibrated, 5, 3);
  const PatchRows spatial_rows(spatial);
  double sq[2] = {0, 0}, n = 0;
  for (int m = 0; m < spatial.signs.rows; m += 3) {
    const std::vector<std::int32_t> dots = window_dots(spatial, m, a, cells.cols());
    for (int j = 0; j < cells.cols(); ++j) {
      double left = 0.0, tolerance = 0.0, uncalibrated = 0.0;
      a.cells().tile_sums_reference(spatial_rows, m, j, sums.data());
      for (int t = 0; t < cells.row_tiles(); ++t) {
        const int r0 = t * hw.crossbar.tile_rows, r1 = std::min(cells.rows(), r0 + hw.crossbar.tile_rows);
        int driven = 0;
        for (int r = r0; r < r1; ++r) driven += spatial_rows.driven(m, r) ? 1 : 0;
        const double e = hw.crossbar.reference_error_relative *
                         gaussian_at(seed, streams::kReferenceError, 1, static_cast<std::uint64_t>(t),
                                     static_cast<std::uint64_t>(j / hw.crossbar.tile_cols));
        left += e * (r1 - r0 - driven) * mid;
        uncalibrated -= e * driven * mid;
        // Each value's rounding, in the window's sum and in the calibration's, and the ADC's.
        tolerance += (driven + (r1 - r0)) * 0.5 / scale + 0.5 * a.adc().step();
      }
      const double value = a.column_value(j, sums.data()), dot = dots[static_cast<std::size_t>(j)];
      ASSERT_NEAR(value, dot + left, tolerance + 1e-9) << "window " << m << ", column " << j;
      sq[0] += uncalibrated * uncalibrated;
      sq[1] += (value - dot) * (value - dot);
      n += 1;
    }
  }
  std::printf("rms of value - dot under 2 %% reference error, spatial windows: %.3f uncalibrated, %.3f calibrated\n",
              std::sqrt(sq[0] / n), std::sqrt(sq[1] / n));
  EXPECT_LT(sq[1], sq[0]);
}

// IR drop's relief taken in the SIMD pass over the rows (its betas as bytes, the tile's base in a
// lane) gives the plain loop's integers: every column of a window at once and every other one
// (groups of fewer than four), several row and column tiles, random and spatial keep bits, dead
// tiles, and wires from thin to far thicker than any chip's (where the betas are largest).
TEST(Chip, IrDropReliefInTheSimdSumsMatchesThePlainLoop) {
  const ModelIR ir = spread_model_ir(spec_of("vgg-small", 16, DropoutKind::spatial), 4);
  for (const double wire : {0.1, 1.75, 20.0}) {
    HardwareConfig hw = HardwareConfig::defaults();
    hw.crossbar.tile_rows = 64;
    hw.crossbar.tile_cols = 8;
    hw.crossbar.wire_resistance_ohm = wire;
    hw.faults.dead_tiles = 6;
    const Chip chip(ir, hw, 5);
    const CrossbarLayer& array = chip.array(1);
    const CellArray& cells = array.cells();
    ASSERT_TRUE(cells.ir_drop());
    const int cols = cells.cols(), tiles = cells.row_tiles();
    ASSERT_GT(tiles, 1);
    ASSERT_GT(cols, hw.crossbar.tile_cols);
    for (const bool spatial : {false, true}) {
      const Patches patches = spatial ? spatial_patches(chip, 2, 7) : driven_patches(chip, 2, 7);
      for (int m = 0; m < patches.signs.rows; m += 3) {
        for (const int step : {1, 2}) {
          std::vector<int> columns;
          for (int j = 0; j < cols; j += step) columns.push_back(j);
          const int count = static_cast<int>(columns.size());
          std::vector<std::int32_t> fast(static_cast<std::size_t>(count) * tiles), plain(static_cast<std::size_t>(tiles));
          cells.tile_sums(patches, m, columns.data(), count, fast.data());
          for (int i = 0; i < count; ++i) {
            cells.tile_sums_reference(patches, m, columns[static_cast<std::size_t>(i)], plain.data());
            for (int t = 0; t < tiles; ++t) {
              ASSERT_EQ(fast[tile_sum_index(i, t, count, tiles)], plain[static_cast<std::size_t>(t)])
                  << wire << " Ohm, window " << m << ", column " << columns[static_cast<std::size_t>(i)] << ", tile " << t;
            }
          }
        }
      }
    }
  }
}

TEST(Chip, ReliefMatchedSumSimdMatchesThePlainLoop) {
  std::mt19937_64 gen(17);
  for (const int words : {1, 2, 3, 18}) {
    std::vector<BitWord> x(static_cast<std::size_t>(words)), w(x), keep(x);
    std::vector<std::int32_t> beta(static_cast<std::size_t>(words) * kBitsPerWord);
    for (int trial = 0; trial < 20; ++trial) {
      for (int i = 0; i < words; ++i) x[i] = gen(), w[i] = gen(), keep[i] = gen() | gen();
      for (std::int32_t& b : beta) b = static_cast<std::int32_t>(gen() % 2001) - 1000;
      std::int32_t counted = 0;  // bit by bit
      for (int r = 0; r < words * kBitsPerWord; ++r) {
        const BitWord bit = BitWord{1} << (r % kBitsPerWord);
        const int i = r / kBitsPerWord;
        if ((keep[i] & bit) && !((x[i] ^ w[i]) & bit)) counted += beta[static_cast<std::size_t>(r)];
      }
      EXPECT_EQ(matched_sum(x.data(), w.data(), keep.data(), beta.data(), words), counted);
      std::int32_t simd = 0;
      if (cpu_features().avx512dq && matched_sum_avx512(x.data(), w.data(), keep.data(), beta.data(), words, simd)) {
        EXPECT_EQ(simd, counted) << words << " words";
      }
    }
  }
}
