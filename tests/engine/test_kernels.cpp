// Tests of the bit-packed kernels: weight packing and im2col against a naive integer convolution,
// the dispatched bgemm against the reference bit for bit, and the popcount roof.
#include "engine/bit_matrix.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "engine/bgemm.h"
#include "engine/channel_conv.h"
#include "engine/im2col.h"
#include "engine/threshold.h"
#include "popcount_roof.h"

namespace spinbayes {
namespace {

// Uniform in [0, n) from the raw generator output (test data only).
int pick(std::mt19937_64& rng, int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); }
template <class T, std::size_t N>
T pick(std::mt19937_64& rng, const std::array<T, N>& values) {
  return values[static_cast<std::size_t>(pick(rng, static_cast<int>(N)))];
}

// Random bits at the given density; the bits past `bits` stay 0, as the contract requires.
BitMatrix random_bits(std::mt19937_64& rng, int rows, int bits, double density = 0.5) {
  BitMatrix m(rows, bits);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < bits; ++i)
      if (static_cast<double>(rng() >> 11) * 0x1.0p-53 < density) m.set(r, i, true);
  return m;
}

// True when every bit past `bits` in every row is 0.
bool padding_clear(const BitMatrix& m) {
  for (int r = 0; r < m.rows; ++r)
    for (int i = m.bits; i < m.words * kBitsPerWord; ++i)
      if (m.get(r, i)) return false;
  return true;
}

enum class KeepMode { kNone, kElement, kChannel };

// A +-1 feature map with its keep mask, as ints and as a BinaryMap.
struct TestMap {
  int c, h, w;
  std::vector<int> value;  // (y, x, c), +1 / -1
  std::vector<int> keep;   // (y, x, c), 0 / 1
  BinaryMap bits;
};

TestMap random_map(std::mt19937_64& rng, int c, int h, int w, KeepMode mode) {
  TestMap m{c, h, w, {}, {}, {}};
  const int n = h * w * c;
  m.value.resize(n);
  m.keep.assign(n, 1);
  std::vector<int> channel_keep(c);
  for (int& k : channel_keep) k = pick(rng, 4) != 0;
  for (int i = 0; i < n; ++i) {
    m.value[i] = pick(rng, 2) ? 1 : -1;
    if (mode == KeepMode::kElement) m.keep[i] = pick(rng, 3) != 0;
    if (mode == KeepMode::kChannel) m.keep[i] = channel_keep[i % c];
  }
  m.bits.channels = c;
  m.bits.height = h;
  m.bits.width = w;
  m.bits.signs = BitMatrix(h * w, c);
  if (mode != KeepMode::kNone) m.bits.keep = BitMatrix(h * w, c);
  for (int p = 0; p < h * w; ++p)
    for (int ch = 0; ch < c; ++ch) {
      const int i = p * c + ch;
      m.bits.signs.set(p, ch, m.value[i] > 0);
      if (mode != KeepMode::kNone) m.bits.keep.set(p, ch, m.keep[i] != 0);
    }
  return m;
}

// Bit-by-bit im2col, straight from the contract.
Patches im2col_plain(const BinaryMap& map, int k, int stride, int pad) {
  Patches p;
  p.out_h = (map.height + 2 * pad - k) / stride + 1;
  p.out_w = (map.width + 2 * pad - k) / stride + 1;
  const int rows = p.out_h * p.out_w, bits = k * k * map.channels;
  p.signs = BitMatrix(rows, bits);
  p.keep = BitMatrix(rows, bits);
  p.kept.assign(rows, 0);
  for (int oy = 0; oy < p.out_h; ++oy)
    for (int ox = 0; ox < p.out_w; ++ox) {
      const int r = oy * p.out_w + ox;
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx) {
          const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
          if (iy < 0 || iy >= map.height || ix < 0 || ix >= map.width) continue;
          for (int c = 0; c < map.channels; ++c) {
            const int pixel = iy * map.width + ix, bit = (ky * k + kx) * map.channels + c;
            const bool keep = map.keep.data.empty() || map.keep.get(pixel, c);
            p.signs.set(r, bit, map.signs.get(pixel, c));
            p.keep.set(r, bit, keep);
            p.kept[r] += keep;
          }
        }
    }
  return p;
}

// out[(oy * out_w + ox) * o + j]: the convolution of +-1 ints with zero padding, dropped inputs 0.
std::vector<std::int32_t> naive_conv(const TestMap& m, const std::vector<std::int8_t>& weights, int o, int k,
                                     int stride, int pad) {
  const int out_h = (m.h + 2 * pad - k) / stride + 1, out_w = (m.w + 2 * pad - k) / stride + 1;
  std::vector<std::int32_t> out(static_cast<std::size_t>(out_h) * out_w * o, 0);
  for (int oy = 0; oy < out_h; ++oy)
    for (int ox = 0; ox < out_w; ++ox)
      for (int j = 0; j < o; ++j) {
        std::int32_t sum = 0;
        for (int c = 0; c < m.c; ++c)
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
              const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
              if (iy < 0 || iy >= m.h || ix < 0 || ix >= m.w) continue;
              const int i = (iy * m.w + ix) * m.c + c;
              sum += m.keep[i] * m.value[i] * weights[((j * m.c + c) * k + ky) * k + kx];
            }
        out[(static_cast<std::size_t>(oy) * out_w + ox) * o + j] = sum;
      }
  return out;
}

bool same_bits(const BitMatrix& x, const BitMatrix& y) {
  return x.rows == y.rows && x.bits == y.bits && x.words == y.words && x.data == y.data;
}

TEST(PackWeights, ReordersLibTorchLayoutToPatchOrder) {
  // 2 outputs, 2 channels, 2x2 kernel; LibTorch order (o, c, ky, kx).
  const std::vector<std::int8_t> w = {
      1, -1, -1, -1, /* o0 c0 */ -1, -1, -1, 1,  // o0 c1
      -1, 1, -1, -1, /* o1 c0 */ 1, -1, 1, -1,   // o1 c1
  };
  const BitMatrix p = pack_weights(w.data(), 2, 2, 2);
  ASSERT_EQ(p.rows, 2);
  ASSERT_EQ(p.bits, 8);
  ASSERT_EQ(p.words, 1);
  // Bit (ky * 2 + kx) * 2 + c.
  EXPECT_EQ(p.row(0)[0], (1u << 0) | (1u << 7));                // c0 tap0, c1 tap3
  EXPECT_EQ(p.row(1)[0], (1u << 2) | (1u << 1) | (1u << 5));     // c0 tap1, c1 taps 0 and 2
}

TEST(PackWeights, ZeroCountsAsPlusOne) {
  const std::vector<std::int8_t> w = {0, -1, 1};
  const BitMatrix p = pack_weights(w.data(), 1, 3, 1);
  EXPECT_EQ(p.row(0)[0], 0b101u);
}

TEST(Im2colBits, CornerAndCentreOfAPaddedMap) {
  std::mt19937_64 rng(7);
  const TestMap m = random_map(rng, 1, 3, 3, KeepMode::kNone);
  Patches p;
  im2col_bits(m.bits, 3, 1, 1, p);
  ASSERT_EQ(p.out_h, 3);
  ASSERT_EQ(p.out_w, 3);
  EXPECT_EQ(p.kept[0], 4);  // corner: 2x2 taps inside
  EXPECT_EQ(p.kept[1], 6);  // edge
  EXPECT_EQ(p.kept[4], 9);  // centre
  EXPECT_EQ(p.keep.row(0)[0], 0b110110000u);  // taps (1,1) (1,2) (2,1) (2,2)
  for (int i = 0; i < 9; ++i) EXPECT_EQ(p.signs.get(4, i), m.bits.signs.get(i, 0)) << i;
}

TEST(Im2colBits, IgnoresStrayBitsPastTheChannels) {
  std::mt19937_64 rng(9);
  for (int c : {3, 40, 70}) {  // 40: the byte-copying path
    TestMap m = random_map(rng, c, 4, 5, KeepMode::kElement);
    Patches clean, stray;
    im2col_bits(m.bits, 3, 1, 1, clean);
    for (BitMatrix* mat : {&m.bits.signs, &m.bits.keep})
      for (int r = 0; r < mat->rows; ++r) mat->row(r)[mat->words - 1] |= ~BitWord{0} << (c % kBitsPerWord);
    im2col_bits(m.bits, 3, 1, 1, stray);
    EXPECT_TRUE(same_bits(clean.signs, stray.signs)) << c;
    EXPECT_TRUE(same_bits(clean.keep, stray.keep)) << c;
    EXPECT_EQ(clean.kept, stray.kept) << c;
  }
}

// The byte-copying path (channels a multiple of 8) against the bit-packing reference, on stacks
// of maps with and without masks, every channel count from 8 to 136 in steps of 8.
TEST(Im2colBits, ByteCopyingPathEqualsTheReference) {
  std::mt19937_64 rng(31);
  Patches fast, reference;
  for (int trial = 0; trial < 80; ++trial) {
    const int c = 8 * (1 + trial % 17), k = 1 + 2 * pick(rng, 3), stride = 1 + pick(rng, 2), pad = pick(rng, 3);
    int h, w;
    do {
      h = 1 + pick(rng, 12);
      w = 1 + pick(rng, 12);
    } while (h + 2 * pad < k || w + 2 * pad < k);
    const auto mode = static_cast<KeepMode>(trial % 3);
    std::vector<BinaryMap> maps;
    for (int s = 1 + pick(rng, 3); s > 0; --s) maps.push_back(random_map(rng, c, h, w, mode).bits);
    SCOPED_TRACE("trial " + std::to_string(trial) + ": c=" + std::to_string(c) + " k=" + std::to_string(k) +
                 " stride=" + std::to_string(stride) + " pad=" + std::to_string(pad) + " maps " +
                 std::to_string(maps.size()));
    // Stray bits past the channels must not reach the patches.
    for (BinaryMap& map : maps)
      for (BitMatrix* mat : {&map.signs, &map.keep})
        if (c % kBitsPerWord != 0)
          for (int r = 0; r < mat->rows; ++r) mat->row(r)[mat->words - 1] |= ~BitWord{0} << (c % kBitsPerWord);
    // Dirty buffers: every word of the output must be written.
    std::fill(fast.signs.data.begin(), fast.signs.data.end(), ~BitWord{0});
    std::fill(fast.keep.data.begin(), fast.keep.data.end(), ~BitWord{0});
    im2col_bits(maps, k, stride, pad, fast);
    im2col_bits_reference(maps, k, stride, pad, reference);
    ASSERT_EQ(fast.out_h, reference.out_h);
    ASSERT_EQ(fast.out_w, reference.out_w);
    ASSERT_TRUE(same_bits(fast.signs, reference.signs));
    ASSERT_TRUE(same_bits(fast.keep, reference.keep));
    ASSERT_EQ(fast.kept, reference.kept);
  }
}

TEST(Im2colBits, RejectsBadGeometry) {
  std::mt19937_64 rng(8);
  const TestMap m = random_map(rng, 3, 2, 2, KeepMode::kNone);
  Patches p;
  EXPECT_THROW(im2col_bits(m.bits, 5, 1, 1, p), Error);  // kernel larger than the padded map
  EXPECT_THROW(im2col_bits(m.bits, 3, 0, 1, p), Error);  // stride 0
}

// pack_weights + im2col_bits + bgemm against the naive convolution over random geometries.
TEST(BinaryConv, MatchesNaiveIntegerConvolution) {
  std::mt19937_64 rng(20240611);
  constexpr std::array kChannels = {1, 3, 8, 16, 24, 31, 32, 40, 63, 64, 65, 128, 130};
  constexpr std::array kKernels = {1, 3, 5};
  constexpr std::array kStrides = {1, 2};
  constexpr std::array kPads = {0, 1, 2};
  constexpr std::array kModes = {KeepMode::kNone, KeepMode::kElement, KeepMode::kChannel};
  Patches patches;  // reused across shapes, as a caller would
  for (int trial = 0; trial < 150; ++trial) {
    const int c = pick(rng, kChannels), k = pick(rng, kKernels), stride = pick(rng, kStrides),
              pad = pick(rng, kPads);
    const KeepMode mode = kModes[trial % 3];
    int h, w;
    do {
      h = 1 + pick(rng, 15);
      w = 1 + pick(rng, 15);
    } while (h + 2 * pad < k || w + 2 * pad < k);
    const int o = 1 + pick(rng, 9);
    SCOPED_TRACE("trial " + std::to_string(trial) + ": c=" + std::to_string(c) + " k=" + std::to_string(k) +
                 " stride=" + std::to_string(stride) + " pad=" + std::to_string(pad) + " map " +
                 std::to_string(h) + "x" + std::to_string(w) + " keep mode " +
                 std::to_string(static_cast<int>(mode)));

    const TestMap m = random_map(rng, c, h, w, mode);
    std::vector<std::int8_t> weights(static_cast<std::size_t>(o) * c * k * k);
    for (auto& v : weights) v = pick(rng, 2) ? 1 : -1;

    im2col_bits(m.bits, k, stride, pad, patches);
    const Patches plain = im2col_plain(m.bits, k, stride, pad);
    ASSERT_EQ(patches.out_h, plain.out_h);
    ASSERT_EQ(patches.out_w, plain.out_w);
    ASSERT_TRUE(same_bits(patches.signs, plain.signs));
    ASSERT_TRUE(same_bits(patches.keep, plain.keep));
    ASSERT_EQ(patches.kept, plain.kept);
    ASSERT_TRUE(padding_clear(patches.signs));
    ASSERT_TRUE(padding_clear(patches.keep));

    const BitMatrix packed = pack_weights(weights.data(), o, c, k);
    ASSERT_EQ(packed.words, patches.signs.words);
    const std::vector<std::int32_t> expected = naive_conv(m, weights, o, k, stride, pad);
    std::vector<std::int32_t> got(expected.size(), -12345);
    bgemm_reference(patches.signs, patches.keep, patches.kept, packed, got.data());
    ASSERT_EQ(got, expected);
    std::fill(got.begin(), got.end(), -12345);
    bgemm(patches.signs, patches.keep, patches.kept, packed, got.data());
    ASSERT_EQ(got, expected);
  }
}

// Restores the OpenMP thread count on scope exit.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~OmpThreads() { omp_set_num_threads(saved_); }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

 private:
  int saved_;
};

void expect_bgemm_matches_reference(std::mt19937_64& rng, int m, int n, int bits, double density) {
  SCOPED_TRACE("M=" + std::to_string(m) + " N=" + std::to_string(n) + " bits=" + std::to_string(bits));
  const BitMatrix a = random_bits(rng, m, bits), b = random_bits(rng, n, bits);
  const BitMatrix keep = random_bits(rng, m, bits, density);
  std::vector<std::int32_t> kept(m);
  for (int r = 0; r < m; ++r)
    for (int i = 0; i < keep.words; ++i) kept[r] += std::popcount(keep.row(r)[i]);
  std::vector<std::int32_t> want(static_cast<std::size_t>(m) * n);
  bgemm_reference(a, keep, kept, b, want.data());
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    std::vector<std::int32_t> got(want.size(), -12345);
    bgemm(a, keep, kept, b, got.data());
    ASSERT_EQ(got, want) << "threads=" << threads;
    // Every kernel this CPU has, not only the one bgemm() picks.
    const PackedOperand packed = pack_operand(b);
    for (const auto& kernel : bgemm_kernels()) {
      std::fill(got.begin(), got.end(), -12345);
      bgemm_using(kernel, a, keep, kept, b, packed, got.data());
      ASSERT_EQ(got, want) << "kernel " << kernel << " threads=" << threads;
    }
  }
}

TEST(Bgemm, MatchesReferenceOnRandomShapes) {
  std::mt19937_64 rng(99);
  constexpr std::array kWords = {1, 2, 3, 4, 5, 8, 37};
  for (int trial = 0; trial < 60; ++trial) {
    const int words = kWords[trial % kWords.size()];
    const int bits = words * kBitsPerWord - pick(rng, 64);  // a ragged last word
    const int m = 1 + pick(rng, 70), n = 1 + pick(rng, 40);
    expect_bgemm_matches_reference(rng, m, n, bits, trial % 2 ? 0.7 : 1.0);
  }
}

// The narrow products whose b is held in registers (rows of at most 5 words and at most 32
// columns; rows of at most 32 bits and at most 64 columns): every such shape class, ragged rows.
TEST(Bgemm, MatchesReferenceOnNarrowShapes) {
  std::mt19937_64 rng(31);
  for (const int bits : {1, 16, 31, 32, 33, 64, 144, 200, 288, 320}) {
    for (const int n : {1, 7, 8, 9, 16, 17, 24, 32, 33, 48, 63, 64}) {
      expect_bgemm_matches_reference(rng, 1 + pick(rng, 40), n, bits, 0.8);
    }
  }
}

TEST(Bgemm, MatchesReferenceOnConvShapes) {
  std::mt19937_64 rng(5);
  // 3x3 convolutions with 16, 32 and 64 channels on a 28x28 map (parallel path), a 1x1 shortcut,
  // and a wide linear layer.
  expect_bgemm_matches_reference(rng, 784, 16, 9 * 16, 0.9);
  expect_bgemm_matches_reference(rng, 784, 32, 9 * 32, 0.9);
  expect_bgemm_matches_reference(rng, 196, 32, 16, 0.9);
  expect_bgemm_matches_reference(rng, 196, 64, 9 * 64, 0.9);
  expect_bgemm_matches_reference(rng, 3, 10, 4096, 0.9);
}

// A random convolution under channel masks for the channel-masked tests: a map of `c` channels
// (h, w up to max_size; stray bits set past the channels in its words and in the mask, which must
// not count), its channel keep (empty unless masked), o output channels of random +-1 weights.
struct ChannelConvCase {
  int c = 0, k = 0, stride = 0, pad = 0, h = 0, w = 0, o = 0;
  bool masked = false;
  TestMap m{};
  std::vector<BitWord> channel_keep{};
  std::vector<std::int8_t> weights{};
  BinaryMap signs_only{};
  std::string trace(int trial) const {
    return "trial " + std::to_string(trial) + ": c=" + std::to_string(c) + " k=" + std::to_string(k) +
           " stride=" + std::to_string(stride) + " pad=" + std::to_string(pad) + " map " + std::to_string(h) + "x" +
           std::to_string(w) + " o=" + std::to_string(o) + (masked ? " masked" : "");
  }
};

ChannelConvCase channel_conv_case(std::mt19937_64& rng, int c, int k, int stride, int pad, int max_size, int max_out,
                                  bool masked) {
  ChannelConvCase t{.c = c, .k = k, .stride = stride, .pad = pad, .masked = masked};
  do {
    t.h = 1 + pick(rng, max_size);
    t.w = 1 + pick(rng, max_size);
  } while (t.h + 2 * pad < k || t.w + 2 * pad < k);
  t.o = 1 + pick(rng, max_out);
  t.m = random_map(rng, c, t.h, t.w, masked ? KeepMode::kChannel : KeepMode::kNone);
  if (masked) {
    t.channel_keep.assign(static_cast<std::size_t>(words_for_bits(c)), 0);
    for (int ch = 0; ch < c; ++ch)
      if (t.m.keep[static_cast<std::size_t>(ch)] != 0) t.channel_keep[ch / kBitsPerWord] |= BitWord{1} << (ch % kBitsPerWord);
    if (c % kBitsPerWord != 0) t.channel_keep.back() |= ~BitWord{0} << (c % kBitsPerWord);
  }
  t.weights.resize(static_cast<std::size_t>(t.o) * c * k * k);
  for (auto& v : t.weights) v = pick(rng, 2) ? 1 : -1;
  t.signs_only = t.m.bits;
  t.signs_only.keep = BitMatrix();
  if (c % kBitsPerWord != 0)
    for (int r = 0; r < t.signs_only.signs.rows; ++r)
      t.signs_only.signs.row(r)[t.signs_only.signs.words - 1] |= ~BitWord{0} << (c % kBitsPerWord);
  return t;
}

// The channel-masked convolution (keep rows laid out per rectangle of taps) against the plain
// path and the naive convolution, over random geometries, channel counts on and off
// the byte-copying path, with and without a mask; one scratch reused across shapes.
TEST(ChannelMaskedConv, MatchesThePlainPathAndTheNaiveConvolution) {
  std::mt19937_64 rng(4242);
  constexpr std::array kChannels = {1, 3, 8, 16, 24, 31, 32, 40, 64, 65, 128};
  ChannelConvScratch scratch;
  for (int trial = 0; trial < 160; ++trial) {
    const int c = pick(rng, kChannels), k = 1 + 2 * pick(rng, 3), stride = 1 + pick(rng, 2), pad = pick(rng, 3);
    ChannelConvCase t = channel_conv_case(rng, c, k, stride, pad, 14, 70, trial % 4 != 0);
    SCOPED_TRACE(t.trace(trial));
    const int o = t.o;
    const bool masked = t.masked;
    std::vector<BitWord>& channel_keep = t.channel_keep;
    const BinaryMap& signs_only = t.signs_only;
    const BitMatrix packed = pack_weights(t.weights.data(), o, c, k);
    const std::vector<std::int32_t> naive = naive_conv(t.m, t.weights, o, k, stride, pad);
    std::vector<std::int32_t> plain(naive.size(), -12345), fast(naive.size(), -12345);
    channel_masked_conv_reference(signs_only, channel_keep, k, stride, pad, packed, plain.data());
    ASSERT_EQ(plain, naive);
    channel_masked_conv(signs_only, channel_keep, k, stride, pad, packed, pack_operand(packed), scratch, fast.data());
    ASSERT_EQ(fast, naive);
    // Again on the same geometry (the scratch keeps its rectangles) with the complementary mask.
    if (masked) {
      for (auto& word : channel_keep) word = ~word;
      channel_masked_conv_reference(signs_only, channel_keep, k, stride, pad, packed, plain.data());
      channel_masked_conv(signs_only, channel_keep, k, stride, pad, packed, pack_operand(packed), scratch,
                          fast.data());
      ASSERT_EQ(fast, plain);
    }
  }
}

// The dots alone (channel_masked_dots): maps of at most 64 channels run the narrow kernel where
// the CPU has AVX-512 BITALG (16-, 32- or 64-bit lanes, two output pixels per lane for 16, a
// zero-padded plane or four phase planes, border pixels corrected per rectangle of in-map taps);
// wider maps the patch path. Every kernel
// size it takes, both strides, every padding, odd and tiny maps, partial blocks of 16 output
// channels, stray bits past the channels in the map and in the mask, and weights changed between
// calls on one scratch (its weight lanes are remade).
TEST(ChannelMaskedConv, DotsAloneMatchTheNaiveConvolution) {
  std::mt19937_64 rng(916);
  constexpr std::array kChannels = {1, 2, 5, 8, 11, 15, 16, 16, 17, 24, 31, 32, 32, 33, 48, 63, 64, 64, 65, 100};
  ChannelConvScratch scratch;
  int narrow_calls = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int c = pick(rng, kChannels), k = 1 + pick(rng, 3), stride = 1 + pick(rng, 2), pad = pick(rng, k);
    ChannelConvCase t = channel_conv_case(rng, c, k, stride, pad, 30, 40, trial % 4 != 0);
    SCOPED_TRACE(t.trace(trial));
    const int o = t.o;
    std::vector<std::int8_t>& weights = t.weights;
    for (int round = 0; round < 2; ++round) {
      // The second round flips one weight: the same scratch must not run the old lanes.
      if (round == 1) weights[static_cast<std::size_t>(pick(rng, static_cast<int>(weights.size())))] *= -1;
      const BitMatrix packed = pack_weights(weights.data(), o, c, k);
      const std::vector<std::int32_t> naive = naive_conv(t.m, weights, o, k, stride, pad);
      std::vector<std::int32_t> dots(naive.size(), -12345);
      channel_masked_dots(t.signs_only, t.channel_keep, k, stride, pad, packed, pack_operand(packed), scratch, dots.data());
      ASSERT_EQ(dots, naive);
      const bool narrow = narrow_conv_runs(c, k, stride);
      // The path it took: the narrow kernel keeps the weights it laid out.
      EXPECT_EQ(scratch.narrow.lanes_of.rows == packed.rows && scratch.narrow.lanes_of.data == packed.data, narrow);
      narrow_calls += narrow ? 1 : 0;
      // The same with the lanes laid out once in the packed operand, as a compiled layer has them.
      if (narrow) {
        PackedOperand with_lanes = pack_operand(packed);
        pack_narrow_lanes(packed, c, k, with_lanes);
        std::fill(dots.begin(), dots.end(), -12345);
        channel_masked_dots(t.signs_only, t.channel_keep, k, stride, pad, packed, with_lanes, scratch, dots.data());
        ASSERT_EQ(dots, naive);
      }
    }
  }
  // On a CPU with BITALG most trials are narrow; elsewhere none is, and the dots came from the
  // patch path, checked the same way.
  if (cpu_features().avx512_bitalg && cpu_features().avx512_vpopcntdq && cpu_features().avx512_vnni)
    EXPECT_GT(narrow_calls, 400);
  else EXPECT_EQ(narrow_calls, 0);

  // Maps and masks of one plane shape in a row on one scratch (the planes are cleared only when
  // their shape changes): each call must rewrite every in-map word, no word of the last map left.
  for (const int c : {5, 16, 32, 64})
    for (const int stride : {1, 2}) {
      ChannelConvScratch same;
      for (int call = 0; call < 4; ++call) {
        SCOPED_TRACE("c=" + std::to_string(c) + " stride=" + std::to_string(stride) + " call " + std::to_string(call));
        const TestMap m = random_map(rng, c, 13, 11, KeepMode::kChannel);
        std::vector<BitWord> keep(1, 0);
        for (int ch = 0; ch < c; ++ch) keep[0] |= static_cast<BitWord>(m.keep[static_cast<std::size_t>(ch)] != 0) << ch;
        BinaryMap signs_only = m.bits;
        signs_only.keep = BitMatrix();
        std::vector<std::int8_t> weights(static_cast<std::size_t>(20) * c * 9);
        for (auto& v : weights) v = pick(rng, 2) ? 1 : -1;
        const BitMatrix packed = pack_weights(weights.data(), 20, c, 3);
        const std::vector<std::int32_t> naive = naive_conv(m, weights, 20, 3, stride, 1);
        std::vector<std::int32_t> dots(naive.size(), -12345);
        channel_masked_dots(signs_only, keep, 3, stride, 1, packed, pack_operand(packed), same, dots.data());
        ASSERT_EQ(dots, naive);
      }
    }
}

// 1x1 convolutions without padding (a residual block's downsampling shortcut) copy each
// pixel's row whole: every channel count class, both strides, odd map sizes.
TEST(ChannelMaskedConv, PointwiseShortcutsMatchTheNaiveConvolution) {
  std::mt19937_64 rng(77);
  ChannelConvScratch scratch;
  for (const int c : {3, 16, 32, 64, 65, 128})
    for (const int stride : {1, 2})
      for (const int size : {7, 14, 15}) {
        SCOPED_TRACE("c=" + std::to_string(c) + " stride=" + std::to_string(stride) + " map " + std::to_string(size));
        const TestMap m = random_map(rng, c, size, size, KeepMode::kNone);
        const int o = 1 + pick(rng, 64);
        std::vector<std::int8_t> weights(static_cast<std::size_t>(o) * c);
        for (auto& v : weights) v = pick(rng, 2) ? 1 : -1;
        const BitMatrix packed = pack_weights(weights.data(), o, c, 1);
        const std::vector<std::int32_t> naive = naive_conv(m, weights, o, 1, stride, 0);
        std::vector<std::int32_t> fast(naive.size(), -12345);
        channel_masked_conv(m.bits, {}, 1, stride, 0, packed, pack_operand(packed), scratch, fast.data());
        ASSERT_EQ(fast, naive);
      }
}

// A 1x1 layer's convolution and sense decisions fused (pointwise_signs) against its dots and
// thresholds taken apart: every lane width (16, 32, 64 bits), both strides, odd maps, partial
// and several words of output channels, flipped thresholds, bounds tied with dots, with and
// without a channel mask and a shortcut's select bits; every output word is written.
TEST(PointwiseSigns, MatchTheDotsThenTheThresholds) {
  std::mt19937_64 rng(515);
  constexpr std::array kChannels = {1, 5, 15, 16, 17, 31, 32, 33, 48, 63, 64};
  NarrowConvScratch scratch;
  int fused = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const int c = pick(rng, kChannels), stride = 1 + pick(rng, 2);
    ChannelConvCase t = channel_conv_case(rng, c, 1, stride, 0, 15, 140, trial % 3 != 0);
    SCOPED_TRACE(t.trace(trial));
    const BitMatrix packed = pack_weights(t.weights.data(), t.o, c, 1);
    const int pixels = ((t.h - 1) / stride + 1) * ((t.w - 1) / stride + 1);
    std::vector<std::int32_t> sign(static_cast<std::size_t>(t.o)), high(sign.size()), low(sign.size());
    for (std::size_t j = 0; j < sign.size(); ++j) {
      sign[j] = pick(rng, 2) ? 1 : -1;
      // Within [-c - 1, c + 1] (ties and both ends), or a bound no dot reaches or every dot does.
      const auto bound = [&] {
        return pick(rng, 10) == 0 ? (pick(rng, 2) ? std::numeric_limits<std::int32_t>::max() : std::numeric_limits<std::int32_t>::min())
                                  : pick(rng, 2 * c + 3) - c - 1;
      };
      high[j] = bound();
      low[j] = bound();
    }
    BitMatrix select(pixels, t.o);
    for (int m = 0; m < pixels; ++m)
      for (int j = 0; j < t.o; ++j) select.set(m, j, pick(rng, 2) != 0);
    for (const BitMatrix* s : std::array<const BitMatrix*, 2>{nullptr, &select}) {
      BitMatrix plain(pixels, t.o), fast(pixels, t.o);
      pointwise_signs_reference(t.signs_only, t.channel_keep, stride, packed, sign.data(), high.data(), low.data(), s,
                                plain);
      // The reference against the definition on the naive convolution's dots.
      const std::vector<std::int32_t> naive = naive_conv(t.m, t.weights, t.o, 1, stride, 0);
      for (int m = 0; m < pixels; ++m)
        for (int j = 0; j < t.o; ++j) {
          const auto k = static_cast<std::size_t>(j);
          const std::int32_t bound = s == nullptr || select.get(m, j) ? high[k] : low[k];
          ASSERT_EQ(plain.get(m, j), sign[k] * naive[static_cast<std::size_t>(m) * t.o + k] >= bound);
        }
      if (!pointwise_signs_run(c, 1, stride, 0)) continue;
      std::fill(fast.data.begin(), fast.data.end(), ~BitWord{0});
      pointwise_signs(t.signs_only, t.channel_keep, stride, packed, pack_operand(packed), sign.data(), high.data(),
                      low.data(), s, scratch, fast);
      ASSERT_EQ(fast.data, plain.data) << (s != nullptr ? "selected" : "");
      ++fused;
    }
  }
  if (cpu_features().avx512_bitalg && cpu_features().avx512_vpopcntdq && cpu_features().avx512_vnni)
    EXPECT_EQ(fused, 400);
  else EXPECT_EQ(fused, 0);
  // Operands that do not fit: a map wider than a word, an output of the wrong size, select bits
  // of another shape.
  std::mt19937_64 r2(5);
  const TestMap m = random_map(r2, 8, 5, 5, KeepMode::kNone);
  std::vector<std::int8_t> weights(3 * 8, 1);
  const BitMatrix packed = pack_weights(weights.data(), 3, 8, 1);
  std::vector<std::int32_t> v(3, 0);
  BitMatrix wrong(24, 3), select(25, 4);
  EXPECT_THROW(pointwise_signs_reference(m.bits, {}, 1, packed, v.data(), v.data(), v.data(), nullptr, wrong), Error);
  BitMatrix right(25, 3);
  EXPECT_THROW(pointwise_signs_reference(m.bits, {}, 1, packed, v.data(), v.data(), v.data(), &select, right), Error);
  if (pointwise_signs_run(8, 1, 1, 0)) {
    EXPECT_THROW(pointwise_signs(m.bits, {}, 1, packed, pack_operand(packed), v.data(), v.data(), v.data(), nullptr,
                                 scratch, wrong),
                 Error);
  }
}

TEST(ChannelMaskedConv, RejectsMismatchedOperands) {
  std::mt19937_64 rng(3);
  const TestMap m = random_map(rng, 8, 4, 4, KeepMode::kNone);
  const BitMatrix weights(2, 9 * 8), wrong(2, 9 * 7);
  ChannelConvScratch scratch;
  std::vector<std::int32_t> dots(16 * 2);
  const std::vector<BitWord> two_words(2, ~BitWord{0});
  EXPECT_THROW(channel_masked_conv(m.bits, {}, 3, 1, 1, wrong, pack_operand(wrong), scratch, dots.data()), Error);
  EXPECT_THROW(channel_masked_conv(m.bits, two_words, 3, 1, 1, weights, pack_operand(weights), scratch, dots.data()),
               Error);
  const TestMap with_keep = random_map(rng, 8, 4, 4, KeepMode::kElement);
  EXPECT_THROW(
      channel_masked_conv(with_keep.bits, {}, 3, 1, 1, weights, pack_operand(weights), scratch, dots.data()), Error);
}

// Keep rows through an index (rows sharing a mask share its storage) against the same rows laid
// out one by one, every kernel, with runs of shared rows and lone ones.
TEST(Bgemm, IndexedKeepRowsEqualLaidOutRows) {
  std::mt19937_64 rng(61);
  for (int trial = 0; trial < 30; ++trial) {
    const int bits = (1 + pick(rng, 20)) * kBitsPerWord - pick(rng, 64);
    const int m = 1 + pick(rng, 90), n = 1 + pick(rng, 70), distinct = 1 + pick(rng, 9);
    const BitMatrix a = random_bits(rng, m, bits), b = random_bits(rng, n, bits);
    const BitMatrix table = random_bits(rng, distinct, bits, 0.8);
    std::vector<std::int32_t> index(m);
    for (int r = 0; r < m; ++r) index[r] = r > 0 && pick(rng, 4) != 0 ? index[r - 1] : pick(rng, distinct);
    BitMatrix laid_out(m, bits);
    std::vector<std::int32_t> kept(m);
    for (int r = 0; r < m; ++r) {
      std::copy_n(table.row(index[r]), table.words, laid_out.row(r));
      for (int w = 0; w < table.words; ++w) kept[r] += std::popcount(laid_out.row(r)[w]);
    }
    std::vector<std::int32_t> want(static_cast<std::size_t>(m) * n);
    bgemm_reference(a, laid_out, kept, b, want.data());
    const PackedOperand packed = pack_operand(b);
    for (const auto& kernel : bgemm_kernels()) {
      std::vector<std::int32_t> got(want.size(), -12345);
      bgemm_using(kernel, a, KeepRows(table, index), kept, b, packed, got.data());
      ASSERT_EQ(got, want) << "kernel " << kernel << " trial " << trial;
    }
  }
  const BitMatrix a(3, 64), table(2, 64);
  const std::vector<std::int32_t> kept(3, 0), bad = {0, 2, 1};
  std::vector<std::int32_t> out(9);
  EXPECT_THROW(bgemm(a, KeepRows(table, bad), kept, a, out.data()), Error);
}

TEST(Bgemm, LongRowsOfMaximalCounts) {
  // Every bit differs: the per-byte counters of the AVX2 kernel run at their maximum across
  // several flushes (> 124 words).
  for (int words : {124, 125, 128, 300}) {
    BitMatrix a(5, words * kBitsPerWord), b(7, words * kBitsPerWord), keep(5, words * kBitsPerWord);
    std::fill(a.data.begin(), a.data.end(), ~BitWord{0});
    std::fill(keep.data.begin(), keep.data.end(), ~BitWord{0});
    const std::vector<std::int32_t> kept(5, words * kBitsPerWord);
    std::vector<std::int32_t> got(35);
    for (const auto& kernel : bgemm_kernels()) {
      bgemm_using(kernel, a, keep, kept, b, pack_operand(b), got.data());
      for (std::int32_t v : got) ASSERT_EQ(v, -words * kBitsPerWord) << words << " " << kernel;
    }
  }
}

TEST(Bgemm, EmptyOperands) {
  const BitMatrix a(0, 100), keep(0, 100), b(3, 100);
  const std::vector<std::int32_t> kept;
  bgemm(a, keep, kept, b, nullptr);
  bgemm_reference(a, keep, kept, b, nullptr);
  const BitMatrix a3(3, 100), keep3(3, 100), none(0, 100);
  const std::vector<std::int32_t> kept3(3, 0);
  bgemm(a3, keep3, kept3, none, nullptr);
  bgemm_reference(a3, keep3, kept3, none, nullptr);
}

TEST(Bgemm, RejectsMismatchedShapes) {
  const BitMatrix a(2, 100), keep(2, 100), b(3, 200);
  const std::vector<std::int32_t> kept(2, 100);
  std::vector<std::int32_t> out(6);
  EXPECT_THROW(bgemm(a, keep, kept, b, out.data()), Error);
  EXPECT_THROW(bgemm_reference(a, keep, std::vector<std::int32_t>(1), BitMatrix(3, 100), out.data()), Error);
}

TEST(Bgemm, KernelName) {
  const std::string name = bgemm_kernel_name();
  EXPECT_EQ(name, bgemm_kernels().front());
  EXPECT_EQ(bgemm_kernels().back(), "portable");
  EXPECT_THROW(bgemm_using("avx1024", BitMatrix(1, 8), BitMatrix(1, 8), {8}, BitMatrix(1, 8),
                           pack_operand(BitMatrix(1, 8)), nullptr),
               Error);
}

TEST(PopcountRoof, PositiveAndFinite) {
  for (int threads : {1, 2}) {
    const double roof = measure_popcount_roof(0.05, threads);
    EXPECT_GT(roof, 0.0);
    EXPECT_TRUE(std::isfinite(roof));
  }
}

}  // namespace
}  // namespace spinbayes

TEST(ThresholdBits, SimdMatchesReferenceOnRandomRows) {
  std::mt19937_64 rng(2024);
  for (const int n : {1, 7, 8, 9, 31, 64, 65, 100, 128, 130, 257}) {
    std::vector<std::int32_t> dots(static_cast<std::size_t>(n)), sign(dots.size()), bound(dots.size());
    for (std::size_t j = 0; j < dots.size(); ++j) {
      dots[j] = static_cast<std::int32_t>(rng() % 41) - 20;
      sign[j] = (rng() & 1) ? 1 : -1;
      bound[j] = static_cast<std::int32_t>(rng() % 41) - 20;  // ties with the dots included
    }
    const int words = spinbayes::words_for_bits(n);
    std::vector<spinbayes::BitWord> fast(static_cast<std::size_t>(words), ~spinbayes::BitWord{0}), plain(fast.size(), 0);
    spinbayes::threshold_bits(dots.data(), sign.data(), bound.data(), n, fast.data());
    spinbayes::threshold_bits_reference(dots.data(), sign.data(), bound.data(), n, plain.data());
    EXPECT_EQ(fast, plain) << "n = " << n;
    for (int j = 0; j < n; ++j) {
      const bool bit = (plain[static_cast<std::size_t>(j / 64)] >> (j % 64)) & 1u;
      EXPECT_EQ(bit, sign[static_cast<std::size_t>(j)] * dots[static_cast<std::size_t>(j)] >= bound[static_cast<std::size_t>(j)]);
    }
  }
}

TEST(ThresholdRows, SimdMatchesReferenceWithAndWithoutSelection) {
  std::mt19937_64 rng(2025);
  for (const int n : {1, 10, 15, 16, 17, 33, 64, 65, 100, 128, 130, 257}) {
    const int rows = 7;
    std::vector<std::int32_t> dots(static_cast<std::size_t>(rows) * n), sign(static_cast<std::size_t>(n)),
        high(sign.size()), low(sign.size());
    for (auto& d : dots) d = static_cast<std::int32_t>(rng() % 41) - 20;
    for (std::size_t j = 0; j < sign.size(); ++j) {
      sign[j] = (rng() & 1) ? 1 : -1;
      high[j] = static_cast<std::int32_t>(rng() % 41) - 20;  // ties with the dots included
      low[j] = static_cast<std::int32_t>(rng() % 41) - 20;
    }
    spinbayes::BitMatrix select(rows, n);
    for (int m = 0; m < rows; ++m)
      for (int j = 0; j < n; ++j) select.set(m, j, rng() & 1);
    for (const spinbayes::BitMatrix* s : std::array<const spinbayes::BitMatrix*, 2>{nullptr, &select}) {
      spinbayes::BitMatrix fast(rows, n), plain(rows, n);
      std::fill(fast.data.begin(), fast.data.end(), ~spinbayes::BitWord{0});
      spinbayes::threshold_rows(dots.data(), rows, n, sign.data(), high.data(), low.data(), s, fast);
      spinbayes::threshold_rows_reference(dots.data(), rows, n, sign.data(), high.data(), low.data(), s, plain);
      EXPECT_EQ(fast.data, plain.data) << "n = " << n << (s != nullptr ? ", selected" : "");
      for (int m = 0; m < rows; ++m)
        for (int j = 0; j < n; ++j) {
          const auto k = static_cast<std::size_t>(j);
          const std::int32_t bound = s == nullptr || select.get(m, j) ? high[k] : low[k];
          EXPECT_EQ(plain.get(m, j), sign[k] * dots[static_cast<std::size_t>(m) * n + k] >= bound);
        }
    }
  }
  spinbayes::BitMatrix small(3, 16);
  std::vector<std::int32_t> dots(64), v(16);
  EXPECT_THROW(spinbayes::threshold_rows(dots.data(), 4, 16, v.data(), v.data(), v.data(), nullptr, small),
               spinbayes::Error);
}
