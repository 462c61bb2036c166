#pragma once
// Bit-packed binary operands for XNOR-popcount arithmetic.
//
// A value +1 is stored as bit 1, -1 as bit 0. For two rows a, b of n bits and a keep mask k
// (1 = the input is present; 0 = dropped by dropout or outside the map, i.e. zero padding):
//   dot(a, b) = sum over kept i of a_i * b_i = popcount(k) - 2 * popcount((a XOR b) AND k).
// Bits past n in the last word are 0 in every operand, so they never count.
#include <cstdint>
#include <vector>

namespace spinbayes {

using BitWord = std::uint64_t;
constexpr int kBitsPerWord = 64;
constexpr int words_for_bits(int bits) { return (bits + kBitsPerWord - 1) / kBitsPerWord; }
// Whether the n words at a and b are equal, inline: the rows compared per window are a few words,
// where a library call costs more than the comparison.
inline bool same_words(const BitWord* a, const BitWord* b, int n) {
  BitWord differ = 0;
  for (int i = 0; i < n; ++i) differ |= a[i] ^ b[i];
  return differ == 0;
}

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

}  // namespace spinbayes
