// Bit-packed binary kernels: weight packing, im2col on bit maps, XNOR-popcount GEMM.
#include "engine/bit_matrix.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

#include "core/cpu_features.h"
#include "core/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SPINBAYES_X86 1
#include <immintrin.h>
// Functions compiled for AVX2 + POPCNT only; the rest of the binary stays baseline x86-64.
#define SPINBAYES_AVX2 __attribute__((target("avx2,popcnt")))
#define SPINBAYES_POPCNT __attribute__((target("popcnt")))
// And for AVX-512 with the vector popcount instruction (Ice Lake and later), chosen at run time.
#define SPINBAYES_AVX512 __attribute__((target("avx512f,avx512vpopcntdq,popcnt")))
#else
#define SPINBAYES_X86 0
#endif

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

void check_bgemm_shapes(const BitMatrix& a, const KeepRows& keep, const std::vector<std::int32_t>& kept,
                        const BitMatrix& b) {
  const bool indexed = !keep.index.empty();
  if ((indexed ? keep.index.size() != static_cast<std::size_t>(a.rows) : keep.rows.rows != a.rows) ||
      keep.rows.words != a.words || b.words != a.words || kept.size() != static_cast<std::size_t>(a.rows))
    throw Error("bgemm: operand shapes disagree (a " + std::to_string(a.rows) + "x" + std::to_string(a.words) +
                " words, keep " + std::to_string(keep.rows.rows) + "x" + std::to_string(keep.rows.words) +
                (indexed ? " through " + std::to_string(keep.index.size()) + " indices" : std::string()) + ", kept " +
                std::to_string(kept.size()) + ", b " + std::to_string(b.rows) + "x" + std::to_string(b.words) + ")");
  if (indexed) {
    // The top bits of i and of last - i (unsigned: wraps, never overflows), ORed: a loop that
    // vectorizes on any x86-64, as this check runs on every convolution. The offender is looked
    // up only if there is one.
    const std::int32_t last = keep.rows.rows - 1;
    std::uint32_t outside = 0;
    for (const std::int32_t i : keep.index) {
      const auto u = static_cast<std::uint32_t>(i);
      outside |= (u | (static_cast<std::uint32_t>(last) - u)) >> 31;
    }
    if (outside != 0) {
      const auto bad = std::find_if(keep.index.begin(), keep.index.end(), [&](std::int32_t i) { return i < 0 || i > last; });
      throw Error("bgemm: keep index " + std::to_string(*bad) + " out of range");
    }
  }
}

// Below this many word operations (GEMM word pairs, im2col output words) a kernel runs on the
// calling thread: forking would cost more.
constexpr long kParallelWork = 1L << 14;

// Is a kernel of `work` word operations worth forking for? Not when small, and not inside a
// parallel region: the Monte Carlo loop is parallel over images, and a nested region there runs on
// one thread anyway, yet forms a team on every call (with it, vgg-small's 3x3 layers ran 5-15 %
// slower).
bool worth_a_fork(long work) { return work >= kParallelWork && !omp_in_parallel() && omp_get_max_threads() > 1; }

// Runs body(first, last) over the blocks [0, blocks): split evenly across the threads (as
// schedule(static) would) when worth_a_fork(work), else on the calling thread.
template <typename Body>
void for_block_ranges(int blocks, long work, const Body& body) {
  if (!worth_a_fork(work)) {
    body(0, blocks);
    return;
  }
#pragma omp parallel
  {
    const long t = omp_get_thread_num(), threads = omp_get_num_threads();
    body(static_cast<int>(blocks * t / threads), static_cast<int>(blocks * (t + 1) / threads));
  }
}

// A SIMD GEMM kernel's blocks [first, last) of block_rows output rows each; `gathered` holds
// block_rows keep rows side by side, for blocks whose keep rows come through an index.
using GemmBlocks = void (*)(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                            const PackedOperand& b, std::int32_t* out, int first, int last, BitWord* gathered);

// Every block of the product, across the threads when worth_a_fork, each with its own gathered
// keep rows.
void bgemm_in_blocks(GemmBlocks gemm_blocks, int block_rows, const BitMatrix& a, const KeepRows& keep,
                     const std::vector<std::int32_t>& kept, const PackedOperand& b, std::int32_t* out) {
  const int blocks = (a.rows + block_rows - 1) / block_rows;
  for_block_ranges(blocks, static_cast<long>(a.rows) * b.rows * a.words, [&](int first, int last) {
    std::vector<BitWord> gathered(keep.index.empty() ? 0 : static_cast<std::size_t>(block_rows) * a.words);
    gemm_blocks(a, keep, kept.data(), b, out, first, last, gathered.data());
  });
}

#if SPINBAYES_X86

// Per-byte popcount of a 256-bit vector by nibble lookup (Mula, Kurz, Lemire, "Faster population
// counts using AVX2 instructions", 2018): vpshufb looks up the count of each 4-bit half in a
// 16-entry table, and the two halves are added, giving 0..8 per byte.
SPINBAYES_AVX2 inline __m256i popcount_bytes(__m256i v) {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_and_si256(v, nibble);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
  return _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi));
}

// A byte counter gains at most 8 per word: flush the byte counters into 64-bit lanes (vpsadbw
// against zero) every 31 words, before they pass 255.
constexpr int kFlushWords = 31;

// The AVX2 microkernel. b is transposed (bt: words x npad, column j of word w at w * npad + j, npad
// a multiple of 4, zero columns past n), so that one 256-bit vector holds word w of 4 rows of b:
// XOR with a word of a broadcast to all 4 lanes gives 4 dot products at once, and vpsadbw leaves
// each one's count in its own 64-bit lane. No horizontal sums, no scalar tail, any `words`.
//
// Computes out[r * n + j] = kept[r] - 2 * popcount((a_r XOR b_j) AND k_r) (no AND when !kMasked)
// for R consecutive rows of a and k (`words` apart) and the 4 * V columns from j0 (those below n).
template <int R, int V, bool kMasked>
SPINBAYES_AVX2 void xnor_block(const BitWord* a, const BitWord* k, int words, const BitWord* bt, int npad,
                               const std::int32_t* kept, std::int32_t* out, int n, int j0) {
  __m256i count[R][V];  // 64-bit lanes: the popcount of each (row, column) pair
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) count[r][v] = _mm256_setzero_si256();

  for (int w = 0; w < words;) {
    const int end = std::min(words, w + kFlushWords);
    __m256i bytes[R][V];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) bytes[r][v] = _mm256_setzero_si256();
    for (; w < end; ++w) {
      const BitWord* b_words = bt + static_cast<std::size_t>(w) * npad + j0;
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const std::size_t i = static_cast<std::size_t>(r) * words + w;
        const __m256i av = _mm256_set1_epi64x(static_cast<long long>(a[i]));
        const __m256i kv = kMasked ? _mm256_set1_epi64x(static_cast<long long>(k[i])) : __m256i{};
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) {
          const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b_words + 4 * v));
          __m256i x = _mm256_xor_si256(av, bv);
          if constexpr (kMasked) x = _mm256_and_si256(x, kv);
          bytes[r][v] = _mm256_add_epi8(bytes[r][v], popcount_bytes(x));
        }
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
        count[r][v] = _mm256_add_epi64(count[r][v], _mm256_sad_epu8(bytes[r][v], _mm256_setzero_si256()));
  }

  // kept - 2 * count in 64-bit lanes, then the low halves of the lanes gathered into 4 int32.
  const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const __m256i base = _mm256_set1_epi64x(kept[r]);
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __m256i dot = _mm256_sub_epi64(base, _mm256_add_epi64(count[r][v], count[r][v]));
      const __m128i dot32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(dot, low_halves));
      const int j = j0 + 4 * v;
      std::int32_t* o = out + static_cast<std::size_t>(r) * n + j;
      if (j + 4 <= n) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o), dot32);
      } else if (j < n) {  // the last, partial group of columns (padding columns are dropped)
        alignas(16) std::int32_t lanes[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(lanes), dot32);
        std::copy(lanes, lanes + (n - j), o);
      }
    }
  }
}

// Rows [m, m + R) of the output, columns from j on: V vectors of columns at a time, then the rest
// with narrower blocks.
template <int R, int V>
SPINBAYES_AVX2 void bgemm_columns(const BitWord* a, const BitWord* k, int words, const BitWord* bt, int npad,
                                  const std::int32_t* kept, std::int32_t* out, int n, int j) {
  for (; j + 4 * V <= npad; j += 4 * V) xnor_block<R, V, true>(a, k, words, bt, npad, kept, out, n, j);
  if constexpr (V > 1) bgemm_columns<R, V - 1>(a, k, words, bt, npad, kept, out, n, j);
}

// The R keep rows of the block of rows from m, `words` apart: in place when they come without an
// index, else gathered side by side into `gathered`.
const BitWord* block_keep(const KeepRows& keep, int m, int rows, int words, BitWord* gathered) {
  if (keep.index.empty()) return keep.rows.row(m);
  for (int r = 0; r < rows; ++r) std::copy_n(keep.row(m + r), words, gathered + static_cast<std::size_t>(r) * words);
  return gathered;
}

// Rows [m, m + rows) of the output, rows <= R.
template <int R, int V>
SPINBAYES_AVX2 void bgemm_rows(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                               const BitWord* bt, int npad, int n, std::int32_t* out, int m, int rows,
                               BitWord* gathered) {
  if (rows == R) {
    bgemm_columns<R, V>(a.row(m), block_keep(keep, m, R, a.words, gathered), a.words, bt, npad, kept + m,
                        out + static_cast<std::size_t>(m) * n, n, 0);
  } else if constexpr (R > 1) {
    bgemm_rows<R - 1, V>(a, keep, kept, bt, npad, n, out, m, rows, gathered);
  }
}

// Blocks of 2 rows of a x 8 rows of b: 4 byte counters and 4 lane counters in registers. (2x8,
// 3x8, 4x8, 2x12, 4x4 are within noise of each other on the 3x3 conv shapes.)
constexpr int kBlockRows = 2, kBlockVectors = 2;

// Blocks [first, last) of R rows of the output.
SPINBAYES_AVX2 void bgemm_blocks_avx2(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                                      const PackedOperand& b, std::int32_t* out, int first, int last,
                                      BitWord* gathered) {
  for (int m = first * kBlockRows; m < std::min(a.rows, last * kBlockRows); m += kBlockRows)
    bgemm_rows<kBlockRows, kBlockVectors>(a, keep, kept, b.data.data(), b.padded_rows, b.rows, out, m,
                                          std::min(kBlockRows, a.rows - m), gathered);
}

// Eight decisions per step: sign * dot > bound - 1, the comparison's lanes gathered by movemask.
SPINBAYES_AVX2 void threshold_bits_avx2(const std::int32_t* dots, const std::int32_t* sign,
                                        const std::int32_t* bound, int n, BitWord* out) {
  const __m256i one = _mm256_set1_epi32(1);
  for (int w = 0; w < words_for_bits(n); ++w) {
    BitWord word = 0;
    const int base = w * kBitsPerWord, count = std::min(kBitsPerWord, n - base);
    int j = 0;
    for (; j + 8 <= count; j += 8) {
      const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dots + base + j));
      const __m256i s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sign + base + j));
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bound + base + j));
      const __m256i fires = _mm256_cmpgt_epi32(_mm256_mullo_epi32(d, s), _mm256_sub_epi32(b, one));
      word |= static_cast<BitWord>(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(fires)))) << j;
    }
    for (; j < count; ++j) {
      word |= static_cast<BitWord>(sign[base + j] * dots[base + j] >= bound[base + j]) << j;
    }
    out[w] = word;
  }
}

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as merge sources, which -Wuninitialized
// flags inside the system header once inlined here (GCC bug 105593); the warning is off for the
// AVX-512 kernels only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// The AVX-512 microkernel: the same transposed b (npad a multiple of 8), one 512-bit vector holding
// word w of 8 rows of b, and VPOPCNTQ counting each 64-bit lane directly, so there are no byte
// counters to flush. R rows of a x 8 * V columns from j0. The XOR and the AND compile to one
// VPTERNLOGQ (the mask costs about 5 % against an unmasked product on the vgg-small shapes).
//
// Word w's popcounts of (a XOR b) AND k into R x V counters: the first word sets them, the
// others add to them.
template <int R, int V, bool kMasked, bool kFirst, bool kSharedKeep>
SPINBAYES_AVX512 inline __attribute__((always_inline)) void xnor_step512(__m512i (&count)[R][V], const BitWord* a,
                                                                        const BitWord* k, int words,
                                                                        const BitWord* b_words, int w) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const std::size_t i = static_cast<std::size_t>(r) * words + w;
    const __m512i av = _mm512_set1_epi64(static_cast<long long>(a[i]));
    const __m512i kv = kMasked ? _mm512_set1_epi64(static_cast<long long>(k[kSharedKeep ? w : i])) : __m512i{};
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      const __m512i bv = _mm512_loadu_si512(b_words + 8 * v);
      __m512i x = _mm512_xor_si512(av, bv);
      if constexpr (kMasked) x = _mm512_and_si512(x, kv);
      if constexpr (kFirst) {
        count[r][v] = _mm512_popcnt_epi64(x);
      } else {
        count[r][v] = _mm512_add_epi64(count[r][v], _mm512_popcnt_epi64(x));
      }
    }
  }
}

template <int R, int V, bool kMasked, bool kSharedKeep = false>
SPINBAYES_AVX512 void xnor_block512(const BitWord* a, const BitWord* k, int words, const BitWord* bt, int npad,
                                    const std::int32_t* kept, std::int32_t* out, int n, int j0) {
  __m512i count[R][V];
  xnor_step512<R, V, kMasked, true, kSharedKeep>(count, a, k, words, bt + j0, 0);
  for (int w = 1; w < words; ++w)
    xnor_step512<R, V, kMasked, false, kSharedKeep>(count, a, k, words, bt + static_cast<std::size_t>(w) * npad + j0,
                                                    w);

  // dot = kept - 2 * count. Two counters of 8 lanes (their low halves: the counts are < 2^31)
  // go into one vector of 16 int32, stored with a lane mask where it runs past column n.
  const __m512i low_halves = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i base = _mm512_set1_epi32(kept[r]);
    std::int32_t* row = out + static_cast<std::size_t>(r) * n;
#pragma GCC unroll 8
    for (int v = 0; v < V; v += 2) {
      const int j = j0 + 8 * v;
      if (j >= n) break;  // padding columns only
      const int lanes = std::min(v + 2 <= V ? 16 : 8, n - j);
      const __m512i counts = v + 1 < V ? _mm512_permutex2var_epi32(count[r][v], low_halves, count[r][v + 1])
                                       : _mm512_permutexvar_epi32(low_halves, count[r][v]);
      const __m512i dot = _mm512_sub_epi32(base, _mm512_add_epi32(counts, counts));
      if (lanes == 16) {
        _mm512_storeu_si512(row + j, dot);
      } else {
        _mm512_mask_storeu_epi32(row + j, static_cast<__mmask16>((1u << lanes) - 1), dot);
      }
    }
  }
}

// kSharedKeep: the R rows have one keep row, k, and its words are broadcast once for all of them.
template <int R, int V, bool kSharedKeep>
SPINBAYES_AVX512 void bgemm_columns512(const BitWord* a, const BitWord* k, int words, const BitWord* bt, int npad,
                                       const std::int32_t* kept, std::int32_t* out, int n, int j) {
  for (; j + 8 * V <= npad; j += 8 * V) xnor_block512<R, V, true, kSharedKeep>(a, k, words, bt, npad, kept, out, n, j);
  if constexpr (V > 1) bgemm_columns512<R, V - 1, kSharedKeep>(a, k, words, bt, npad, kept, out, n, j);
}

template <int R, int V>
SPINBAYES_AVX512 void bgemm_rows512(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                                    const BitWord* bt, int npad, int n, std::int32_t* out, int m, int rows,
                                    BitWord* gathered) {
  if (rows == R) {
    const BitWord* arow = a.row(m);
    std::int32_t* orow = out + static_cast<std::size_t>(m) * n;
    bool shared = !keep.index.empty();
    for (int r = 1; r < R && shared; ++r)
      shared = keep.index[static_cast<std::size_t>(m + r)] == keep.index[static_cast<std::size_t>(m)];
    if (shared) {
      bgemm_columns512<R, V, true>(arow, keep.row(m), a.words, bt, npad, kept + m, orow, n, 0);
    } else {
      bgemm_columns512<R, V, false>(arow, block_keep(keep, m, R, a.words, gathered), a.words, bt, npad, kept + m,
                                    orow, n, 0);
    }
  } else if constexpr (R > 1) {
    bgemm_rows512<R - 1, V>(a, keep, kept, bt, npad, n, out, m, rows, gathered);
  }
}

// 5 rows of a x 32 columns: 20 counters in registers. (5x32 and 6x32 beat 4x16, 4x32 and 8x16 on
// the 3x3 convolutions of vgg-small: the short rows of narrow layers make the epilogue count.)
constexpr int kBlockRows512 = 5, kBlockVectors512 = 4;

SPINBAYES_AVX512 void bgemm_blocks_avx512(const BitMatrix& a, const KeepRows& keep, const std::int32_t* kept,
                                          const PackedOperand& b, std::int32_t* out, int first, int last,
                                          BitWord* gathered) {
  for (int m = first * kBlockRows512; m < std::min(a.rows, last * kBlockRows512); m += kBlockRows512)
    bgemm_rows512<kBlockRows512, kBlockVectors512>(a, keep, kept, b.data.data(), b.padded_rows, b.rows, out, m,
                                                   std::min(kBlockRows512, a.rows - m), gathered);
}

#pragma GCC diagnostic pop

bool cpu_has_avx512_popcount() { return cpu_features().avx512_vpopcntdq; }

bool cpu_has_avx2() { return cpu_features().avx2; }

bool cpu_has_popcnt() { return cpu_features().popcnt; }

#endif  // SPINBAYES_X86

// ---- The popcount roof -------------------------------------------------------------------------

// The roof's operands, L1-resident: 24 rows of a and 32 rows of b of 64 words (28 KiB in all).
constexpr int kRoofRowsA = 24, kRoofRowsB = 32, kRoofWords = 64;

// One pass of a microkernel over every (a row, b row) pair: the sum of the popcounts of a XOR b.
// b is row-major, or transposed (words x rows) for the AVX2 kernel.
using RoofPass = long (*)(const BitWord* a, const BitWord* b);

// Scalar kernel: R rows of a x C rows of b per step, one 64-bit popcount per word pair.
template <int R, int C>
long roof_scalar(const BitWord* a, const BitWord* b) {
  long sum = 0;
  for (int i = 0; i < kRoofRowsA; i += R)
    for (int j = 0; j < kRoofRowsB; j += C) {
      long count[R][C] = {};
      for (int w = 0; w < kRoofWords; ++w)
        for (int r = 0; r < R; ++r)
          for (int c = 0; c < C; ++c)
            count[r][c] += std::popcount(a[(i + r) * kRoofWords + w] ^ b[(j + c) * kRoofWords + w]);
      for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) sum += count[r][c];
    }
  return sum;
}

#if SPINBAYES_X86
// The same with the POPCNT instruction.
template <int R, int C>
SPINBAYES_POPCNT long roof_popcnt(const BitWord* a, const BitWord* b) {
  long sum = 0;
  for (int i = 0; i < kRoofRowsA; i += R)
    for (int j = 0; j < kRoofRowsB; j += C) {
      long count[R][C] = {};
      for (int w = 0; w < kRoofWords; ++w)
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
          for (int c = 0; c < C; ++c)
            count[r][c] += static_cast<long>(
                _mm_popcnt_u64(a[(i + r) * kRoofWords + w] ^ b[(j + c) * kRoofWords + w]));
      for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) sum += count[r][c];
    }
  return sum;
}

// The bgemm microkernel without the keep mask; `b` is already transposed (words x kRoofRowsB).
template <int R, int V>
SPINBAYES_AVX2 long roof_avx2(const BitWord* a, const BitWord* bt) {
  static_assert(kRoofRowsA % R == 0 && kRoofRowsB % (4 * V) == 0);
  const std::int32_t kept[R] = {};
  std::int32_t out[R * kRoofRowsB];
  long sum = 0;
  for (int i = 0; i < kRoofRowsA; i += R) {
    for (int j = 0; j < kRoofRowsB; j += 4 * V)
      xnor_block<R, V, false>(a + i * kRoofWords, nullptr, kRoofWords, bt, kRoofRowsB, kept, out,
                              kRoofRowsB, j);
    for (std::int32_t x : out) sum -= x;  // out = -2 * popcount
  }
  return sum / 2;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <int R, int V>
SPINBAYES_AVX512 long roof_avx512(const BitWord* a, const BitWord* bt) {
  static_assert(kRoofRowsA % R == 0 && kRoofRowsB % (8 * V) == 0);
  const std::int32_t kept[R] = {};
  std::int32_t out[R * kRoofRowsB];
  long sum = 0;
  for (int i = 0; i < kRoofRowsA; i += R) {
    for (int j = 0; j < kRoofRowsB; j += 8 * V)
      xnor_block512<R, V, false>(a + i * kRoofWords, nullptr, kRoofWords, bt, kRoofRowsB, kept, out, kRoofRowsB, j);
    for (std::int32_t x : out) sum -= x;  // out = -2 * popcount
  }
  return sum / 2;
}
#pragma GCC diagnostic pop
#endif

volatile long roof_sink = 0;

// Binary MACs per second of `pass` on `threads` threads for about `seconds`: each thread works on
// its own operands, and the rates of the threads add up.
double roof_rate(RoofPass pass, bool transposed, double seconds, int threads) {
  constexpr double kMacsPerPass = double{kRoofRowsA} * kRoofRowsB * kRoofWords * kBitsPerWord;
  double rate = 0.0;
  long total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : rate, total)
  {
    std::vector<BitWord> a(kRoofRowsA * kRoofWords), b(kRoofRowsB * kRoofWords);
    BitWord x = 0x9e3779b97f4a7c15ULL * static_cast<BitWord>(omp_get_thread_num() + 1);
    for (auto* v : {&a, &b})
      for (BitWord& w : *v) w = x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    if (transposed) {
      std::vector<BitWord> bt(b.size());
      for (int j = 0; j < kRoofRowsB; ++j)
        for (int w = 0; w < kRoofWords; ++w) bt[w * kRoofRowsB + j] = b[j * kRoofWords + w];
      b = std::move(bt);
    }
    long sum = 0, passes = 0;
#pragma omp barrier
    const double start = omp_get_wtime();
    double elapsed = 0.0;
    do {
      for (int i = 0; i < 16; ++i, ++passes) {
        a[passes % a.size()] ^= 1;  // new operands every pass: the work can't be hoisted
        sum += pass(a.data(), b.data());
      }
      elapsed = omp_get_wtime() - start;
    } while (elapsed < seconds);
    total += sum;
    rate += static_cast<double>(passes) * kMacsPerPass / elapsed;
  }
  roof_sink = total;
  return rate;
}

}  // namespace

BitMatrix pack_weights(const std::int8_t* signs, int out_channels, int in_channels, int kernel) {
  if (out_channels < 0 || in_channels <= 0 || kernel <= 0)
    throw Error("pack_weights: bad shape " + std::to_string(out_channels) + "x" +
                std::to_string(in_channels) + "x" + std::to_string(kernel) + "x" + std::to_string(kernel));
  BitMatrix w(out_channels, kernel * kernel * in_channels);
  // LibTorch order (o, c, ky, kx) in; patch order (ky, kx, c) out. sign(0) = +1 as in training.
  for (int o = 0; o < out_channels; ++o)
    for (int c = 0; c < in_channels; ++c)
      for (int ky = 0; ky < kernel; ++ky)
        for (int kx = 0; kx < kernel; ++kx)
          if (*signs++ >= 0) w.set(o, (ky * kernel + kx) * in_channels + c, true);
  return w;
}

namespace {

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
  if (cpu_has_popcnt()) return popcount_words_popcnt;
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
  if (pixel_bytes == 4) return bordered_bytes<4>;
  if (pixel_bytes == 8) return bordered_bytes<8>;
  if (pixel_bytes == 16) return bordered_bytes<16>;
  return bordered_bytes<>;
}

// Rows [first, first + out_w) of patches, one output row (oy) of a bordered byte map whose row oy
// * stride starts at `line`: for each ky, the kernel * C / 8 bytes from (oy * stride + ky, ox * stride).
// kKernel, kPixelBytes > 0: fixed at compile time (3x3 convolutions of 32, 64 or 128 channels), so
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
    if (ragged) dst[words - 1] = 0;
    auto* bytes = reinterpret_cast<std::uint8_t*>(dst);
    for (int ky = 0; ky < kernel; ++ky) copy_bytes(bytes + ky * run, line + ky * row_bytes, run);
  }
}

using CopyPatchLine = void (*)(const std::uint8_t*, int, int, int, int, BitMatrix&, int, int);
CopyPatchLine patch_line_copier(int kernel, int pixel_bytes) {
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
  out.bordered_signs.resize(map_bytes * maps.size());
  if (with_keep) out.bordered_keep.resize(map_bytes * maps.size());
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
  if (byte_aligned(maps)) {
    im2col_bytes(maps, kernel, stride, padding, out, false);
  } else {
    im2col_bits_reference(maps, kernel, stride, padding, out);
  }
}

void im2col_bits(const BinaryMap& map, int kernel, int stride, int padding, Patches& out) {
  im2col_bits(std::span<const BinaryMap>(&map, 1), kernel, stride, padding, out);
}

void bgemm_reference(const BitMatrix& a, const KeepRows& keep, const std::vector<std::int32_t>& kept,
                     const BitMatrix& b, std::int32_t* out) {
  check_bgemm_shapes(a, keep, kept, b);
  for (int m = 0; m < a.rows; ++m)
    for (int j = 0; j < b.rows; ++j) {
      const BitWord *x = a.row(m), *k = keep.row(m), *y = b.row(j);
      int differ = 0;
      for (int w = 0; w < a.words; ++w) differ += std::popcount((x[w] ^ y[w]) & k[w]);
      out[static_cast<std::size_t>(m) * b.rows + j] = kept[m] - 2 * differ;
    }
}

PackedOperand pack_operand(const BitMatrix& b) {
  PackedOperand p;
  p.rows = b.rows;
  p.words = b.words;
  p.padded_rows = (b.rows + 7) / 8 * 8;  // whole vectors for the AVX2 (4 rows) and AVX-512 (8) kernels
  p.data.assign(static_cast<std::size_t>(p.words) * p.padded_rows, 0);
  for (int j = 0; j < b.rows; ++j) {
    for (int w = 0; w < b.words; ++w) p.data[static_cast<std::size_t>(w) * p.padded_rows + j] = b.row(j)[w];
  }
  return p;
}

std::vector<std::string> bgemm_kernels() {
  std::vector<std::string> kernels;
#if SPINBAYES_X86
  if (cpu_has_avx512_popcount()) kernels.push_back("avx512-vpopcntdq");
  if (cpu_has_avx2()) kernels.push_back("avx2");
#endif
  kernels.push_back("portable");
  return kernels;
}

void bgemm_using(const std::string& kernel, const BitMatrix& a, const KeepRows& keep,
                 const std::vector<std::int32_t>& kept, const BitMatrix& b, const PackedOperand& packed_b,
                 std::int32_t* out) {
  if (kernel == "portable") {
    bgemm_reference(a, keep, kept, b, out);
    return;
  }
#if SPINBAYES_X86
  check_bgemm_shapes(a, keep, kept, b);
  if (packed_b.rows != b.rows || packed_b.words != b.words) throw Error("bgemm: packed operand does not match b");
  if (kernel == "avx512-vpopcntdq" && cpu_has_avx512_popcount()) {
    bgemm_in_blocks(bgemm_blocks_avx512, kBlockRows512, a, keep, kept, packed_b, out);
    return;
  }
  if (kernel == "avx2" && cpu_has_avx2()) {
    bgemm_in_blocks(bgemm_blocks_avx2, kBlockRows, a, keep, kept, packed_b, out);
    return;
  }
#endif
  throw Error("bgemm: kernel '" + kernel + "' is not available on this CPU");
}

void bgemm(const BitMatrix& a, const KeepRows& keep, const std::vector<std::int32_t>& kept, const BitMatrix& b,
           const PackedOperand& packed_b, std::int32_t* out) {
  static const std::string best = bgemm_kernels().front();
  bgemm_using(best, a, keep, kept, b, packed_b, out);
}

void bgemm(const BitMatrix& a, const KeepRows& keep, const std::vector<std::int32_t>& kept,
           const BitMatrix& b, std::int32_t* out) {
#if SPINBAYES_X86
  if (cpu_has_avx2()) {
    bgemm(a, keep, kept, b, pack_operand(b), out);
    return;
  }
#endif
  bgemm_reference(a, keep, kept, b, out);
}

void threshold_bits_reference(const std::int32_t* dots, const std::int32_t* sign, const std::int32_t* bound, int n,
                              BitWord* out) {
  for (int w = 0; w < words_for_bits(n); ++w) out[w] = 0;
  for (int j = 0; j < n; ++j) {
    if (sign[j] * dots[j] >= bound[j]) out[j / kBitsPerWord] |= BitWord{1} << (j % kBitsPerWord);
  }
}

void threshold_bits(const std::int32_t* dots, const std::int32_t* sign, const std::int32_t* bound, int n,
                    BitWord* out) {
#if SPINBAYES_X86
  if (cpu_has_avx2()) {
    threshold_bits_avx2(dots, sign, bound, n, out);
    return;
  }
#endif
  threshold_bits_reference(dots, sign, bound, n, out);
}

const char* bgemm_kernel_name() {
  static const std::string best = bgemm_kernels().front();
  return best.c_str();
}

double measure_popcount_roof(double seconds, int threads) {
  if (threads <= 0) threads = omp_get_max_threads();
  struct Kernel {
    RoofPass pass;
    bool transposed;
  };
  // The AVX2 kernel at a few blockings (rows of a x rows of b), and plain POPCNT.
  std::vector<Kernel> kernels = {{roof_scalar<2, 4>, false}};
#if SPINBAYES_X86
  if (cpu_has_avx512_popcount())
    kernels = {{roof_avx512<4, 4>, true}, {roof_avx512<6, 4>, true}, {roof_avx512<8, 2>, true},
               {roof_avx512<4, 2>, true}, {roof_avx2<2, 2>, true}};
  else if (cpu_has_avx2())
    kernels = {{roof_avx2<2, 2>, true},
               {roof_avx2<4, 2>, true},
               {roof_avx2<4, 1>, true},
               {roof_popcnt<2, 4>, false}};
  else if (cpu_has_popcnt())
    kernels = {{roof_popcnt<2, 4>, false}};
#endif
  const double share = seconds / static_cast<double>(kernels.size());
  double best = 0.0;
  for (const Kernel& k : kernels) best = std::max(best, roof_rate(k.pass, k.transposed, share, threads));
  return best;
}

}  // namespace spinbayes
