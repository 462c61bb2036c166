// im2col on bit maps: a bit-by-bit reference for any channel count, and a byte-copying path for
// maps whose channels fill whole bytes.
#include "engine/im2col.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "core/cpu_features.h"
#include "core/error.h"
#include "engine/parallel.h"
#include "engine/simd.h"

namespace spinbayes {
namespace {

constexpr BitWord kAllOnes = ~BitWord{0};

// Mask of the low `n` bits, 0 <= n <= 64.
constexpr BitWord low_bits(int n) { return n >= kBitsPerWord ? kAllOnes : (BitWord{1} << n) - 1; }

// Sets m's shape to rows x bits, reusing its storage; the contents are left for the caller to write.
void reshape(BitMatrix& m, int rows, int bits) {
  m.rows = rows;
  m.bits = bits;
  m.words = words_for_bits(bits);
  m.data.resize(static_cast<std::size_t>(rows) * m.words);
}

// Writes two bit streams (a patch's signs and keep) word by word, front to back: bits are
// gathered in registers and each word is stored once, so the rows need no zeroing and successive
// runs don't wait on each other through memory.
class PatchWriter {
 public:
  PatchWriter(BitWord* signs, BitWord* keep) : signs_(signs), keep_(keep) {}

  // Appends the low n bits (1 <= n <= 64) of s and k; bits above n must be 0.
  void put(BitWord s, BitWord k, int n) {
    s_ |= s << fill_;
    k_ |= k << fill_;
    fill_ += n;
    if (fill_ >= kBitsPerWord) {
      *signs_++ = s_;
      *keep_++ = k_;
      fill_ -= kBitsPerWord;
      // The bits that did not fit: the top `fill_` of the n.
      s_ = fill_ != 0 ? s >> (n - fill_) : 0;
      k_ = fill_ != 0 ? k >> (n - fill_) : 0;
    }
  }

  // Appends the first n bits of the words s and k (k == nullptr: all ones).
  void put_words(const BitWord* s, const BitWord* k, int n) {
    for (int i = 0; n > 0; ++i, n -= kBitsPerWord) {
      const int bits = std::min(n, kBitsPerWord);
      const BitWord mask = low_bits(bits);
      put(s[i] & mask, k != nullptr ? k[i] & mask : mask, bits);
    }
  }

  // Appends n zero bits (a tap outside the map).
  void put_zeros(int n) {
    for (; n > 0; n -= kBitsPerWord) put(0, 0, std::min(n, kBitsPerWord));
  }

  // Stores the last, partial word.
  void finish() {
    if (fill_ != 0) {
      *signs_ = s_;
      *keep_ = k_;
    }
  }

 private:
  BitWord *signs_, *keep_;
  BitWord s_ = 0, k_ = 0;
  int fill_ = 0;  // bits held in s_ and k_, < 64 between calls
};

// Writes the patch of one output pixel: for each tap (ky, kx), in order, the C channel bits of the
// input pixel under it, or zeros outside the map. (iy0, ix0) is the input position of tap (0, 0).
// kOneWord: C <= 64, every run one word. kKernel, kChannels > 0: the geometry fixed at compile time
// (3x3 convolutions of 16, 32 or 64 channels), so the unrolled taps pack with constant shifts.
template <bool kOneWord, int kKernel = 0, int kChannels = 0>
void write_patch(const BinaryMap& map, int runtime_kernel, int iy0, int ix0, BitWord* signs, BitWord* keep) {
  const int kernel = kKernel > 0 ? kKernel : runtime_kernel;
  const int c = kChannels > 0 ? kChannels : map.channels;
  const bool has_keep = !map.keep.data.empty();
  const BitWord mask = low_bits(c);
  PatchWriter out(signs, keep);
  for (int ky = 0; ky < kernel; ++ky) {
    const int iy = iy0 + ky;
    for (int kx = 0; kx < kernel; ++kx) {
      const int ix = ix0 + kx;
      if (iy < 0 || iy >= map.height || ix < 0 || ix >= map.width) {
        out.put_zeros(c);
        continue;
      }
      const int pixel = iy * map.width + ix;
      if constexpr (kOneWord) {
        out.put(map.signs.data[pixel] & mask, has_keep ? map.keep.data[pixel] & mask : mask, c);
      } else {
        out.put_words(map.signs.row(pixel), has_keep ? map.keep.row(pixel) : nullptr, c);
      }
    }
  }
  out.finish();
}

int popcount_words(const BitWord* w, int n) {
  int count = 0;
  for (int i = 0; i < n; ++i) count += std::popcount(w[i]);
  return count;
}

#if SPINBAYES_X86
// The same with the POPCNT instruction (std::popcount is a library call in baseline x86-64).
SPINBAYES_POPCNT int popcount_words_popcnt(const BitWord* w, int n) {
  int count = 0;
  for (int i = 0; i < n; ++i) count += static_cast<int>(_mm_popcnt_u64(w[i]));
  return count;
}
#endif


// Checks the maps and the geometry and shapes `out` for them (out_h, out_w, rows, bits); the
// contents are left for the caller to write.
void shape_patches(std::span<const BinaryMap> maps, int kernel, int stride, int padding, Patches& out,
                   bool with_keep = true) {
  if (maps.empty()) throw Error("im2col_bits: no maps");
  const BinaryMap& first = maps.front();
  const int c = first.channels, h = first.height, w = first.width;
  if (kernel <= 0 || stride <= 0 || padding < 0 || c <= 0 || h <= 0 || w <= 0)
    throw Error("im2col_bits: bad geometry (kernel " + std::to_string(kernel) + ", stride " +
                std::to_string(stride) + ", padding " + std::to_string(padding) + ", map " +
                std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w) + ")");
  if (h + 2 * padding < kernel || w + 2 * padding < kernel)
    throw Error("im2col_bits: kernel " + std::to_string(kernel) + " larger than the padded map");
  const auto shape_ok = [&](const BitMatrix& m) { return m.rows == h * w && m.bits == c; };
  for (const BinaryMap& map : maps) {
    if (map.channels != c || map.height != h || map.width != w || !shape_ok(map.signs) ||
        (!map.keep.data.empty() && !shape_ok(map.keep)))
      throw Error("im2col_bits: map matrices are not (height * width) x channels of one shape");
  }
  out.out_h = (h + 2 * padding - kernel) / stride + 1;
  out.out_w = (w + 2 * padding - kernel) / stride + 1;
  const int rows = out.out_h * out.out_w * static_cast<int>(maps.size());
  reshape(out.signs, rows, kernel * kernel * c);
  if (!with_keep) return;
  reshape(out.keep, rows, kernel * kernel * c);
  out.kept.resize(rows);
}

using PopcountWords = int (*)(const BitWord*, int);
PopcountWords fastest_popcount_words() {
#if SPINBAYES_X86
  if (cpu_features().popcnt) return popcount_words_popcnt;
#endif
  return popcount_words;
}

// Copies n bytes with 8-byte moves (the last one overlapping the one before it when n is not a
// multiple of 8: it rewrites the same bytes), or 4-byte moves for 4 <= n < 8: fixed-size moves
// compile to single loads and stores, where memcpy of a run-time size is a library call.
inline void copy_bytes(std::uint8_t* dst, const std::uint8_t* src, int n) {
  if (n >= 8) {
    int i = 0;
    for (; i + 8 <= n; i += 8) std::memcpy(dst + i, src + i, 8);
    if (i < n) std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else {
    std::memcpy(dst, src, static_cast<std::size_t>(n));
  }
}

// The map's channels as whole bytes, C / 8 a pixel, with `padding` zero pixels around it: on a
// little-endian machine, bit i of a row of words is bit i % 8 of byte i / 8, so the bytes of a
// pixel are the first C / 8 bytes of its row. `keep` without a mask is all ones inside the map.
// kPixelBytes > 0: C / 8 fixed at compile time.
template <int kPixelBytes = 0>
void bordered_bytes(const BinaryMap& map, bool keep, int padding, std::uint8_t* out) {
  const int pixel_bytes = kPixelBytes > 0 ? kPixelBytes : map.channels / 8;
  const int bw = map.width + 2 * padding, bh = map.height + 2 * padding;
  const bool ones = keep && map.keep.data.empty();
  const BitMatrix& src = keep ? map.keep : map.signs;
  // Held in locals: the byte stores below may alias anything, so members would be reloaded.
  const auto* pixels = reinterpret_cast<const std::uint8_t*>(src.data.data());
  const std::size_t pixel_stride = sizeof(BitWord) * static_cast<std::size_t>(src.words);
  const int width = map.width, height = map.height;
  const std::size_t row_bytes = static_cast<std::size_t>(bw) * pixel_bytes;
  const std::size_t side = static_cast<std::size_t>(padding) * pixel_bytes;  // left and right border
  std::memset(out, 0, row_bytes * padding);  // top border
  std::uint8_t* dst = out + row_bytes * padding;
  for (int y = 0; y < height; ++y, dst += row_bytes) {
    std::memset(dst, 0, side);
    std::memset(dst + row_bytes - side, 0, side);
    std::uint8_t* in = dst + side;
    if (ones) {
      std::memset(in, 0xff, static_cast<std::size_t>(width) * pixel_bytes);
      continue;
    }
    if (kPixelBytes == 4 && pixel_stride == sizeof(BitWord)) {
      // 32 channels, one word a pixel: the low halves of `width` words, a loop that vectorizes.
      for (int x = 0; x < width; ++x, in += 4, pixels += sizeof(BitWord)) {
        BitWord word;
        std::memcpy(&word, pixels, sizeof word);
        const auto half = static_cast<std::uint32_t>(word);
        std::memcpy(in, &half, sizeof half);
      }
      continue;
    }
    for (int x = 0; x < width; ++x, in += pixel_bytes, pixels += pixel_stride) copy_bytes(in, pixels, pixel_bytes);
  }
  std::memset(dst, 0, row_bytes * static_cast<std::size_t>(bh - height - padding));  // bottom border
}

using BorderedBytes = void (*)(const BinaryMap&, bool, int, std::uint8_t*);
BorderedBytes bordered_bytes_for(int pixel_bytes) {
  if (pixel_bytes == 2) return bordered_bytes<2>;
  if (pixel_bytes == 4) return bordered_bytes<4>;
  if (pixel_bytes == 8) return bordered_bytes<8>;
  if (pixel_bytes == 16) return bordered_bytes<16>;
  return bordered_bytes<>;
}

// Rows [first, first + out_w) of patches, one output row (oy) of a bordered byte map whose row oy
// * stride starts at `line`: for each ky, the kernel * C / 8 bytes from (oy * stride + ky, ox * stride).
// kKernel, kPixelBytes > 0: fixed at compile time (3x3 convolutions of 16, 32, 64 or 128 channels), so
// each run is a few fixed moves.
template <int kKernel = 0, int kPixelBytes = 0>
void copy_patch_line(const std::uint8_t* line, int bordered_width, int runtime_pixel_bytes, int runtime_kernel,
                     int stride, BitMatrix& patches, int first, int out_w) {
  const int kernel = kKernel > 0 ? kKernel : runtime_kernel;
  const int pixel_bytes = kPixelBytes > 0 ? kPixelBytes : runtime_pixel_bytes;
  const int words = patches.words, run = kernel * pixel_bytes;
  const bool ragged = kernel * run % static_cast<int>(sizeof(BitWord)) != 0;  // the last word is partly padding
  const std::size_t row_bytes = static_cast<std::size_t>(bordered_width) * pixel_bytes;
  // Held in locals: the byte stores below may alias anything, so members would be reloaded.
  BitWord* dst = patches.row(first);
  const std::size_t step = static_cast<std::size_t>(stride) * pixel_bytes;
  for (int ox = 0; ox < out_w; ++ox, dst += words, line += step) {
    if constexpr (kKernel == 3 && kPixelBytes == 4) {
      // 32 channels: nine 4-byte taps, three runs of 12 bytes, assembled into five whole words
      // (the last one half padding) and stored aligned.
      const auto load = [](const std::uint8_t* p, auto word) {
        decltype(word) x;
        std::memcpy(&x, p, sizeof x);
        return static_cast<BitWord>(x);
      };
      const std::uint8_t *r0 = line, *r1 = line + row_bytes, *r2 = line + 2 * row_bytes;
      dst[0] = load(r0, BitWord{});
      dst[1] = load(r0 + 8, std::uint32_t{}) | load(r1, std::uint32_t{}) << 32;
      dst[2] = load(r1 + 4, BitWord{});
      dst[3] = load(r2, BitWord{});
      dst[4] = load(r2 + 8, std::uint32_t{});
      continue;
    }
    if constexpr (kKernel == 3 && kPixelBytes == 2) {
      // 16 channels: nine 2-byte taps, three runs of 6 bytes, assembled into three whole words
      // (the last one 48 bits of padding).
      const auto run6 = [](const std::uint8_t* p) {
        BitWord word;
        std::memcpy(&word, p, sizeof word);  // 2 bytes past the run: the bordered map has slack
        return word & ((BitWord{1} << 48) - 1);
      };
      const BitWord r0 = run6(line), r1 = run6(line + row_bytes), r2 = run6(line + 2 * row_bytes);
      dst[0] = r0 | r1 << 48;
      dst[1] = r1 >> 16 | r2 << 32;
      dst[2] = r2 >> 32;
      continue;
    }
    if (ragged) dst[words - 1] = 0;
    auto* bytes = reinterpret_cast<std::uint8_t*>(dst);
    for (int ky = 0; ky < kernel; ++ky) copy_bytes(bytes + ky * run, line + ky * row_bytes, run);
  }
}

using CopyPatchLine = void (*)(const std::uint8_t*, int, int, int, int, BitMatrix&, int, int);
CopyPatchLine patch_line_copier(int kernel, int pixel_bytes) {
  if (kernel == 3 && pixel_bytes == 2) return copy_patch_line<3, 2>;
  if (kernel == 3 && pixel_bytes == 4) return copy_patch_line<3, 4>;
  if (kernel == 3 && pixel_bytes == 8) return copy_patch_line<3, 8>;
  if (kernel == 3 && pixel_bytes == 16) return copy_patch_line<3, 16>;
  return copy_patch_line<>;
}

}  // namespace

void im2col_bits_reference(std::span<const BinaryMap> maps, int kernel, int stride, int padding, Patches& out) {
  shape_patches(maps, kernel, stride, padding, out);
  const int c = maps.front().channels, per_map = out.out_h * out.out_w, rows = out.signs.rows;
  auto write = c <= kBitsPerWord ? write_patch<true> : write_patch<false>;
  if (kernel == 3 && c == 16) write = write_patch<true, 3, 16>;
  if (kernel == 3 && c == 32) write = write_patch<true, 3, 32>;
  if (kernel == 3 && c == 64) write = write_patch<true, 3, 64>;
  const PopcountWords count = fastest_popcount_words();
  for_block_ranges(rows, static_cast<long>(rows) * out.signs.words, [&](int first, int last) {
    for (int r = first; r < last; ++r) {
      const int pixel = r % per_map, oy = pixel / out.out_w, ox = pixel % out.out_w;
      write(maps[static_cast<std::size_t>(r / per_map)], kernel, oy * stride - padding, ox * stride - padding,
            out.signs.row(r), out.keep.row(r));
      out.kept[r] = count(out.keep.row(r), out.keep.words);
    }
  });
}

namespace {

// Whole bytes a channel group: the byte-copying path applies.
bool byte_aligned(std::span<const BinaryMap> maps) {
  return std::endian::native == std::endian::little && !maps.empty() && maps.front().channels % 8 == 0;
}

// The byte-copying path of im2col_bits (with_keep) and im2col_signs (without): each patch is
// `kernel` runs of kernel * C / 8 contiguous bytes of the bordered map (taps (ky, 0..kernel-1) are
// neighbouring pixels), copied, not shifted.
void im2col_bytes(std::span<const BinaryMap> maps, int kernel, int stride, int padding, Patches& out, bool with_keep) {
  shape_patches(maps, kernel, stride, padding, out, with_keep);
  const BinaryMap& first = maps.front();
  const int pixel_bytes = first.channels / 8, bw = first.width + 2 * padding, bh = first.height + 2 * padding;
  const std::size_t map_bytes = static_cast<std::size_t>(bh) * bw * pixel_bytes;
  // A word of slack past the last map (signs and keep alike): a patch line may load a whole word
  // where its run ends.
  out.bordered_signs.resize(map_bytes * maps.size() + sizeof(BitWord));
  if (with_keep) out.bordered_keep.resize(map_bytes * maps.size() + sizeof(BitWord));
  const BorderedBytes bordered = bordered_bytes_for(pixel_bytes);
  for (std::size_t s = 0; s < maps.size(); ++s) {
    bordered(maps[s], false, padding, out.bordered_signs.data() + s * map_bytes);
    if (with_keep) bordered(maps[s], true, padding, out.bordered_keep.data() + s * map_bytes);
  }
  const int rows = out.signs.rows, words = out.signs.words, lines = out.out_h * static_cast<int>(maps.size());
  const std::size_t line_bytes = static_cast<std::size_t>(stride) * bw * pixel_bytes;
  const PopcountWords count = fastest_popcount_words();
  const CopyPatchLine copy_patch_line = patch_line_copier(kernel, pixel_bytes);
  const auto copy_line = [&](int line) {  // one output row of one map
    const std::size_t at = static_cast<std::size_t>(line / out.out_h) * map_bytes + (line % out.out_h) * line_bytes;
    copy_patch_line(out.bordered_signs.data() + at, bw, pixel_bytes, kernel, stride, out.signs, line * out.out_w,
                    out.out_w);
    if (with_keep)
      copy_patch_line(out.bordered_keep.data() + at, bw, pixel_bytes, kernel, stride, out.keep, line * out.out_w,
                      out.out_w);
  };
  const long work = static_cast<long>(rows) * words;
  for_block_ranges(lines, work, [&](int first, int last) {
    for (int line = first; line < last; ++line) copy_line(line);
  });
  // The keep rows are counted in a second pass: a word read straight after the unaligned stores
  // that wrote it would wait for them to retire (no store forwarding across two stores).
  if (with_keep) {
    for_block_ranges(rows, work, [&](int first, int last) {
      for (int r = first; r < last; ++r) out.kept[r] = count(out.keep.row(r), words);
    });
  }
}

}  // namespace

void im2col_bits(std::span<const BinaryMap> maps, int kernel, int stride, int padding, Patches& out) {
  if (byte_aligned(maps)) {
    im2col_bytes(maps, kernel, stride, padding, out, true);
  } else {
    im2col_bits_reference(maps, kernel, stride, padding, out);
  }
}

void im2col_signs(const BinaryMap& map, int kernel, int stride, int padding, Patches& out) {
  if (!map.keep.data.empty()) throw Error("im2col_signs: the map carries its own keep mask");
  const std::span<const BinaryMap> maps(&map, 1);
  if (kernel == 1 && padding == 0) {
    // A 1x1 convolution without padding (a shortcut's): each patch is one pixel's row of the
    // map, copied whole, the bits past the channels cleared.
    shape_patches(maps, kernel, stride, padding, out, false);
    const int words = out.signs.words, c = map.channels;
    const BitWord last = c % kBitsPerWord == 0 ? ~BitWord{0} : (BitWord{1} << (c % kBitsPerWord)) - 1;
    const BitWord* src = map.signs.data.data();
    BitWord* dst = out.signs.data.data();
    const std::size_t step = static_cast<std::size_t>(stride) * words, line = step * map.width;
    for (int oy = 0; oy < out.out_h; ++oy)
      for (int ox = 0; ox < out.out_w; ++ox, dst += words) {
        const BitWord* pixel = src + oy * line + ox * step;
        if (words == 1) {
          dst[0] = pixel[0] & last;  // up to 64 channels: one word, no library copy
        } else {
          std::copy_n(pixel, words, dst);
          dst[words - 1] &= last;
        }
      }
    return;
  }
  if (byte_aligned(maps)) {
    im2col_bytes(maps, kernel, stride, padding, out, false);
  } else {
    im2col_bits_reference(maps, kernel, stride, padding, out);
  }
}

void im2col_bits(const BinaryMap& map, int kernel, int stride, int padding, Patches& out) {
  im2col_bits(std::span<const BinaryMap>(&map, 1), kernel, stride, padding, out);
}

}  // namespace spinbayes
