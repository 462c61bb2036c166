// Benchmarks of the bit-packed kernels on the shapes of 3x3 binary convolutions:
// bgemm (dispatched) vs bgemm_reference, and im2col_bits. "MAC/s" counts binary MACs:
// M output pixels x N output channels x 9 * C bits.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "engine/bit_matrix.h"
#include "engine/bgemm.h"
#include "engine/channel_conv.h"
#include "engine/narrow_conv.h"
#include "engine/im2col.h"
#include "popcount_roof.h"

namespace spinbayes {
namespace {

// A channels x size x size map of random signs, with a random keep mask (p = 0.1) when `dropout`.
BinaryMap random_map(int channels, int size, bool dropout) {
  std::mt19937_64 rng(42);
  BinaryMap map;
  map.channels = channels;
  map.height = map.width = size;
  map.signs = BitMatrix(size * size, channels);
  for (int r = 0; r < map.signs.rows; ++r)
    for (int c = 0; c < channels; ++c) map.signs.set(r, c, rng() & 1);
  if (dropout) {
    map.keep = BitMatrix(size * size, channels);
    for (int r = 0; r < map.keep.rows; ++r)
      for (int c = 0; c < channels; ++c) map.keep.set(r, c, rng() % 10 != 0);
  }
  return map;
}

BitMatrix random_weights(int out_channels, int in_channels, int kernel = 3) {
  std::mt19937_64 rng(43);
  std::vector<std::int8_t> w(static_cast<std::size_t>(out_channels) * in_channels * kernel * kernel);
  for (auto& v : w) v = (rng() & 1) ? 1 : -1;
  return pack_weights(w.data(), out_channels, in_channels, kernel);
}

// Args: input channels, map size, output channels. One benchmark per kernel this CPU has
// ("portable" is the reference).
void BM_Conv3x3Gemm(benchmark::State& state, const std::string& kernel) {
  const int channels = static_cast<int>(state.range(0)), size = static_cast<int>(state.range(1));
  Patches patches;
  im2col_bits(random_map(channels, size, true), 3, 1, 1, patches);
  const BitMatrix weights = random_weights(static_cast<int>(state.range(2)), channels);
  const PackedOperand packed = pack_operand(weights);
  std::vector<std::int32_t> out(static_cast<std::size_t>(patches.signs.rows) * weights.rows);
  for (auto _ : state) {
    bgemm_using(kernel, patches.signs, patches.keep, patches.kept, weights, packed, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double macs = double{1} * patches.signs.rows * weights.rows * patches.signs.bits;
  state.counters["MAC/s"] = benchmark::Counter(macs, benchmark::Counter::kIsIterationInvariantRate);
}

// A whole 3x3 layer under spatial dropout, as the engine runs it: signs gathered, keep rows copied
// per rectangle of taps, GEMM. Args as BM_Conv3x3Gemm.
void BM_ChannelMaskedConv3x3(benchmark::State& state) {
  const int channels = static_cast<int>(state.range(0)), size = static_cast<int>(state.range(1));
  const BinaryMap map = random_map(channels, size, false);
  const BitMatrix weights = random_weights(static_cast<int>(state.range(2)), channels);
  const PackedOperand packed = pack_operand(weights);
  std::vector<BitWord> channel_keep(static_cast<std::size_t>(words_for_bits(channels)), 0x5bd1e995f7a3c1e9ULL);
  ChannelConvScratch scratch;
  std::vector<std::int32_t> out(static_cast<std::size_t>(size) * size * weights.rows);
  for (auto _ : state) {
    channel_masked_conv(map, channel_keep, 3, 1, 1, weights, packed, scratch, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double macs = double{1} * size * size * weights.rows * weights.bits;
  state.counters["MAC/s"] = benchmark::Counter(macs, benchmark::Counter::kIsIterationInvariantRate);
}

// The dots alone of resnet20's convolutions (channel_masked_dots: the narrow kernel where the CPU
// has BITALG): args channels, map size, out channels, stride, kernel.
void BM_ChannelMaskedDots(benchmark::State& state) {
  const int channels = static_cast<int>(state.range(0)), size = static_cast<int>(state.range(1));
  const int stride = static_cast<int>(state.range(3)), kernel = static_cast<int>(state.range(4));
  const int padding = kernel / 2, out = (size + 2 * padding - kernel) / stride + 1;
  const BinaryMap map = random_map(channels, size, false);
  const BitMatrix weights = random_weights(static_cast<int>(state.range(2)), channels, kernel);
  const PackedOperand packed = pack_operand(weights);
  std::vector<BitWord> channel_keep(static_cast<std::size_t>(words_for_bits(channels)), 0x5bd1e995f7a3c1e9ULL);
  ChannelConvScratch scratch;
  std::vector<std::int32_t> dots(static_cast<std::size_t>(out) * out * weights.rows);
  for (auto _ : state) {
    channel_masked_dots(map, channel_keep, kernel, stride, padding, weights, packed, scratch, dots.data());
    benchmark::DoNotOptimize(dots.data());
    benchmark::ClobberMemory();
  }
  const double macs = double{1} * out * out * weights.rows * weights.bits;
  state.counters["MAC/s"] = benchmark::Counter(macs, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ChannelMaskedDots)
    ->ArgNames({"C", "map", "out", "stride", "k"})
    ->Args({16, 28, 16, 1, 3})
    ->Args({16, 28, 32, 2, 3})
    ->Args({16, 28, 32, 2, 1})
    ->Args({32, 14, 32, 1, 3})
    ->Args({32, 14, 64, 2, 3})
    ->Args({32, 14, 64, 2, 1})
    ->Args({64, 7, 64, 1, 3})
    ->Args({64, 14, 128, 2, 1})
    ->UseRealTime();

// A 1x1 layer's convolution and decisions fused (pointwise_signs): the shortcut shapes above,
// against their dots alone.
void BM_PointwiseSigns(benchmark::State& state) {
  const int channels = static_cast<int>(state.range(0)), size = static_cast<int>(state.range(1));
  const int stride = static_cast<int>(state.range(3)), out = (size - 1) / stride + 1;
  const BinaryMap map = random_map(channels, size, false);
  const BitMatrix weights = random_weights(static_cast<int>(state.range(2)), channels, 1);
  const PackedOperand packed = pack_operand(weights);
  std::vector<BitWord> channel_keep(1, 0x5bd1e995f7a3c1e9ULL);
  std::vector<std::int32_t> sign(static_cast<std::size_t>(weights.rows)), bound(sign.size());
  for (std::size_t j = 0; j < sign.size(); ++j) sign[j] = j % 3 == 0 ? -1 : 1, bound[j] = static_cast<int>(j % 5) - 2;
  NarrowConvScratch scratch;
  BitMatrix signs(out * out, weights.rows);
  if (!pointwise_signs_run(channels, 1, stride, 0)) {
    state.SkipWithError("pointwise_signs does not run on this CPU");
    return;
  }
  for (auto _ : state) {
    pointwise_signs(map, channel_keep, stride, weights, packed, sign.data(), bound.data(), nullptr, nullptr, scratch,
                    signs);
    benchmark::DoNotOptimize(signs.data.data());
    benchmark::ClobberMemory();
  }
  const double macs = double{1} * out * out * weights.rows * weights.bits;
  state.counters["MAC/s"] = benchmark::Counter(macs, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PointwiseSigns)
    ->ArgNames({"C", "map", "out", "stride"})
    ->Args({16, 28, 32, 2})
    ->Args({32, 14, 64, 2})
    ->Args({64, 14, 128, 2})
    ->UseRealTime();

void BM_Im2colBits(benchmark::State& state) {
  const int channels = static_cast<int>(state.range(0)), size = static_cast<int>(state.range(1));
  const BinaryMap map = random_map(channels, size, state.range(2) != 0);
  Patches patches;
  for (auto _ : state) {
    im2col_bits(map, 3, 1, 1, patches);
    benchmark::DoNotOptimize(patches.signs.data.data());
    benchmark::ClobberMemory();
  }
  // Bytes of patch bits (signs and keep) written per iteration.
  state.SetBytesProcessed(state.iterations() * 2 * static_cast<std::int64_t>(patches.signs.data.size()) *
                          static_cast<std::int64_t>(sizeof(BitWord)));
  state.SetItemsProcessed(state.iterations() * patches.signs.rows);
}

// The 3x3 binary convolutions of resnet20 (width 16) and vgg-small (width 32) on 28 x 28 images.
void ConvShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"C", "map", "out"});
  b->Args({16, 28, 16})->Args({32, 14, 32})->Args({32, 28, 32})->Args({32, 14, 64})->Args({64, 14, 64})->Args({64, 7, 128})->Args({128, 7, 128});
}

const bool kGemmsRegistered = [] {
  for (const std::string& kernel : bgemm_kernels()) {
    benchmark::RegisterBenchmark(("BM_Conv3x3Gemm/" + kernel).c_str(), BM_Conv3x3Gemm, kernel)
        ->Apply(ConvShapes)
        ->UseRealTime();
  }
  return true;
}();
BENCHMARK(BM_ChannelMaskedConv3x3)->Apply(ConvShapes)->UseRealTime();
BENCHMARK(BM_Im2colBits)
    ->ArgNames({"C", "map", "dropout"})
    ->ArgsProduct({{32, 64}, {28, 14}, {0, 1}})
    ->UseRealTime();

void BM_PopcountRoof(benchmark::State& state) {
  double roof = 0.0;
  for (auto _ : state) roof = measure_popcount_roof(0.2, static_cast<int>(state.range(0)));
  state.counters["MAC/s"] = roof;
}
BENCHMARK(BM_PopcountRoof)->ArgName("threads")->Arg(1)->Arg(2)->Iterations(1)->UseRealTime();

}  // namespace
}  // namespace spinbayes
