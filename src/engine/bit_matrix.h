#pragma once
// Bit-packed binary operands for XNOR-popcount arithmetic.
//
// A value +1 is stored as bit 1, -1 as bit 0. For two rows a, b of n bits and a keep mask k
// (1 = the input is present; 0 = dropped by dropout or outside the map, i.e. zero padding):
//   dot(a, b) = sum over kept i of a_i * b_i = popcount(k) - 2 * popcount((a XOR b) AND k).
// Bits past n in the last word are 0 in every operand, so they never count.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace spinbayes {

using BitWord = std::uint64_t;
constexpr int kBitsPerWord = 64;
constexpr int words_for_bits(int bits) { return (bits + kBitsPerWord - 1) / kBitsPerWord; }

// rows x bits, each row padded to `words` 64-bit words, row-major.
struct BitMatrix {
  int rows = 0, bits = 0, words = 0;
  std::vector<BitWord> data;

  BitMatrix() = default;
  BitMatrix(int rows_, int bits_)
      : rows(rows_), bits(bits_), words(words_for_bits(bits_)),
        data(static_cast<std::size_t>(rows_) * words_for_bits(bits_), 0) {}
  BitWord* row(int r) { return data.data() + static_cast<std::size_t>(r) * words; }
  const BitWord* row(int r) const { return data.data() + static_cast<std::size_t>(r) * words; }
  bool get(int r, int i) const { return (row(r)[i / kBitsPerWord] >> (i % kBitsPerWord)) & 1u; }
  void set(int r, int i, bool v) {
    BitWord& w = row(r)[i / kBitsPerWord];
    const BitWord m = BitWord{1} << (i % kBitsPerWord);
    w = v ? (w | m) : (w & ~m);
  }
};

// A binary feature map, channels-last: pixel (y, x) is row y * width + x of `signs`, whose bits
// are the channels. `keep` has the same shape (1 = present); an empty `keep` means every input is
// present (no dropout on this map).
struct BinaryMap {
  int channels = 0, height = 0, width = 0;
  BitMatrix signs;  // (height * width) x channels
  BitMatrix keep;   // same shape, or empty
};

// Weights of a KxK convolution (K = 1 for a linear layer on a 1 x 1 map with channels = fan-in),
// one row per output channel, bits in patch order (ky, kx, c), c fastest: the order im2col_bits
// produces. `signs` holds LibTorch's order: out x (c, ky, kx), values +1 / -1.
BitMatrix pack_weights(const std::int8_t* signs, int out_channels, int in_channels, int kernel);

// The patches of a KxK convolution with zero padding, one row per output pixel (oy * out_w + ox),
// bits in (ky, kx, c) order, and their keep mask (0 for taps outside the map or dropped inputs).
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

// The keep operand of a binary GEMM: row m of the mask is rows.row(index[m]), so that patch rows
// with one mask share one stored row (channel_conv.h), or rows.row(m) without an index (a
// BitMatrix converts to this). Blocks of rows that share a keep row load it once for all of them.
struct KeepRows {
  KeepRows(const BitMatrix& rows_, std::span<const std::int32_t> index_ = {}) : rows(rows_), index(index_) {}
  const BitMatrix& rows;
  std::span<const std::int32_t> index;
  const BitWord* row(int m) const { return rows.row(index.empty() ? m : index[static_cast<std::size_t>(m)]); }
};

// out[m * n + j] = dot(a.row(m), b.row(j)) under keep.row(m), with kept[m] = popcount(keep.row(m)):
// a binary GEMM, M = a.rows, N = b.rows, all operands with the same `words`.
void bgemm_reference(const BitMatrix& a, const KeepRows& keep, const std::vector<std::int32_t>& kept,
                     const BitMatrix& b, std::int32_t* out);
// The same result, fastest kernel for this CPU (AVX2 + POPCNT when available, chosen at run time).
void bgemm(const BitMatrix& a, const KeepRows& keep, const std::vector<std::int32_t>& kept,
           const BitMatrix& b, std::int32_t* out);
// b rearranged once for the AVX2 kernel (word-major: word w of rows j..j+3 side by side), so that
// a layer's weights are not rearranged on every call.
struct PackedOperand {
  int rows = 0, words = 0, padded_rows = 0;
  std::vector<BitWord> data;  // words x padded_rows, zero rows past `rows`
};
PackedOperand pack_operand(const BitMatrix& b);
// bgemm with b given both plainly (for the portable kernel) and packed (for the AVX2 kernel).
void bgemm(const BitMatrix& a, const KeepRows& keep, const std::vector<std::int32_t>& kept, const BitMatrix& b,
           const PackedOperand& packed_b, std::int32_t* out);
// Name of the kernel bgemm() dispatches to ("avx512-vpopcntdq", "avx2" or "portable").
const char* bgemm_kernel_name();
// Every kernel this CPU can run, best first, and bgemm through a named one (for tests and benches).
std::vector<std::string> bgemm_kernels();
void bgemm_using(const std::string& kernel, const BitMatrix& a, const KeepRows& keep,
                 const std::vector<std::int32_t>& kept, const BitMatrix& b, const PackedOperand& packed_b,
                 std::int32_t* out);

// The sense decision of a row of dot products, packed: bit j of out (n bits, whole words written)
// is 1 iff sign[j] * dots[j] >= bound[j], with sign[j] = +1 or -1 (a flipped threshold:
// dot <= b is -dot >= -b).
void threshold_bits_reference(const std::int32_t* dots, const std::int32_t* sign, const std::int32_t* bound, int n,
                              BitWord* out);
void threshold_bits(const std::int32_t* dots, const std::int32_t* sign, const std::int32_t* bound, int n,
                    BitWord* out);

// The machine's popcount roof: binary multiply-accumulates per second of the best register-
// blocked XNOR-popcount microkernel on L1-resident data, over about `seconds` on `threads` threads.
double measure_popcount_roof(double seconds, int threads);

}  // namespace spinbayes
