#include "engine/narrow_conv.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/cpu_features.h"
#include "core/error.h"
#include "engine/channel_conv.h"
#include "engine/simd.h"
#include "engine/threshold.h"

namespace spinbayes {
namespace {

constexpr int kLanes = 16;  // output channels per block: 16 int32 dots, one 512-bit register

// The lane width of a map of `channels`: its pixel's word.
int lane_bits(int channels) { return channels <= 16 ? 16 : channels <= 32 ? 32 : 64; }

// Bits [offset, offset + n) of a row, n <= 64.
BitWord bits_at(const BitWord* row, int offset, int n) {
  const int word = offset / kBitsPerWord, shift = offset % kBitsPerWord;
  BitWord v = row[word] >> shift;
  if (shift != 0 && shift + n > kBitsPerWord) v |= row[word + 1] << (kBitsPerWord - shift);
  return n == kBitsPerWord ? v : v & ((BitWord{1} << n) - 1);
}

// The weights as the kernels read them. Per block of 16 output channels and tap, 16 lanes:
// 16-bit maps w | w << 16 (32 bits a lane), 32-bit maps w, 64-bit maps w as two 32-bit halves
// (two registers of 8 lanes).
void lay_out_lanes(const BitMatrix& weights, int channels, int kernel, std::vector<std::uint32_t>& lanes) {
  const int taps = kernel * kernel, blocks = (weights.rows + kLanes - 1) / kLanes, bits = lane_bits(channels);
  const int per_lane = bits == 64 ? 2 : 1;  // 32-bit words a lane
  lanes.assign(static_cast<std::size_t>(blocks) * taps * kLanes * per_lane, 0);
  for (int oc = 0; oc < weights.rows; ++oc)
    for (int t = 0; t < taps; ++t) {
      const BitWord w = bits_at(weights.row(oc), t * channels, channels);
      std::uint32_t* lane = lanes.data() + ((static_cast<std::size_t>(oc / kLanes) * taps + t) * kLanes + oc % kLanes) * per_lane;
      if (bits == 16) lane[0] = static_cast<std::uint32_t>(w | w << 16);
      else if (bits == 32) lane[0] = static_cast<std::uint32_t>(w);
      else lane[0] = static_cast<std::uint32_t>(w), lane[1] = static_cast<std::uint32_t>(w >> 32);
    }
}

// The lanes of `weights`: the packed operand's when it has them for this geometry, else the
// scratch's, remade only when the weights change.
const std::uint32_t* lanes_of(const BitMatrix& weights, const PackedOperand& packed, int channels, int kernel,
                              NarrowConvScratch& s) {
  if (packed.narrow_channels == channels && packed.narrow_kernel == kernel && !packed.narrow_lanes.empty())
    return packed.narrow_lanes.data();
  if (s.lanes_channels != channels || s.lanes_kernel != kernel || s.lanes_of.rows != weights.rows ||
      s.lanes_of.bits != weights.bits || s.lanes_of.data != weights.data) {
    lay_out_lanes(weights, channels, kernel, s.lanes);
    s.lanes_of = weights;
    s.lanes_channels = channels;
    s.lanes_kernel = kernel;
  }
  return s.lanes.data();
}

// The words of a plane row (pitch), and of each phase (stride 2), in pixels.
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
#define SPINBAYES_AVX512_BITALG \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512bitalg,avx512vpopcntdq,avx512vnni")))

// Writes the map's words, masked by the channel keep and cut to L bits, into the zero-padded
// plane (stride 1) or its four phases (stride 2: padded row Y, column X go to phase (Y & 1, X & 1)
// at (Y / 2, X / 2)). 512 / L pixels at a time (their words' low L bits picked out by permutes).
// Every call writes every in-map word, so the padding stays zero from one call to the next of the
// same plane shape: the planes are cleared only when the shape changes.
template <int L>
SPINBAYES_AVX512_BITALG PlaneLayout fill_planes(const BinaryMap& map, BitWord keep, int stride,
                                               int padding, NarrowConvScratch& scratch) {
  std::vector<BitWord>& planes = scratch.planes;
  constexpr int kChunk = 512 / L, kBytes = L / 8;
  const int h = map.height, w = map.width, ph = h + 2 * padding, pw = w + 2 * padding;
  PlaneLayout layout;
  const int rows = stride == 1 ? ph : (ph + 1) / 2, pitch = stride == 1 ? pw : (pw + 1) / 2;
  const int phases = stride == 1 ? 1 : 4;
  const std::size_t phase_size = static_cast<std::size_t>(rows) * pitch;
  // The second pixel of the last pair of an odd row reads a word past its row: slack at the end.
  const std::size_t bytes = (phase_size * phases + static_cast<std::size_t>(pitch) + 8) * kBytes;
  const std::array<int, 5> shape{h, w, padding, stride, L};
  if (scratch.plane_shape != shape) {
    planes.assign((bytes + sizeof(BitWord) - 1) / sizeof(BitWord), 0);
    scratch.plane_shape = shape;
  }
  char* base = reinterpret_cast<char*>(planes.data());
  layout.pitch = pitch;
  layout.phase_size = phase_size;
  const __m512i mask = _mm512_set1_epi64(static_cast<long long>(keep));
  // The permute of each width: stride 1 keeps pixel order, stride 2 puts the even pixels of the
  // chunk in the low half and the odd ones in the high half.
  __m512i pick;
  if constexpr (L == 16) {
    // Words of two registers of 8 pixels: pixel j's low word is word 4j.
    alignas(64) std::uint16_t words[32];
    for (int j = 0; j < 32; ++j)
      words[j] = static_cast<std::uint16_t>(stride == 1 ? 4 * (j % 16) : (j % 16 < 8 ? 8 * (j % 8) : 8 * (j % 8) + 4));
    pick = _mm512_load_si512(words);
  } else if constexpr (L == 32) {
    alignas(64) std::uint32_t dwords[16];
    for (int j = 0; j < 16; ++j) dwords[j] = static_cast<std::uint32_t>(stride == 1 ? 2 * j : (j < 8 ? 4 * j : 4 * (j - 8) + 2));
    pick = _mm512_load_si512(dwords);
  } else {
    pick = stride == 1 ? _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7) : _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
  }
  // L = 16, stride 2: quadwords of the two 16-pixel halves, evens first.
  const __m512i halves = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  // Chunks across a row, outer, so that the masks of a chunk are made once.
  for (int x = 0; x < w; x += kChunk) {
    const int n = std::min(kChunk, w - x);
    const std::uint64_t valid = (std::uint64_t{1} << n) - 1;
    const std::uint32_t evens = (1u << ((n + 1) / 2)) - 1, odds = (1u << (n / 2)) - 1;
    const int even = x + padding, odd = x + 1 + padding;  // padded columns of the first even and odd pixel
    for (int y = 0; y < h; ++y) {
      const int row = y + padding;
      const BitWord* src = map.signs.data.data() + static_cast<std::size_t>(y) * w + x;
      __m512i words;  // stride 1: the chunk's words in order; stride 2: evens (low 256 bits), odds
      if constexpr (L == 16) {
        const __m512i v0 = _mm512_and_si512(_mm512_maskz_loadu_epi64(static_cast<__mmask8>(valid), src), mask);
        const __m512i v1 = _mm512_and_si512(_mm512_maskz_loadu_epi64(static_cast<__mmask8>(valid >> 8), src + 8), mask);
        const __m512i v2 = _mm512_and_si512(_mm512_maskz_loadu_epi64(static_cast<__mmask8>(valid >> 16), src + 16), mask);
        const __m512i v3 = _mm512_and_si512(_mm512_maskz_loadu_epi64(static_cast<__mmask8>(valid >> 24), src + 24), mask);
        const __m512i first = _mm512_permutex2var_epi16(v0, pick, v1), second = _mm512_permutex2var_epi16(v2, pick, v3);
        words = stride == 1 ? _mm512_shuffle_i64x2(first, second, 0x44) : _mm512_permutex2var_epi64(first, halves, second);
      } else if constexpr (L == 32) {
        const __m512i v0 = _mm512_and_si512(_mm512_maskz_loadu_epi64(static_cast<__mmask8>(valid), src), mask);
        const __m512i v1 = _mm512_and_si512(_mm512_maskz_loadu_epi64(static_cast<__mmask8>(valid >> 8), src + 8), mask);
        words = _mm512_permutex2var_epi32(v0, pick, v1);
      } else {
        words = _mm512_permutexvar_epi64(pick, _mm512_and_si512(_mm512_maskz_loadu_epi64(static_cast<__mmask8>(valid), src), mask));
      }
      if (stride == 1) {
        char* dst = base + (static_cast<std::size_t>(row) * pitch + padding + x) * kBytes;
        if constexpr (L == 16) _mm512_mask_storeu_epi16(dst, static_cast<__mmask32>(valid), words);
        else if constexpr (L == 32) _mm512_mask_storeu_epi32(dst, static_cast<__mmask16>(valid), words);
        else _mm512_mask_storeu_epi64(dst, static_cast<__mmask8>(valid), words);
        continue;
      }
      char* phase_row = base + ((row & 1) * 2 * phase_size + static_cast<std::size_t>(row / 2) * pitch) * kBytes;
      char* even_at = phase_row + ((even & 1) * phase_size + static_cast<std::size_t>(even / 2)) * kBytes;
      char* odd_at = phase_row + ((odd & 1) * phase_size + static_cast<std::size_t>(odd / 2)) * kBytes;
      const __m256i low = _mm512_castsi512_si256(words), high = _mm512_extracti64x4_epi64(words, 1);
      if constexpr (L == 16) {
        _mm256_mask_storeu_epi16(even_at, static_cast<__mmask16>(evens), low);
        _mm256_mask_storeu_epi16(odd_at, static_cast<__mmask16>(odds), high);
      } else if constexpr (L == 32) {
        _mm256_mask_storeu_epi32(even_at, static_cast<__mmask8>(evens), low);
        _mm256_mask_storeu_epi32(odd_at, static_cast<__mmask8>(odds), high);
      } else {
        _mm256_mask_storeu_epi64(even_at, static_cast<__mmask8>(evens), low);
        _mm256_mask_storeu_epi64(odd_at, static_cast<__mmask8>(odds), high);
      }
    }
  }
  return layout;
}

// Stores 16 dots; kFull: every block of the call has 16 output channels, so no mask (a masked
// 512-bit store costs several times a plain one on some cores).
template <bool kFull>
SPINBAYES_AVX512_BITALG inline __attribute__((always_inline)) void store_dots(std::int32_t* at, __mmask16 lanes, __m512i dots) {
  if constexpr (kFull) _mm512_storeu_si512(at, dots);
  else _mm512_mask_storeu_epi32(at, lanes, dots);
}

// Per rectangle of in-map taps and block of 16 output channels, the dot of a pixel without
// mismatches: its taps inside x the channels kept, plus 2 x the weight counts (popcount of the
// masked weights, int32 lanes) of the taps outside it, since a padded tap reads 0 and the kernel
// takes those counts for mismatches. Written to bases[(rectangle * B + block) * 16].
template <int K, int B>
SPINBAYES_AVX512_BITALG inline __attribute__((always_inline)) void write_bases(const ConvTables& tables, int kept,
                                                                              const __m512i (&weight_count)[B][K * K],
                                                                              std::int32_t* bases) {
  constexpr int kTaps = K * K;
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
      _mm512_storeu_si512(bases + (static_cast<std::size_t>(r) * B + b) * kLanes, c);
    }
  }
}

// The dots of B blocks of up to 16 output channels from `block` on, two output pixels per lane;
// the blocks share each word they read.
template <int K, int S, int B, bool kFull>
SPINBAYES_AVX512_BITALG void narrow_blocks(const std::uint16_t* planes, const PlaneLayout& layout, int out_h,
                                           int out_w, const std::uint32_t* lanes, std::uint16_t keep, int kept,
                                           const ConvTables& tables, std::int32_t* bases, int out_c, int block,
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
  write_bases<K, B>(tables, kept, weight_count, bases);
  // -2 x the low or the high word of each lane added to the 32-bit base (VPDPWSSD).
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
      const std::int32_t* base_lo = bases + static_cast<std::size_t>(rectangle_of[pix]) * B * kLanes;
      for (int b = 0; b < B; ++b) {
        std::int32_t* out = dots + pix * out_c + (block + b) * kLanes;
        const __m512i lo = _mm512_dpwssd_epi32(_mm512_loadu_si512(base_lo + b * kLanes), mismatches[b], minus2_low);
        store_dots<kFull>(out, lanes_out[b], lo);
      }
      if (ox + 1 < out_w) {
        const std::int32_t* base_hi = bases + static_cast<std::size_t>(rectangle_of[pix + 1]) * B * kLanes;
        for (int b = 0; b < B; ++b) {
          std::int32_t* out = dots + (pix + 1) * out_c + (block + b) * kLanes;
          const __m512i hi = _mm512_dpwssd_epi32(_mm512_loadu_si512(base_hi + b * kLanes), mismatches[b], minus2_high);
          store_dots<kFull>(out, lanes_out[b], hi);
        }
      }
    }
  }
}

// A 1x1 convolution of a 16-channel map: two output pixels a lane as in narrow_blocks, their
// words read from the map itself (no plane: scalar loads and a shift, off the vector ports), and
// each half's dot n - 2 x mismatches made in one VPDPWSSD; B blocks of 16 output channels from
// `first` on.
template <bool kFull, int B>
SPINBAYES_AVX512_BITALG void pointwise_pairs(const BinaryMap& map, std::uint16_t keep, int stride,
                                             const std::uint32_t* lanes, int out_c, int first, std::int32_t* dots) {
  const int out_h = (map.height - 1) / stride + 1, out_w = (map.width - 1) / stride + 1;
  const std::uint32_t both = keep | static_cast<std::uint32_t>(keep) << 16;
  const __m512i base = _mm512_set1_epi32(std::popcount(keep));
  // (-2, 0) and (0, -2) word pairs: -2 x the low or the high word of a lane, added to the base.
  const __m512i minus2_low = _mm512_set1_epi32(0x0000FFFE), minus2_high = _mm512_set1_epi32(static_cast<int>(0xFFFE0000u));
  __m512i w[B];
  __mmask16 lanes_out[B];
  for (int b = 0; b < B; ++b) {
    w[b] = _mm512_and_si512(_mm512_loadu_si512(lanes + static_cast<std::size_t>(first + b) * kLanes),
                            _mm512_set1_epi32(static_cast<int>(both)));
    lanes_out[b] = static_cast<__mmask16>((1u << std::min(kLanes, out_c - (first + b) * kLanes)) - 1);
  }
  for (int oy = 0; oy < out_h; ++oy) {
    const BitWord* src = map.signs.data.data() + static_cast<std::size_t>(oy) * stride * map.width;
    for (int ox = 0; ox < out_w; ox += 2) {
      const bool second = ox + 1 < out_w;
      const std::uint32_t pair = (static_cast<std::uint32_t>(src[ox * stride] & 0xFFFF) |
                                  (second ? static_cast<std::uint32_t>(src[(ox + 1) * stride]) << 16 : 0u)) & both;
      const __m512i x = _mm512_set1_epi32(static_cast<int>(pair));
      std::int32_t* out = dots + (static_cast<std::size_t>(oy) * out_w + ox) * out_c + first * kLanes;
      for (int b = 0; b < B; ++b) {
        const __m512i m = _mm512_popcnt_epi16(_mm512_xor_si512(x, w[b]));
        const __m512i lo = _mm512_dpwssd_epi32(base, m, minus2_low);
        if constexpr (kFull) _mm512_storeu_si512(out + b * kLanes, lo);
        else _mm512_mask_storeu_epi32(out + b * kLanes, lanes_out[b], lo);
        if (second) {
          const __m512i hi = _mm512_dpwssd_epi32(base, m, minus2_high);
          if constexpr (kFull) _mm512_storeu_si512(out + out_c + b * kLanes, hi);
          else _mm512_mask_storeu_epi32(out + out_c + b * kLanes, lanes_out[b], hi);
        }
      }
    }
  }
}

// A 1x1 convolution of a 17- to 64-channel map reads the map's own words too: each output
// pixel's word is broadcast (its low L bits), XORed with a register of 512 / L output channels'
// weights and masked by the keep in one VPTERNLOG, counted, and its dots stored.
template <int L, bool kFull>
SPINBAYES_AVX512_BITALG void pointwise_direct(const BinaryMap& map, BitWord keep, int stride, const std::uint32_t* lanes,
                                              int out_c, std::int32_t* dots) {
  static_assert(L == 32 || L == 64);
  constexpr int kPerRegister = 512 / L, kMostRegisters = 8;
  const int out_h = (map.height - 1) / stride + 1, out_w = (map.width - 1) / stride + 1;
  const int registers = (out_c + kPerRegister - 1) / kPerRegister;
  const int n = std::popcount(keep);
  for (int first = 0; first < registers; first += kMostRegisters) {
    const int count = std::min(kMostRegisters, registers - first);
    __m512i w[kMostRegisters];
    for (int g = 0; g < count; ++g) {
      // 32: block g; 64: half g % 2 of block g / 2 (8 lanes of two dwords).
      w[g] = _mm512_loadu_si512(lanes + static_cast<std::size_t>(first + g) * kLanes);
    }
    const __m512i k = L == 32 ? _mm512_set1_epi32(static_cast<int>(keep)) : _mm512_set1_epi64(static_cast<long long>(keep));
    for (int oy = 0; oy < out_h; ++oy) {
      const BitWord* src = map.signs.data.data() + static_cast<std::size_t>(oy) * stride * map.width;
      for (int ox = 0; ox < out_w; ++ox, src += stride) {
        const std::size_t pix = static_cast<std::size_t>(oy) * out_w + ox;
        __m512i x;
        if constexpr (L == 32) x = _mm512_set1_epi32(static_cast<int>(*src));
        else x = _mm512_set1_epi64(static_cast<long long>(*src));
        for (int g = 0; g < count; ++g) {
          const int oc = (first + g) * kPerRegister;
          [[maybe_unused]] const int left = std::min(kPerRegister, out_c - oc);
          std::int32_t* out = dots + pix * out_c + oc;
          const __m512i diff = _mm512_ternarylogic_epi64(x, w[g], k, 0x28);  // (x ^ w) & keep
          // kFull: every register's lanes are output channels (out_c a multiple of 512 / L), so
          // the stores need no mask.
          if constexpr (L == 32) {
            // n - 2 x m in one VPDPWSSD: m < 2^15 is its lane's low word.
            const __m512i d = _mm512_dpwssd_epi32(_mm512_set1_epi32(n), _mm512_popcnt_epi32(diff), _mm512_set1_epi32(0x0000FFFE));
            if constexpr (kFull) _mm512_storeu_si512(out, d);
            else _mm512_mask_storeu_epi32(out, static_cast<__mmask16>((1u << left) - 1), d);
          } else {
            const __m256i m = _mm512_cvtepi64_epi32(_mm512_popcnt_epi64(diff));
            const __m256i d = _mm256_sub_epi32(_mm256_set1_epi32(n), _mm256_add_epi32(m, m));
            if constexpr (kFull) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), d);
            else _mm256_mask_storeu_epi32(out, static_cast<__mmask8>((1u << left) - 1), d);
          }
        }
      }
    }
  }
}

// Popcount and add in lanes of L bits; the 16 counts of a block as int32 lanes (L = 64: the low
// dwords of its two registers).
template <int L>
SPINBAYES_AVX512_BITALG inline __attribute__((always_inline)) __m512i lane_popcount(__m512i v) {
  if constexpr (L == 32) return _mm512_popcnt_epi32(v);
  else return _mm512_popcnt_epi64(v);
}
template <int L>
SPINBAYES_AVX512_BITALG inline __attribute__((always_inline)) __m512i lane_add(__m512i a, __m512i b) {
  if constexpr (L == 32) return _mm512_add_epi32(a, b);
  else return _mm512_add_epi64(a, b);
}
template <int L>
SPINBAYES_AVX512_BITALG inline __attribute__((always_inline)) __m512i block_dwords(const __m512i (&v)[L / 32],
                                                                                __m512i low_dwords) {
  if constexpr (L == 32) return v[0];
  else return _mm512_permutex2var_epi32(v[0], low_dwords, v[1]);
}

// The same for maps of 17 to 64 channels: one pixel per lane of L = 32 or 64 bits (VPOPCNTD,
// VPOPCNTQ), its word broadcast to every lane; a block of 16 output channels takes L / 32
// registers a tap.
template <int L, int K, int S, int B, bool kFull>
SPINBAYES_AVX512_BITALG void wide_blocks(const char* planes, const PlaneLayout& layout, int out_h, int out_w,
                                         const std::uint32_t* lanes, BitWord keep, int kept, const ConvTables& tables,
                                         std::int32_t* bases, int out_c, int block, std::int32_t* dots) {
  constexpr int kTaps = K * K, kRegs = L / 32;
  using Word = std::conditional_t<L == 32, std::uint32_t, std::uint64_t>;
  const __m512i both = L == 32 ? _mm512_set1_epi32(static_cast<int>(keep)) : _mm512_set1_epi64(static_cast<long long>(keep));
  // The low dwords of two registers of 8 quadword counts, in channel order.
  const __m512i low_dwords = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512i w[B][kTaps][kRegs];
  __mmask16 lanes_out[B];
  for (int b = 0; b < B; ++b) {
    const int n = std::min(kLanes, out_c - (block + b) * kLanes);
    lanes_out[b] = n == kLanes ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << n) - 1);
    for (int t = 0; t < kTaps; ++t)
      for (int r = 0; r < kRegs; ++r)
        w[b][t][r] = _mm512_and_si512(
            _mm512_loadu_si512(lanes + ((static_cast<std::size_t>(block + b) * kTaps + t) * kLanes + r * 8) * kRegs), both);
  }
  __m512i weight_count[B][kTaps];  // popcount(w AND keep) per output channel, as int32 lanes
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < kTaps; ++t) {
      __m512i counts[kRegs];
      for (int q = 0; q < kRegs; ++q) counts[q] = lane_popcount<L>(w[b][t][q]);
      weight_count[b][t] = block_dwords<L>(counts, low_dwords);
    }
  write_bases<K, B>(tables, kept, weight_count, bases);
  const std::int32_t* rectangle_of = tables.keep_index.data();
  for (int oy = 0; oy < out_h; ++oy) {
    const char* rows[K][2];
    for (int ky = 0; ky < K; ++ky)
      for (int px = 0; px < 2; ++px)
        rows[ky][px] = planes + (S == 1 ? static_cast<std::size_t>(oy + ky) * layout.pitch
                                        : static_cast<std::size_t>((ky & 1) * 2 + px) * layout.phase_size +
                                              static_cast<std::size_t>(oy + ky / 2) * layout.pitch) *
                                    sizeof(Word);
    const std::size_t first = static_cast<std::size_t>(oy) * out_w;
    for (int ox = 0; ox < out_w; ++ox) {
      __m512i mismatches[B][kRegs];
      for (int b = 0; b < B; ++b)
        for (int r = 0; r < kRegs; ++r) mismatches[b][r] = _mm512_setzero_si512();
      for (int t = 0; t < kTaps; ++t) {
        const int ky = t / K, kx = t % K;
        const char* at = S == 1 ? rows[ky][0] + static_cast<std::size_t>(ox + kx) * sizeof(Word)
                                : rows[ky][kx & 1] + static_cast<std::size_t>(ox + kx / 2) * sizeof(Word);
        Word word;
        std::memcpy(&word, at, sizeof word);
        const __m512i x = L == 32 ? _mm512_set1_epi32(static_cast<int>(word)) : _mm512_set1_epi64(static_cast<long long>(word));
        for (int b = 0; b < B; ++b)
          for (int r = 0; r < kRegs; ++r)
            mismatches[b][r] = lane_add<L>(mismatches[b][r], lane_popcount<L>(_mm512_xor_si512(x, w[b][t][r])));
      }
      const std::size_t pix = first + static_cast<std::size_t>(ox);
      const std::int32_t* base = bases + static_cast<std::size_t>(rectangle_of[pix]) * B * kLanes;
      for (int b = 0; b < B; ++b) {
        const __m512i m = block_dwords<L>(mismatches[b], low_dwords);
        store_dots<kFull>(dots + pix * out_c + (block + b) * kLanes, lanes_out[b],
                          _mm512_sub_epi32(_mm512_loadu_si512(base + b * kLanes), _mm512_add_epi32(m, m)));
      }
    }
  }
}

// The operands of a fused 1x1 layer (pointwise_signs): its map, keep and stride, the weight
// lanes, the flipped channels, the bounds on the mismatches (mismatch_bounds) and the decisions'
// matrix.
struct PointwiseSense {
  const BinaryMap& map;
  BitWord keep;
  int stride;
  const std::uint32_t* lanes;
  int lane_registers;   // 512-bit registers in `lanes`
  const BitWord* flips;  // per output word, its channels whose sign is -1
  const std::int16_t* high;  // per output channel, padded to whole words of 64 (-1 there)
  const std::int16_t* low;
  const BitMatrix* select;
  BitMatrix& out;
};

// Lanes of L bits: the mismatch count of each, and its comparison with a bound (bit j: lane j's
// count <= bound j).
template <int L>
SPINBAYES_AVX512_BITALG inline __attribute__((always_inline)) __m512i lane_mismatches(__m512i x, __m512i w, __m512i keep) {
  if constexpr (L == 16) return _mm512_popcnt_epi16(_mm512_xor_si512(x, w));  // both masked already
  else if constexpr (L == 32) return _mm512_popcnt_epi32(_mm512_ternarylogic_epi64(x, w, keep, 0x28));
  else return _mm512_popcnt_epi64(_mm512_ternarylogic_epi64(x, w, keep, 0x28));  // (x ^ w) & keep
}
template <int L>
SPINBAYES_AVX512_BITALG inline __attribute__((always_inline)) BitWord lanes_at_most(__m512i counts, __m512i bounds) {
  if constexpr (L == 16) return static_cast<std::uint32_t>(_mm512_cmple_epi16_mask(counts, bounds));
  else if constexpr (L == 32) return static_cast<std::uint16_t>(_mm512_cmple_epi32_mask(counts, bounds));
  else return static_cast<std::uint8_t>(_mm512_cmple_epi64_mask(counts, bounds));
}
template <int L>
SPINBAYES_AVX512_BITALG inline __attribute__((always_inline)) __m512i load_bounds(const std::int16_t* at) {
  if constexpr (L == 16) return _mm512_loadu_si512(at);
  else if constexpr (L == 32) return _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(at)));
  else return _mm512_cvtepi16_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at)));
}
// All ones in the lanes whose bit is set.
template <int L>
SPINBAYES_AVX512_BITALG inline __attribute__((always_inline)) __m512i lanes_of_bits(BitWord bits) {
  const __m512i ones = _mm512_set1_epi32(-1);
  if constexpr (L == 16) return _mm512_maskz_mov_epi16(static_cast<__mmask32>(bits), ones);
  else if constexpr (L == 32) return _mm512_maskz_mov_epi32(static_cast<__mmask16>(bits), ones);
  else return _mm512_maskz_mov_epi64(static_cast<__mmask8>(bits), ones);
}

// The even 16-bit words of two registers: the low halves of 32 lanes of w | w << 16.
alignas(64) constexpr std::uint16_t kEvenWords[32] = {0,  2,  4,  6,  8,  10, 12, 14, 16, 18, 20,
                                                      22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42,
                                                      44, 46, 48, 50, 52, 54, 56, 58, 60, 62};

// The mismatch bounds of 16 output channels (lanes past `live`: -1, never): b held in
// [-n - 1, n + 1] first, where the decision is already always or never, so n - b cannot overflow
// and (n - b) >> 1 is the floor.
SPINBAYES_AVX512_BITALG inline __attribute__((always_inline)) void store_mismatch_bounds(const std::int32_t* b, __mmask16 live,
                                                                                       int n, std::int16_t* out) {
  const __m512i kept = _mm512_set1_epi32(n), never = _mm512_set1_epi32(-1);
  const __m512i held = _mm512_min_epi32(_mm512_max_epi32(_mm512_maskz_loadu_epi32(live, b), _mm512_set1_epi32(-n - 1)),
                                        _mm512_set1_epi32(n + 1));
  const __m512i m = _mm512_min_epi32(_mm512_max_epi32(_mm512_srai_epi32(_mm512_sub_epi32(kept, held), 1), never), kept);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(live, never, m)));
}

// A fused layer's per-call operands, 16 output channels a step: the bounds on the mismatches
// (high, then low at `padded`) and each output word's flipped channels.
SPINBAYES_AVX512_BITALG void prepare_sense(const std::int32_t* sign, const std::int32_t* high, const std::int32_t* low,
                                           int rows, int n, int padded, std::int16_t* bounds, BitWord* flips) {
  for (int oc = 0; oc < padded; oc += kLanes) {
    const int lanes = std::clamp(rows - oc, 0, kLanes);
    const auto live = static_cast<__mmask16>(lanes == kLanes ? 0xFFFFu : (1u << lanes) - 1);
    store_mismatch_bounds(high + oc, live, n, bounds + oc);
    if (low != nullptr) store_mismatch_bounds(low + oc, live, n, bounds + padded + oc);
    const BitWord negative =
        _mm512_mask_cmplt_epi32_mask(live, _mm512_maskz_loadu_epi32(live, sign + oc), _mm512_setzero_si512());
    if (oc % kBitsPerWord == 0) flips[oc / kBitsPerWord] = 0;
    flips[oc / kBitsPerWord] |= negative << (oc % kBitsPerWord);
  }
}

// Word `word` of each output row of a fused 1x1 layer: its 64 output channels in G registers of
// R = 512 / L lanes, one output channel a lane and one pixel at a time (the pixel's word
// broadcast). A flipped channel's weight bits are inverted, so its count is of n - m mismatches
// and every decision is "mismatches <= bound" (mismatch_bounds), made on the counts themselves:
// a 16-channel map decides 32 output channels per VPOPCNTW and one comparison.
template <int L, int G, bool kSelect>
SPINBAYES_AVX512_BITALG void pointwise_sense_word(const PointwiseSense& p, int word) {
  constexpr int R = 512 / L;
  constexpr BitWord kRegisterBits = R == 64 ? ~BitWord{0} : (BitWord{1} << R) - 1;
  using Word = std::conditional_t<L == 16, std::uint16_t, std::conditional_t<L == 32, std::uint32_t, std::uint64_t>>;
  const BinaryMap& map = p.map;
  const int out_h = (map.height - 1) / p.stride + 1, out_w = (map.width - 1) / p.stride + 1;
  const int first = word * kBitsPerWord;
  const BitWord flips = p.flips[word];
  const auto keep = static_cast<Word>(p.keep);
  const __m512i k = L == 16   ? _mm512_set1_epi16(static_cast<short>(keep))
                    : L == 32 ? _mm512_set1_epi32(static_cast<int>(keep))
                              : _mm512_set1_epi64(static_cast<long long>(keep));
  // 16-bit lanes: the even words of two blocks' lanes (each w | w << 16), 32 output channels.
  const __m512i even_words = _mm512_load_si512(kEvenWords);
  __m512i w[G], high[G], low[G];
  for (int g = 0; g < G; ++g) {
    const int oc = first + g * R;
    // Registers of the lanes layout: per block of 16 output channels one (L = 16, 32) or two (64).
    const int at = L == 64 ? oc / 8 : oc / 16;
    __m512i lanes = _mm512_loadu_si512(p.lanes + static_cast<std::size_t>(at) * kLanes);
    if constexpr (L == 16) {
      const __m512i next = at + 1 < p.lane_registers ? _mm512_loadu_si512(p.lanes + static_cast<std::size_t>(at + 1) * kLanes)
                                                     : _mm512_setzero_si512();
      lanes = _mm512_permutex2var_epi16(lanes, even_words, next);
    }
    w[g] = _mm512_xor_si512(lanes, lanes_of_bits<L>((flips >> (g * R)) & kRegisterBits));
    if constexpr (L == 16) w[g] = _mm512_and_si512(w[g], k);
    high[g] = load_bounds<L>(p.high + oc);
    low[g] = kSelect ? load_bounds<L>(p.low + oc) : high[g];
  }
  const std::size_t words = static_cast<std::size_t>(p.out.words);
  for (int oy = 0; oy < out_h; ++oy) {
    const BitWord* src = map.signs.data.data() + static_cast<std::size_t>(oy) * p.stride * map.width;
    for (int ox = 0; ox < out_w; ++ox, src += p.stride) {
      const std::size_t pix = static_cast<std::size_t>(oy) * out_w + ox;
      const __m512i x = L == 16   ? _mm512_set1_epi16(static_cast<short>(static_cast<Word>(*src) & keep))
                        : L == 32 ? _mm512_set1_epi32(static_cast<int>(*src))
                                  : _mm512_set1_epi64(static_cast<long long>(*src));
      const BitWord select = kSelect ? p.select->data[pix * static_cast<std::size_t>(p.select->words) + word] : 0;
      BitWord bits = 0;
      for (int g = 0; g < G; ++g) {
        const __m512i m = lane_mismatches<L>(x, w[g], k);
        BitWord fires = lanes_at_most<L>(m, high[g]);
        if constexpr (kSelect) {
          const BitWord s = (select >> (g * R)) & kRegisterBits;
          fires = (s & fires) | (~s & lanes_at_most<L>(m, low[g]) & kRegisterBits);
        }
        bits |= fires << (g * R);
      }
      p.out.data[pix * words + static_cast<std::size_t>(word)] = bits;
    }
  }
}

// Every word of the output rows, each word's G registers (those holding output channels) chosen
// at compile time.
template <int L, bool kSelect, int G = 1>
SPINBAYES_AVX512_BITALG void pointwise_sense_word(const PointwiseSense& p, int word, int registers) {
  if constexpr (G < L / 8) {
    if (registers > G) return pointwise_sense_word<L, kSelect, G + 1>(p, word, registers);
  }
  pointwise_sense_word<L, G, kSelect>(p, word);
}

template <int L>
void pointwise_sense(const PointwiseSense& p) {
  constexpr int R = 512 / L;
  for (int word = 0; word < p.out.words; ++word) {
    const int registers = (std::min(kBitsPerWord, p.out.bits - word * kBitsPerWord) + R - 1) / R;
    p.select != nullptr ? pointwise_sense_word<L, true>(p, word, registers)
                        : pointwise_sense_word<L, false>(p, word, registers);
  }
}

#pragma GCC diagnostic pop
#endif

}  // namespace

bool narrow_conv_runs(int channels, int kernel, int stride) {
#if SPINBAYES_X86
  return cpu_features().avx512_bitalg && cpu_features().avx512_vpopcntdq && cpu_features().avx512_vnni && channels >= 1 && channels <= kBitsPerWord &&
         kernel >= 1 && kernel <= 3 && (stride == 1 || stride == 2);
#else
  (void)channels, (void)kernel, (void)stride;
  return false;
#endif
}

void pack_narrow_lanes(const BitMatrix& weights, int channels, int kernel, PackedOperand& packed) {
  if (channels < 1 || channels > kBitsPerWord || kernel < 1 || weights.bits != kernel * kernel * channels)
    throw Error("pack_narrow_lanes: " + std::to_string(weights.bits) + " weight bits are not a " + std::to_string(kernel) +
                "x" + std::to_string(kernel) + " kernel over " + std::to_string(channels) + " channels");
  lay_out_lanes(weights, channels, kernel, packed.narrow_lanes);
  packed.narrow_channels = channels;
  packed.narrow_kernel = kernel;
}

void narrow_conv(const BinaryMap& map, std::span<const BitWord> channel_keep, int kernel, int stride, int padding,
                 const BitMatrix& weights, const PackedOperand& packed, const ConvTables& tables,
                 NarrowConvScratch& scratch, std::int32_t* dots) {
  const int c = map.channels;
  if (!narrow_conv_runs(c, kernel, stride))
    throw Error("narrow_conv: a " + std::to_string(kernel) + "x" + std::to_string(kernel) + " stride " +
                std::to_string(stride) + " convolution of " + std::to_string(c) + " channels does not run here");
  const ConvGeometry geometry{map.height, map.width, c, kernel, stride, padding};
  if (!map.keep.data.empty() || map.signs.words != 1 || channel_keep.size() > 1 || weights.bits != kernel * kernel * c ||
      (kernel > 1 && !(tables.geometry == geometry)) || padding < 0 || padding >= kernel)
    throw Error("narrow_conv: operands do not match the convolution");
#if SPINBAYES_X86
  const int out_h = (map.height + 2 * padding - kernel) / stride + 1;
  const int out_w = (map.width + 2 * padding - kernel) / stride + 1;
  if (out_h < 1 || out_w < 1 || (kernel > 1 && tables.keep_index.size() != static_cast<std::size_t>(out_h) * out_w))
    throw Error("narrow_conv: the map is smaller than the kernel");
  const BitWord all = c == kBitsPerWord ? ~BitWord{0} : (BitWord{1} << c) - 1;
  const BitWord keep = channel_keep.empty() ? all : channel_keep[0] & all;
  const int kept = kernel * kernel * std::popcount(keep);
  const std::uint32_t* lanes = lanes_of(weights, packed, c, kernel, scratch);
  const int bits = lane_bits(c);
  const int blocks = (weights.rows + kLanes - 1) / kLanes;
  if (kernel == 1) {
    const bool full = weights.rows % (bits == 16 ? kLanes : 512 / bits) == 0;
    if (bits == 16) {
      const auto k16 = static_cast<std::uint16_t>(keep);
      for (int first = 0; first < blocks; first += 2) {
        if (first + 1 < blocks)
          full ? pointwise_pairs<true, 2>(map, k16, stride, lanes, weights.rows, first, dots)
               : pointwise_pairs<false, 2>(map, k16, stride, lanes, weights.rows, first, dots);
        else
          full ? pointwise_pairs<true, 1>(map, k16, stride, lanes, weights.rows, first, dots)
               : pointwise_pairs<false, 1>(map, k16, stride, lanes, weights.rows, first, dots);
      }
    } else if (bits == 32) full ? pointwise_direct<32, true>(map, keep, stride, lanes, weights.rows, dots)
                              : pointwise_direct<32, false>(map, keep, stride, lanes, weights.rows, dots);
    else full ? pointwise_direct<64, true>(map, keep, stride, lanes, weights.rows, dots)
              : pointwise_direct<64, false>(map, keep, stride, lanes, weights.rows, dots);
    return;
  }
  const PlaneLayout layout = bits == 16   ? fill_planes<16>(map, keep, stride, padding, scratch)
                             : bits == 32 ? fill_planes<32>(map, keep, stride, padding, scratch)
                                          : fill_planes<64>(map, keep, stride, padding, scratch);
  const int rectangles = static_cast<int>(tables.y_ranges.size() * tables.x_ranges.size());
  const bool full = weights.rows % kLanes == 0;  // every block has 16 output channels
  scratch.bases.resize(static_cast<std::size_t>(rectangles) * 2 * kLanes);
  std::int32_t* bases = scratch.bases.data();
  if (bits == 16) {
    const auto* planes = reinterpret_cast<const std::uint16_t*>(scratch.planes.data());
    // Two blocks of 16 output channels at a time (their 18 weight registers and the accumulators
    // fit the 32), then one.
    for (int block = 0; block < blocks;) {
      const bool pair = block + 1 < blocks;
#define SPINBAYES_NARROW(k, s, b)                                                                        \
  full ? narrow_blocks<k, s, b, true>(planes, layout, out_h, out_w, lanes, static_cast<std::uint16_t>(keep), kept, \
                                      tables, bases, weights.rows, block, dots)                              \
       : narrow_blocks<k, s, b, false>(planes, layout, out_h, out_w, lanes, static_cast<std::uint16_t>(keep), kept, \
                                       tables, bases, weights.rows, block, dots)
      if (kernel == 2 && stride == 1) pair ? SPINBAYES_NARROW(2, 1, 2) : SPINBAYES_NARROW(2, 1, 1);
      else if (kernel == 2) pair ? SPINBAYES_NARROW(2, 2, 2) : SPINBAYES_NARROW(2, 2, 1);
      else if (stride == 1) pair ? SPINBAYES_NARROW(3, 1, 2) : SPINBAYES_NARROW(3, 1, 1);
      else pair ? SPINBAYES_NARROW(3, 2, 2) : SPINBAYES_NARROW(3, 2, 1);
#undef SPINBAYES_NARROW
      block += pair ? 2 : 1;
    }
    return;
  }
  // 32-bit lanes: two blocks at a time, as above; 64-bit lanes: one (two registers a tap).
  const char* planes = reinterpret_cast<const char*>(scratch.planes.data());
  for (int block = 0; block < blocks;) {
    const bool pair = bits == 32 && block + 1 < blocks;
#define SPINBAYES_WIDE(l, k, s, b)                                                                                  \
  full ? wide_blocks<l, k, s, b, true>(planes, layout, out_h, out_w, lanes, keep, kept, tables, bases, weights.rows, \
                                       block, dots)                                                                      \
       : wide_blocks<l, k, s, b, false>(planes, layout, out_h, out_w, lanes, keep, kept, tables, bases,             \
                                        weights.rows, block, dots)
#define SPINBAYES_WIDE_K(l, b)                                                             \
  if (kernel == 2) stride == 1 ? SPINBAYES_WIDE(l, 2, 1, b) : SPINBAYES_WIDE(l, 2, 2, b); \
  else stride == 1 ? SPINBAYES_WIDE(l, 3, 1, b) : SPINBAYES_WIDE(l, 3, 2, b);
    if (bits == 64) {
      SPINBAYES_WIDE_K(64, 1)
    } else if (pair) {
      SPINBAYES_WIDE_K(32, 2)
    } else {
      SPINBAYES_WIDE_K(32, 1)
    }
#undef SPINBAYES_WIDE_K
#undef SPINBAYES_WIDE
    block += pair ? 2 : 1;
  }
#else
  (void)dots;
#endif
}

bool pointwise_signs_run(int channels, int kernel, int stride, int padding) {
  return kernel == 1 && padding == 0 && narrow_conv_runs(channels, kernel, stride);
}

namespace {

// The operands of pointwise_signs (and its reference) against each other; returns the output
// map's pixels.
int check_pointwise(const BinaryMap& map, std::span<const BitWord> channel_keep, int stride, const BitMatrix& weights,
                    const std::int32_t* sign, const std::int32_t* high, const std::int32_t* low,
                    const BitMatrix* select, const BitMatrix& out) {
  const int c = map.channels;
  if (c < 1 || c > kBitsPerWord || stride < 1 || map.height < 1 || map.width < 1 || !map.keep.data.empty() ||
      map.signs.words != 1 || map.signs.rows != map.height * map.width || channel_keep.size() > 1 ||
      weights.bits != c)
    throw Error("pointwise_signs: operands do not match a 1x1 convolution of a map of at most 64 channels");
  const int pixels = ((map.height - 1) / stride + 1) * ((map.width - 1) / stride + 1);
  if (out.rows != pixels || out.bits != weights.rows || sign == nullptr || high == nullptr ||
      (select != nullptr && (low == nullptr || select->rows < pixels || select->bits != weights.rows)))
    throw Error("pointwise_signs: " + std::to_string(pixels) + " pixels of " + std::to_string(weights.rows) +
                " decisions into " + std::to_string(out.rows) + " x " + std::to_string(out.bits) + " bits" +
                (select != nullptr ? ", selected by " + std::to_string(select->rows) + " x " +
                                         std::to_string(select->bits) + " bits"
                                   : std::string()));
  return pixels;
}

}  // namespace

void pointwise_signs_reference(const BinaryMap& map, std::span<const BitWord> channel_keep, int stride,
                               const BitMatrix& weights, const std::int32_t* sign, const std::int32_t* high,
                               const std::int32_t* low, const BitMatrix* select, BitMatrix& out) {
  const int pixels = check_pointwise(map, channel_keep, stride, weights, sign, high, low, select, out);
  std::vector<std::int32_t> dots(static_cast<std::size_t>(pixels) * weights.rows);
  channel_masked_conv_reference(map, channel_keep, 1, stride, 0, weights, dots.data());
  threshold_rows_reference(dots.data(), pixels, weights.rows, sign, high, low, select, out);
}

void pointwise_signs(const BinaryMap& map, std::span<const BitWord> channel_keep, int stride, const BitMatrix& weights,
                     const PackedOperand& packed, const std::int32_t* sign, const std::int32_t* high,
                     const std::int32_t* low, const BitMatrix* select, NarrowConvScratch& scratch, BitMatrix& out) {
  const int c = map.channels;
  if (!pointwise_signs_run(c, 1, stride, 0))
    throw Error("pointwise_signs: a stride " + std::to_string(stride) + " 1x1 convolution of " + std::to_string(c) +
                " channels does not run here");
  check_pointwise(map, channel_keep, stride, weights, sign, high, low, select, out);
#if SPINBAYES_X86
  const BitWord all = c == kBitsPerWord ? ~BitWord{0} : (BitWord{1} << c) - 1;
  const BitWord keep = channel_keep.empty() ? all : channel_keep[0] & all;
  const int bits = lane_bits(c);
  // The bounds on each output channel's mismatches m with n inputs kept: sign x dot = n - 2m >= b
  // iff m <= floor((n - b) / 2), held in [-1 (never), n (always)].
  const int padded = out.words * kBitsPerWord;
  std::vector<std::int16_t>& bounds = scratch.mismatch_bounds;
  bounds.resize(2 * static_cast<std::size_t>(padded));
  scratch.flips.resize(static_cast<std::size_t>(out.words));
  prepare_sense(sign, high, select != nullptr ? low : nullptr, weights.rows, std::popcount(keep), padded, bounds.data(),
                scratch.flips.data());
  const int blocks = (weights.rows + kLanes - 1) / kLanes;
  const PointwiseSense p{.map = map,
                         .keep = keep,
                         .stride = stride,
                         .lanes = lanes_of(weights, packed, c, 1, scratch),
                         .lane_registers = bits == 64 ? 2 * blocks : blocks,
                         .flips = scratch.flips.data(),
                         .high = bounds.data(),
                         .low = bounds.data() + padded,
                         .select = select,
                         .out = out};
  if (bits == 16) pointwise_sense<16>(p);
  else if (bits == 32) pointwise_sense<32>(p);
  else pointwise_sense<64>(p);
#else
  (void)packed, (void)scratch;
#endif
}

}  // namespace spinbayes
