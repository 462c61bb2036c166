#include "engine/channel_conv.h"

#include <algorithm>
#include <bit>
#include <string>

#include "core/error.h"

namespace spinbayes {
namespace {

// ORs the first c bits of `channels` (bits past c ignored; empty: c ones) into `dst` from bit
// `offset` on.
void or_bits_at(BitWord* dst, int offset, std::span<const BitWord> channels, int c) {
  for (int w = 0; w * kBitsPerWord < c; ++w) {
    const int n = std::min(kBitsPerWord, c - w * kBitsPerWord);
    const BitWord given = channels.empty() ? ~BitWord{0} : channels[static_cast<std::size_t>(w)];
    const BitWord bits = given & (n == kBitsPerWord ? ~BitWord{0} : (BitWord{1} << n) - 1);
    const int at = offset + w * kBitsPerWord, word = at / kBitsPerWord, shift = at % kBitsPerWord;
    dst[word] |= bits << shift;
    if (shift != 0 && n > kBitsPerWord - shift) dst[word + 1] |= bits >> (kBitsPerWord - shift);
  }
}

// Taps [lo, hi) of one axis that fall inside a map of `size` for the output position `o`.
TapRange taps_inside(int o, int stride, int padding, int kernel, int size) {
  const int first = o * stride - padding;  // input position of tap 0
  return {std::clamp(-first, 0, kernel), std::clamp(size - first, 0, kernel)};
}

// The distinct tap ranges of `count` output positions along one axis, and each position's.
void tap_classes(int count, int stride, int padding, int kernel, int size, std::vector<TapRange>& ranges,
                 std::vector<int>& of) {
  ranges.clear();
  of.resize(static_cast<std::size_t>(count));
  for (int o = 0; o < count; ++o) {
    const TapRange r = taps_inside(o, stride, padding, kernel, size);
    auto found =
        std::find_if(ranges.begin(), ranges.end(), [&](const TapRange& x) { return x.lo == r.lo && x.hi == r.hi; });
    if (found == ranges.end()) found = ranges.insert(ranges.end(), r);
    of[static_cast<std::size_t>(o)] = static_cast<int>(found - ranges.begin());
  }
}

void check_shapes(const BinaryMap& map, std::span<const BitWord> channel_keep, int kernel, const BitMatrix& weights) {
  if (!map.keep.data.empty()) throw Error("channel_masked_conv: the map carries its own keep mask");
  if (!channel_keep.empty() && static_cast<int>(channel_keep.size()) != words_for_bits(map.channels))
    throw Error("channel_masked_conv: channel mask of " + std::to_string(channel_keep.size()) + " words for " +
                std::to_string(map.channels) + " channels");
  if (weights.bits != kernel * kernel * map.channels)
    throw Error("channel_masked_conv: weights of " + std::to_string(weights.bits) + " bits for a " +
                std::to_string(kernel) + "x" + std::to_string(kernel) + " kernel over " +
                std::to_string(map.channels) + " channels");
}

// The tables of `geometry` (out_h x out_w output pixels), found among those of the scratch or
// made and added to them; they become the scratch's last.
ConvTables& tables_for(const ConvGeometry& geometry, int out_h, int out_w, ChannelConvScratch& scratch) {
  constexpr std::size_t kMostGeometries = 16;  // a pass's convolutions have a few; a guard against growth
  for (std::size_t i = 0; i < scratch.tables.size(); ++i) {
    if (scratch.tables[i].geometry == geometry) {
      scratch.current = i;
      return scratch.tables[i];
    }
  }
  if (scratch.tables.size() >= kMostGeometries) scratch.tables.clear();
  ConvTables& t = scratch.tables.emplace_back();
  t.geometry = geometry;
  std::vector<int> y_class, x_class;
  tap_classes(out_h, geometry.stride, geometry.padding, geometry.kernel, geometry.height, t.y_ranges, y_class);
  tap_classes(out_w, geometry.stride, geometry.padding, geometry.kernel, geometry.width, t.x_ranges, x_class);
  const int x_classes = static_cast<int>(t.x_ranges.size());
  t.keep_index.resize(static_cast<std::size_t>(out_h) * out_w);
  t.row_taps.resize(t.keep_index.size());
  for (int oy = 0; oy < out_h; ++oy)
    for (int ox = 0; ox < out_w; ++ox) {
      const auto r = static_cast<std::size_t>(oy) * out_w + ox;
      const TapRange y = t.y_ranges[static_cast<std::size_t>(y_class[static_cast<std::size_t>(oy)])];
      const TapRange x = t.x_ranges[static_cast<std::size_t>(x_class[static_cast<std::size_t>(ox)])];
      t.keep_index[r] = y_class[static_cast<std::size_t>(oy)] * x_classes + x_class[static_cast<std::size_t>(ox)];
      t.row_taps[r] = (y.hi - y.lo) * (x.hi - x.lo);
    }
  scratch.current = scratch.tables.size() - 1;
  return t;
}

}  // namespace

void channel_masked_conv(const BinaryMap& map, std::span<const BitWord> channel_keep, int kernel, int stride,
                         int padding, const BitMatrix& weights, const PackedOperand& packed_weights,
                         ChannelConvScratch& scratch, std::int32_t* dots) {
  check_shapes(map, channel_keep, kernel, weights);
  const int c = map.channels;

  Patches& patches = scratch.patches;
  im2col_signs(map, kernel, stride, padding, patches);
  const int out_h = patches.out_h, out_w = patches.out_w, words = patches.signs.words;

  const ConvGeometry geometry{map.height, map.width, c, kernel, stride, padding};
  ConvTables& t = tables_for(geometry, out_h, out_w, scratch);

  // A keep row for each rectangle: the channel mask at each tap inside it.
  int channels_kept = c;
  if (!channel_keep.empty()) {
    channels_kept = 0;
    for (int w = 0; w * kBitsPerWord < c; ++w) {
      const int n = std::min(kBitsPerWord, c - w * kBitsPerWord);
      channels_kept += std::popcount(channel_keep[static_cast<std::size_t>(w)] &
                                     (n == kBitsPerWord ? ~BitWord{0} : (BitWord{1} << n) - 1));
    }
  }
  const int x_classes = static_cast<int>(t.x_ranges.size());
  const int rectangles = static_cast<int>(t.y_ranges.size()) * x_classes;
  BitMatrix& keeps = scratch.rectangle_keeps;
  keeps.rows = rectangles;
  keeps.bits = patches.signs.bits;
  keeps.words = words;
  keeps.data.assign(static_cast<std::size_t>(rectangles) * words, 0);
  for (int index = 0; index < rectangles; ++index) {
    const TapRange y = t.y_ranges[static_cast<std::size_t>(index / x_classes)];
    const TapRange x = t.x_ranges[static_cast<std::size_t>(index % x_classes)];
    for (int ky = y.lo; ky < y.hi; ++ky)
      for (int kx = x.lo; kx < x.hi; ++kx) or_bits_at(keeps.row(index), (ky * kernel + kx) * c, channel_keep, c);
  }
  // Each output pixel's kept count: its taps times the channels kept, unchanged while as many
  // channels are kept as in the geometry's call before.
  if (t.kept_channels != channels_kept) {
    t.kept.resize(t.row_taps.size());
    for (std::size_t r = 0; r < t.kept.size(); ++r) t.kept[r] = t.row_taps[r] * channels_kept;
    t.kept_channels = channels_kept;
  }
  bgemm(patches.signs, KeepRows(keeps, t.keep_index), t.kept, weights, packed_weights, dots);
}

void channel_masked_dots(const BinaryMap& map, std::span<const BitWord> channel_keep, int kernel, int stride,
                         int padding, const BitMatrix& weights, const PackedOperand& packed_weights,
                         ChannelConvScratch& scratch, std::int32_t* dots) {
  if (!narrow_conv_runs(map.channels, kernel, stride)) {
    channel_masked_conv(map, channel_keep, kernel, stride, padding, weights, packed_weights, scratch, dots);
    return;
  }
  check_shapes(map, channel_keep, kernel, weights);
  const int out_h = (map.height + 2 * padding - kernel) / stride + 1;
  const int out_w = (map.width + 2 * padding - kernel) / stride + 1;
  if (padding < 0 || padding >= kernel || out_h < 1 || out_w < 1)
    throw Error("channel_masked_conv: a " + std::to_string(map.height) + "x" + std::to_string(map.width) +
                " map with padding " + std::to_string(padding) + " has no " + std::to_string(kernel) + "x" +
                std::to_string(kernel) + " window");
  // A 1x1 convolution without padding has every tap in the map: no tables.
  static const ConvTables no_tables;
  const ConvTables& t = kernel == 1 ? no_tables
                                    : tables_for(ConvGeometry{map.height, map.width, map.channels, kernel, stride, padding},
                                                 out_h, out_w, scratch);
  narrow_conv(map, channel_keep, kernel, stride, padding, weights, packed_weights, t, scratch.narrow, dots);
}

void channel_masked_conv_reference(const BinaryMap& map, std::span<const BitWord> channel_keep, int kernel,
                                   int stride, int padding, const BitMatrix& weights, std::int32_t* dots) {
  check_shapes(map, channel_keep, kernel, weights);
  BinaryMap masked = map;
  if (!channel_keep.empty()) {
    masked.keep = BitMatrix(map.height * map.width, map.channels);
    for (int pixel = 0; pixel < masked.keep.rows; ++pixel)
      for (int ch = 0; ch < map.channels; ++ch)
        masked.keep.set(pixel, ch,
                        (channel_keep[static_cast<std::size_t>(ch / kBitsPerWord)] >> (ch % kBitsPerWord)) & 1u);
  }
  Patches patches;
  im2col_bits_reference(std::span<const BinaryMap>(&masked, 1), kernel, stride, padding, patches);
  bgemm_reference(patches.signs, patches.keep, patches.kept, weights, dots);
}

}  // namespace spinbayes
