// One crossbar layer's read-out: the screen's centre and variance against the analog sums, the SIMD
// tile sums, screen and ADC codes against their plain loops.
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
  EXPECT_FALSE(array.screen().terms(driven_patches(chip, 5, 3), 0).conditioned);
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
        std::vector<std::int32_t> sums(static_cast<std::size_t>(array.cells().row_tiles()));
        for (int j = 0; j < cols; ++j) {
          array.cells().tile_sums_reference(patches, m, j, sums.data());
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

