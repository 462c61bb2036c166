#pragma once
// A binary convolution whose inputs are kept or dropped a whole channel at a time: spatial dropout
// (one draw per input channel, held over the whole map) or no dropout at all.
//
// The keep bits of such a patch need not be gathered from the map bit by bit, as im2col_bits
// gathers element masks: the keep row of an output pixel is the channel mask repeated over the
// taps that fall inside the map, and those taps form a rectangle of the kernel that few pixels
// share (for a 3x3 kernel with padding 1: the interior, four edges, four corners). So there is one
// keep row per rectangle, built once and shared by its pixels through KeepRows (the GEMM loads it
// once for a block of rows that share it), its popcount their `kept`; only the signs are gathered
// from the map (im2col_signs).
#include <cstdint>
#include <span>
#include <vector>

#include "engine/bgemm.h"
#include "engine/bit_matrix.h"
#include "engine/conv_tables.h"
#include "engine/im2col.h"
#include "engine/narrow_conv.h"

namespace spinbayes {

// Buffers of channel_masked_conv, kept from call to call.
struct ChannelConvScratch {
  Patches patches;  // signs gathered; keep and kept not used
  // The tables of the geometries seen (a pass alternates between a few), and the last call's.
  std::vector<ConvTables> tables;
  std::size_t current = 0;
  const ConvTables& last() const { return tables[current]; }
  // A keep row for each rectangle, from the channel mask of the call.
  BitMatrix rectangle_keeps;
  NarrowConvScratch narrow;  // maps of at most 64 channels, when only the dots are asked for
};

// The integer dot products (out pixels x out channels, channels fastest) of a KxK convolution of
// `map` (whose own keep must be empty) with `weights` (pack_weights order) and `packed_weights`
// (pack_operand of them), inputs of channel c present iff bit c of channel_keep is set
// (words_for_bits(C) words; empty = every channel present).
void channel_masked_conv(const BinaryMap& map, std::span<const BitWord> channel_keep, int kernel, int stride,
                         int padding, const BitMatrix& weights, const PackedOperand& packed_weights,
                         ChannelConvScratch& scratch, std::int32_t* dots);
// The same dots without their patch rows (for an array stage that reads only the dots): through
// narrow_conv where it runs (maps of at most 64 channels), else as channel_masked_conv.
void channel_masked_dots(const BinaryMap& map, std::span<const BitWord> channel_keep, int kernel, int stride,
                         int padding, const BitMatrix& weights, const PackedOperand& packed_weights,
                         ChannelConvScratch& scratch, std::int32_t* dots);
// The same the plain way: the mask spread over every pixel of the map, im2col_bits_reference and
// bgemm_reference.
void channel_masked_conv_reference(const BinaryMap& map, std::span<const BitWord> channel_keep, int kernel,
                                   int stride, int padding, const BitMatrix& weights, std::int32_t* dots);

}  // namespace spinbayes
