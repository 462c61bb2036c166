#pragma once
// The binary convolution of a narrow map (at most 64 channels: one word a pixel) without im2col,
// for inputs kept or dropped a whole channel at a time (spatial dropout, or none).
//
// A 144-bit patch (3x3 taps of 16 channels) fills three 64-bit words of a GEMM row, a quarter of
// them padding, and gathering it costs as much as the product. Here the map is stored once as one
// 16-bit word per pixel, masked by the channel keep, in a zero-padded plane. A 32-bit load at
// column x of that plane holds the same tap of two neighbouring output pixels (x and x + 1);
// broadcast to sixteen 32-bit lanes, one per output channel whose tap weights (also masked) sit in
// both halves, XOR, VPOPCNTW and VPADDW count the mismatches of 2 pixels x 16 output channels x 16
// inputs: 512 binary MACs per three instructions, what the popcount roof does on 64-bit lanes, and
// the weights of a block of 16 output channels stay in registers. With stride 2 the plane is split
// into its four phases (even and odd rows and columns), so that neighbouring outputs read
// neighbouring words of one phase. Maps of 17 to 64 channels take one pixel per lane of 32 or 64
// bits the same way (VPOPCNTD, VPOPCNTQ): a 288- or 576-bit patch is never gathered either.
//
// A tap in the zero padding reads 0 and so counts popcount(w AND keep) mismatches that are not
// there. So a pixel's dot is its base less 2 x the mismatches counted, where the base of its
// rectangle of in-map taps (conv_tables.h) is the taps inside x the channels kept, plus 2 x those
// popcounts of the taps outside: one vector of 16 output channels per rectangle.
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/bgemm.h"
#include "engine/bit_matrix.h"
#include "engine/conv_tables.h"

namespace spinbayes {

// Buffers of narrow_conv, kept from call to call.
struct NarrowConvScratch {
  std::vector<BitWord> planes;  // the padded map, or its four phases (stride 2), as raw words
  std::array<int, 5> plane_shape{};  // the planes' map height, width, padding, stride, lane bits
  // The weights as the kernel reads them (per block of 16 output channels and tap, 16 lanes), and
  // the weight bits they were made from (they are remade when those change).
  std::vector<std::uint32_t> lanes;
  BitMatrix lanes_of;
  int lanes_channels = -1, lanes_kernel = -1;
  // The base dot of each rectangle of in-map taps (rectangle x block x 16 lanes, for the blocks of
  // output channels one kernel call runs).
  std::vector<std::int32_t> bases;
  // A fused 1x1 layer's bounds on each output channel's mismatches, and its flipped channels a
  // word of output channels at a time (pointwise_signs).
  std::vector<std::int16_t> mismatch_bounds;
  std::vector<BitWord> flips;
};

// Lays out a convolution's weights (kernel x kernel taps of `channels`) as narrow_conv reads
// them, into packed.narrow_lanes: once for a layer rather than on every call.
void pack_narrow_lanes(const BitMatrix& weights, int channels, int kernel, PackedOperand& packed);

// Can narrow_conv run this convolution on this CPU (AVX-512 BITALG, VPOPCNTDQ and VNNI)? At most 64
// channels (one word a pixel), a kernel of at most 3, stride 1 or 2.
bool narrow_conv_runs(int channels, int kernel, int stride);

// The dots of channel_masked_conv (channel_conv.h): dots[pix * O + oc], O = weights.rows, for a
// map of at most 64 channels whose own keep is empty (bits past its channels are ignored), input
// channel c present iff bit c of channel_keep is set (one word; empty = every channel). `tables`
// are this geometry's (channel_conv.cpp makes them; a 1x1 kernel, without padding, needs none).
// Requires narrow_conv_runs.
// The weights' lanes come from `packed` when it holds them for this geometry, else from the
// scratch (laid out there when the weights change).
void narrow_conv(const BinaryMap& map, std::span<const BitWord> channel_keep, int kernel, int stride, int padding,
                 const BitMatrix& weights, const PackedOperand& packed, const ConvTables& tables,
                 NarrowConvScratch& scratch, std::int32_t* dots);

// A 1x1 convolution without padding and the sense decisions of its outputs in one pass, its dots
// never stored: bit oc of out's row pix is 1 iff sign[oc] x dot >= high[oc], or >= low[oc] where
// `select` is given and its bit (pix, oc) is 0 (threshold.h's threshold_rows on narrow_conv's
// dots). A 32-bit dot written and read back per decision costs a 1x1 layer more than its
// popcounts. `out` has the output pixels as rows and weights.rows bits; requires
// pointwise_signs_run.
bool pointwise_signs_run(int channels, int kernel, int stride, int padding);
void pointwise_signs(const BinaryMap& map, std::span<const BitWord> channel_keep, int stride, const BitMatrix& weights,
                     const PackedOperand& packed, const std::int32_t* sign, const std::int32_t* high,
                     const std::int32_t* low, const BitMatrix* select, NarrowConvScratch& scratch, BitMatrix& out);
// The same decisions, plainly: the reference convolution's dots, then the reference thresholds.
void pointwise_signs_reference(const BinaryMap& map, std::span<const BitWord> channel_keep, int stride,
                               const BitMatrix& weights, const std::int32_t* sign, const std::int32_t* high,
                               const std::int32_t* low, const BitMatrix* select, BitMatrix& out);

}  // namespace spinbayes
