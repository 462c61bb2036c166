#include "engine/narrow_conv.h"

#include <algorithm>
#include <bit>
#include <string>

#include "core/cpu_features.h"
#include "core/error.h"
#include "engine/simd.h"

namespace spinbayes {
namespace {

constexpr int kLanes = 16;  // output channels per block: the 32-bit lanes of a 512-bit register

// Bits [offset, offset + n) of a row, n <= 16.
std::uint32_t bits_at(const BitWord* row, int offset, int n) {
  const int word = offset / kBitsPerWord, shift = offset % kBitsPerWord;
  BitWord v = row[word] >> shift;
  if (shift + n > kBitsPerWord) v |= row[word + 1] << (kBitsPerWord - shift);
  return static_cast<std::uint32_t>(v & ((BitWord{1} << n) - 1));
}

// The weights as the kernel reads them, remade only when they change.
void make_lanes(const BitMatrix& weights, int channels, int kernel, NarrowConvScratch& s) {
  if (s.lanes_channels == channels && s.lanes_kernel == kernel && s.lanes_of.rows == weights.rows &&
      s.lanes_of.bits == weights.bits && s.lanes_of.data == weights.data)
    return;
  const int taps = kernel * kernel, blocks = (weights.rows + kLanes - 1) / kLanes;
  s.lanes.assign(static_cast<std::size_t>(blocks) * taps * kLanes, 0);
  for (int oc = 0; oc < weights.rows; ++oc)
    for (int t = 0; t < taps; ++t) {
      const std::uint32_t w = bits_at(weights.row(oc), t * channels, channels);
      s.lanes[(static_cast<std::size_t>(oc / kLanes) * taps + t) * kLanes + oc % kLanes] = w | w << 16;
    }
  s.lanes_of = weights;
  s.lanes_channels = channels;
  s.lanes_kernel = kernel;
}

// The words of a plane row (pitch), and of each phase (stride 2).
struct PlaneLayout {
  int pitch = 0;
  std::size_t phase_size = 0;
};

#if SPINBAYES_X86
// GCC 12's AVX-512 intrinsics trip -W(maybe-)uninitialized inside the system header once inlined
// (GCC bug 105593); off for these kernels only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define SPINBAYES_AVX512_BITALG __attribute__((target("avx512f,avx512bw,avx512vl,avx512bitalg,ssse3")))

// Writes the map's words, masked by the channel keep, into the zero-padded plane (stride 1) or
// its four phases (stride 2: padded row Y, column X go to phase (Y & 1, X & 1) at (Y / 2, X / 2);
// a phase no tap reads, as with a 1x1 kernel, is left empty). Thirty-two pixels at a time: the low
// 16 bits of their words picked out by two word permutes.
SPINBAYES_AVX512_BITALG PlaneLayout fill_planes(const BinaryMap& map, std::uint16_t keep, int kernel, int stride,
                                               int padding, std::vector<std::uint16_t>& planes) {
  const int h = map.height, w = map.width, ph = h + 2 * padding, pw = w + 2 * padding;
  PlaneLayout layout;
  const int rows = stride == 1 ? ph : (ph + 1) / 2, pitch = stride == 1 ? pw : (pw + 1) / 2;
  const int phases = stride == 1 ? 1 : 4;
  const std::size_t phase_size = static_cast<std::size_t>(rows) * pitch;
  // The second pixel of the last pair of an odd row reads a word past its row: slack at the end.
  planes.assign(phase_size * phases + static_cast<std::size_t>(pitch) + 8, 0);
  layout.pitch = pitch;
  layout.phase_size = phase_size;
  const __m512i mask = _mm512_set1_epi16(static_cast<short>(keep));
  // Word j of `pick` indexes the 64 words of two registers of 8 pixels each: stride 1, pixel j's
  // low word (4j); stride 2, the even pixels then the odd ones (8j, then 8j + 4).
  alignas(64) std::uint16_t pick_words[32];
  for (int j = 0; j < 32; ++j)
    pick_words[j] = static_cast<std::uint16_t>(stride == 1 ? 4 * (j % 16) : (j % 16 < 8 ? 8 * (j % 8) : 8 * (j % 8) + 4));
  const __m512i pick = _mm512_load_si512(pick_words);
  // Stride 2: quadwords of the two 16-pixel halves, evens first: [e01 evens, e23 evens, e01 odds, e23 odds].
  const __m512i halves = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  // A 1x1 kernel with stride 2 reads phase (0, 0) alone: odd padded rows and columns are skipped.
  const bool all_phases = stride == 1 || kernel > 1;
  const int y_step = all_phases ? 1 : 2, y_first = all_phases ? 0 : (padding & 1);
  // Chunks of 32 pixels across a row, outer, so that the masks of a chunk are made once.
  for (int x = 0; x < w; x += 32) {
    const int n = std::min(32, w - x);
    const std::uint64_t valid = (std::uint64_t{1} << n) - 1;
    const __mmask8 m0 = static_cast<__mmask8>(valid), m1 = static_cast<__mmask8>(valid >> 8),
                   m2 = static_cast<__mmask8>(valid >> 16), m3 = static_cast<__mmask8>(valid >> 24);
    const __mmask32 store = static_cast<__mmask32>(valid);
    const __mmask16 evens = static_cast<__mmask16>((1u << ((n + 1) / 2)) - 1);
    const __mmask16 odds = all_phases ? static_cast<__mmask16>((1u << (n / 2)) - 1) : __mmask16{0};
    const int even = x + padding, odd = x + 1 + padding;  // padded columns of the first even and odd pixel
    for (int y = y_first; y < h; y += y_step) {
      const int row = y + padding;
      const BitWord* src = map.signs.data.data() + static_cast<std::size_t>(y) * w + x;
      const __m512i v0 = _mm512_maskz_loadu_epi64(m0, src), v1 = _mm512_maskz_loadu_epi64(m1, src + 8);
      const __m512i v2 = _mm512_maskz_loadu_epi64(m2, src + 16), v3 = _mm512_maskz_loadu_epi64(m3, src + 24);
      const __m512i first = _mm512_permutex2var_epi16(v0, pick, v1), second = _mm512_permutex2var_epi16(v2, pick, v3);
      if (stride == 1) {
        const __m512i words = _mm512_and_si512(_mm512_shuffle_i64x2(first, second, 0x44), mask);
        _mm512_mask_storeu_epi16(planes.data() + static_cast<std::size_t>(row) * pitch + padding + x, store, words);
        continue;
      }
      const __m512i words = _mm512_and_si512(_mm512_permutex2var_epi64(first, halves, second), mask);
      std::uint16_t* phase_row = planes.data() + static_cast<std::size_t>(row & 1) * 2 * phase_size +
                                 static_cast<std::size_t>(row / 2) * pitch;
      _mm256_mask_storeu_epi16(phase_row + static_cast<std::size_t>(even & 1) * phase_size + even / 2, evens,
                               _mm512_castsi512_si256(words));
      _mm256_mask_storeu_epi16(phase_row + static_cast<std::size_t>(odd & 1) * phase_size + odd / 2, odds,
                               _mm512_extracti64x4_epi64(words, 1));
    }
  }
  return layout;
}

// The dots of B blocks of up to 16 output channels from `block` on, two output pixels per lane;
// the blocks share each word they read.
template <int K, int S, int B>
SPINBAYES_AVX512_BITALG void narrow_blocks(const std::uint16_t* planes, const PlaneLayout& layout, int out_h,
                                           int out_w, const std::uint32_t* lanes, std::uint16_t keep, int kept,
                                           const ConvTables& tables, std::int32_t* corrections, int out_c, int block,
                                           std::int32_t* dots) {
  constexpr int kTaps = K * K;
  const __m512i both = _mm512_set1_epi32(static_cast<int>(keep | static_cast<std::uint32_t>(keep) << 16));
  __m512i w[B][kTaps];
  __m512i weight_count[B][kTaps];  // popcount(w AND keep) per output channel
  __mmask16 lanes_out[B];
  for (int b = 0; b < B; ++b) {
    const int n = std::min(kLanes, out_c - (block + b) * kLanes);
    lanes_out[b] = n == kLanes ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << n) - 1);
    for (int t = 0; t < kTaps; ++t) {
      w[b][t] = _mm512_and_si512(
          _mm512_loadu_si512(lanes + (static_cast<std::size_t>(block + b) * kTaps + t) * kLanes), both);
      weight_count[b][t] = _mm512_and_si512(_mm512_popcnt_epi16(w[b][t]), _mm512_set1_epi32(0xFFFF));
    }
  }
  // Per rectangle of in-map taps, the dot of a pixel without mismatches: its taps inside x the
  // channels kept, plus 2 x the weight counts of the taps outside it (a padded tap reads 0, which
  // the count below takes for mismatches).
  const int x_classes = static_cast<int>(tables.x_ranges.size());
  const int rectangles = static_cast<int>(tables.y_ranges.size()) * x_classes;
  for (int r = 0; r < rectangles; ++r) {
    const TapRange ry = tables.y_ranges[static_cast<std::size_t>(r / x_classes)];
    const TapRange rx = tables.x_ranges[static_cast<std::size_t>(r % x_classes)];
    for (int b = 0; b < B; ++b) {
      __m512i c = _mm512_set1_epi32((ry.hi - ry.lo) * (rx.hi - rx.lo) * (kept / kTaps));
      for (int t = 0; t < kTaps; ++t) {
        const int ky = t / K, kx = t % K;
        if (ky < ry.lo || ky >= ry.hi || kx < rx.lo || kx >= rx.hi) {
          c = _mm512_add_epi32(c, _mm512_add_epi32(weight_count[b][t], weight_count[b][t]));
        }
      }
      _mm512_storeu_si512(corrections + (static_cast<std::size_t>(r) * B + b) * kLanes, c);
    }
  }
  // -2 x the low or the high word of each lane, as 32 bits (VPMADDWD).
  const __m512i minus2_low = _mm512_set1_epi32(0x0000FFFE), minus2_high = _mm512_set1_epi32(static_cast<int>(0xFFFE0000u));
  const std::int32_t* rectangle_of = tables.keep_index.data();
  for (int oy = 0; oy < out_h; ++oy) {
    // Where the taps of kernel row ky read: stride 1, plane row oy + ky from column kx; stride 2,
    // phase (ky & 1, kx & 1) at row oy + ky / 2 from column kx / 2.
    const std::uint16_t* rows[K][2];
    for (int ky = 0; ky < K; ++ky)
      for (int px = 0; px < 2; ++px)
        rows[ky][px] = S == 1 ? planes + static_cast<std::size_t>(oy + ky) * layout.pitch
                              : planes + static_cast<std::size_t>((ky & 1) * 2 + px) * layout.phase_size +
                                    static_cast<std::size_t>(oy + ky / 2) * layout.pitch;
    const std::size_t first = static_cast<std::size_t>(oy) * out_w;
    for (int ox = 0; ox < out_w; ox += 2) {
      __m512i mismatches[B];
      for (int b = 0; b < B; ++b) mismatches[b] = _mm512_setzero_si512();
      for (int t = 0; t < kTaps; ++t) {
        const int ky = t / K, kx = t % K;
        // Words ox and ox + 1 of this tap's row: the tap of both pixels, in one lane's halves.
        const std::uint16_t* at = S == 1 ? rows[ky][0] + kx : rows[ky][kx & 1] + kx / 2;
        std::uint32_t pair;
        __builtin_memcpy(&pair, at + ox, sizeof pair);
        const __m512i x = _mm512_set1_epi32(static_cast<int>(pair));
        for (int b = 0; b < B; ++b)
          mismatches[b] = _mm512_add_epi16(mismatches[b], _mm512_popcnt_epi16(_mm512_xor_si512(x, w[b][t])));
      }
      const std::size_t pix = first + static_cast<std::size_t>(ox);
      const std::int32_t* base_lo = corrections + static_cast<std::size_t>(rectangle_of[pix]) * B * kLanes;
      for (int b = 0; b < B; ++b) {
        std::int32_t* out = dots + pix * out_c + (block + b) * kLanes;
        const __m512i lo = _mm512_add_epi32(_mm512_madd_epi16(mismatches[b], minus2_low),
                                            _mm512_loadu_si512(base_lo + b * kLanes));
        _mm512_mask_storeu_epi32(out, lanes_out[b], lo);
      }
      if (ox + 1 < out_w) {
        const std::int32_t* base_hi = corrections + static_cast<std::size_t>(rectangle_of[pix + 1]) * B * kLanes;
        for (int b = 0; b < B; ++b) {
          std::int32_t* out = dots + (pix + 1) * out_c + (block + b) * kLanes;
          const __m512i hi = _mm512_add_epi32(_mm512_madd_epi16(mismatches[b], minus2_high),
                                              _mm512_loadu_si512(base_hi + b * kLanes));
          _mm512_mask_storeu_epi32(out, lanes_out[b], hi);
        }
      }
    }
  }
}

// A 1x1 convolution (no padding: every tap is in the map): its outputs read the plane (or phase
// (0, 0)) pixel after pixel, rows without a gap, so the pairs run straight through the map and
// each pair's word is read once for every block of output channels.
SPINBAYES_AVX512_BITALG void narrow_pointwise(const std::uint16_t* plane, int pixels, const std::uint32_t* lanes,
                                              std::uint16_t keep, int out_c, std::int32_t* dots) {
  const int blocks = (out_c + kLanes - 1) / kLanes;
  const __m512i both = _mm512_set1_epi32(static_cast<int>(keep | static_cast<std::uint32_t>(keep) << 16));
  const __m512i kept = _mm512_set1_epi32(std::popcount(keep));
  const __m512i minus2_low = _mm512_set1_epi32(0x0000FFFE), minus2_high = _mm512_set1_epi32(static_cast<int>(0xFFFE0000u));
  constexpr int kMostBlocks = 4;  // 64 output channels in registers; more go round again
  for (int first_block = 0; first_block < blocks; first_block += kMostBlocks) {
    const int count = std::min(kMostBlocks, blocks - first_block);
    __m512i w[kMostBlocks];
    __mmask16 lanes_out[kMostBlocks];
    for (int b = 0; b < count; ++b) {
      w[b] = _mm512_and_si512(_mm512_loadu_si512(lanes + static_cast<std::size_t>(first_block + b) * kLanes), both);
      const int n = std::min(kLanes, out_c - (first_block + b) * kLanes);
      lanes_out[b] = n == kLanes ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << n) - 1);
    }
    for (int pix = 0; pix < pixels; pix += 2) {
      std::uint32_t pair;
      __builtin_memcpy(&pair, plane + pix, sizeof pair);
      const __m512i x = _mm512_set1_epi32(static_cast<int>(pair));
      std::int32_t* out = dots + static_cast<std::size_t>(pix) * out_c + first_block * kLanes;
      for (int b = 0; b < count; ++b, out += kLanes) {
        const __m512i mismatches = _mm512_popcnt_epi16(_mm512_xor_si512(x, w[b]));
        const __m512i lo = _mm512_add_epi32(_mm512_madd_epi16(mismatches, minus2_low), kept);
        _mm512_mask_storeu_epi32(out, lanes_out[b], lo);
        if (pix + 1 < pixels) {
          _mm512_mask_storeu_epi32(out + out_c, lanes_out[b], _mm512_add_epi32(_mm512_madd_epi16(mismatches, minus2_high), kept));
        }
      }
    }
  }
}
#pragma GCC diagnostic pop
#endif

}  // namespace

bool narrow_conv_runs(int channels, int kernel, int stride) {
#if SPINBAYES_X86
  return cpu_features().avx512_bitalg && channels >= 1 && channels <= kLanes && kernel >= 1 && kernel <= 3 &&
         (stride == 1 || stride == 2);
#else
  (void)channels, (void)kernel, (void)stride;
  return false;
#endif
}

void narrow_conv(const BinaryMap& map, std::span<const BitWord> channel_keep, int kernel, int stride, int padding,
                 const BitMatrix& weights, const ConvTables& tables, NarrowConvScratch& scratch, std::int32_t* dots) {
  const int c = map.channels;
  if (!narrow_conv_runs(c, kernel, stride))
    throw Error("narrow_conv: a " + std::to_string(kernel) + "x" + std::to_string(kernel) + " stride " +
                std::to_string(stride) + " convolution of " + std::to_string(c) + " channels does not run here");
  const ConvGeometry geometry{map.height, map.width, c, kernel, stride, padding};
  if (!map.keep.data.empty() || map.signs.words != 1 || channel_keep.size() > 1 || weights.bits != kernel * kernel * c ||
      !(tables.geometry == geometry) || padding < 0 || padding >= kernel)
    throw Error("narrow_conv: operands do not match the convolution");
#if SPINBAYES_X86
  const int out_h = (map.height + 2 * padding - kernel) / stride + 1;
  const int out_w = (map.width + 2 * padding - kernel) / stride + 1;
  if (out_h < 1 || out_w < 1 || tables.keep_index.size() != static_cast<std::size_t>(out_h) * out_w)
    throw Error("narrow_conv: the map is smaller than the kernel");
  const std::uint16_t all = static_cast<std::uint16_t>((1u << c) - 1);
  const std::uint16_t keep = channel_keep.empty() ? all : static_cast<std::uint16_t>(channel_keep[0] & all);
  const int kept = kernel * kernel * std::popcount(keep);
  make_lanes(weights, c, kernel, scratch);
  const PlaneLayout layout = fill_planes(map, keep, kernel, stride, padding, scratch.planes);
  const int rectangles = static_cast<int>(tables.y_ranges.size() * tables.x_ranges.size());
  if (kernel == 1) {
    // padding 0 (< kernel): the pitch of the plane or phase (0, 0) is the output width.
    if (layout.pitch != out_w) throw Error("narrow_conv: a 1x1 plane of pitch " + std::to_string(layout.pitch) + " for " + std::to_string(out_w) + " outputs a row");
    narrow_pointwise(scratch.planes.data(), out_h * out_w, scratch.lanes.data(), keep, weights.rows, dots);
    return;
  }
  // Two blocks of 16 output channels at a time (their 18 weight registers and the accumulators
  // fit the 32), then one.
  const int blocks = (weights.rows + kLanes - 1) / kLanes;
  scratch.corrections.resize(static_cast<std::size_t>(rectangles) * 2 * kLanes);
  const std::uint32_t* lanes = scratch.lanes.data();
  const std::uint16_t* planes = scratch.planes.data();
  std::int32_t* corrections = scratch.corrections.data();
  for (int block = 0; block < blocks;) {
    const bool pair = block + 1 < blocks;
#define SPINBAYES_NARROW(k, s, b) \
  narrow_blocks<k, s, b>(planes, layout, out_h, out_w, lanes, keep, kept, tables, corrections, weights.rows, block, dots)
    if (kernel == 2 && stride == 1) pair ? SPINBAYES_NARROW(2, 1, 2) : SPINBAYES_NARROW(2, 1, 1);
    else if (kernel == 2) pair ? SPINBAYES_NARROW(2, 2, 2) : SPINBAYES_NARROW(2, 2, 1);
    else if (stride == 1) pair ? SPINBAYES_NARROW(3, 1, 2) : SPINBAYES_NARROW(3, 1, 1);
    else pair ? SPINBAYES_NARROW(3, 2, 2) : SPINBAYES_NARROW(3, 2, 1);
#undef SPINBAYES_NARROW
    block += pair ? 2 : 1;
  }
#else
  (void)dots;
#endif
}

}  // namespace spinbayes
