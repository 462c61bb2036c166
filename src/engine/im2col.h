#pragma once
// im2col on bit maps: the patches of a KxK convolution with zero padding, one row per output pixel
// (oy * out_w + ox), bits in (ky, kx, c) order (pack_weights' order), and their keep mask (0 for
// taps outside the map or dropped inputs).
#include <cstdint>
#include <span>
#include <vector>

#include "engine/bit_matrix.h"

namespace spinbayes {

struct Patches {
  int out_h = 0, out_w = 0;
  BitMatrix signs, keep;
  std::vector<std::int32_t> kept;  // popcount of each keep row
  // Scratch of im2col_bits when the channels fill whole bytes: the maps with a zero border,
  // channels / 8 bytes a pixel, kept from call to call.
  std::vector<std::uint8_t> bordered_signs, bordered_keep;
};
void im2col_bits(const BinaryMap& map, int kernel, int stride, int padding, Patches& out);
// The patches of several maps of one shape stacked: map s's output pixel q is row s * (out_h * out_w) + q.
void im2col_bits(std::span<const BinaryMap> maps, int kernel, int stride, int padding, Patches& out);
// The same, every tap packed bit by bit (the general path, for any channel count): the reference
// for the byte-copying path that im2col_bits takes when the channels are a multiple of 8.
void im2col_bits_reference(std::span<const BinaryMap> maps, int kernel, int stride, int padding, Patches& out);

// Only the signs of the patches of one map without a keep mask (zeros for taps outside the map);
// out.keep and out.kept are left for the caller (channel_conv.h builds them per rectangle of taps).
void im2col_signs(const BinaryMap& map, int kernel, int stride, int padding, Patches& out);

}  // namespace spinbayes
