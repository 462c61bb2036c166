#include "popcount_roof.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <vector>

#include "core/cpu_features.h"
#include "engine/xnor_avx2.h"
#include "engine/xnor_avx512.h"

namespace spinbayes {
namespace {

#if SPINBAYES_X86
using xnor::xnor_block;
using xnor::xnor_block512;
#endif

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

double measure_popcount_roof(double seconds, int threads) {
  if (threads <= 0) threads = omp_get_max_threads();
  struct Kernel {
    RoofPass pass;
    bool transposed;
  };
  // The AVX2 kernel at a few blockings (rows of a x rows of b), and plain POPCNT.
  std::vector<Kernel> kernels = {{roof_scalar<2, 4>, false}};
#if SPINBAYES_X86
  if (cpu_features().avx512_vpopcntdq)
    kernels = {{roof_avx512<4, 4>, true}, {roof_avx512<6, 4>, true}, {roof_avx512<8, 2>, true},
               {roof_avx512<4, 2>, true}, {roof_avx2<2, 2>, true}};
  else if (cpu_features().avx2)
    kernels = {{roof_avx2<2, 2>, true},
               {roof_avx2<4, 2>, true},
               {roof_avx2<4, 1>, true},
               {roof_popcnt<2, 4>, false}};
  else if (cpu_features().popcnt)
    kernels = {{roof_popcnt<2, 4>, false}};
#endif
  const double share = seconds / static_cast<double>(kernels.size());
  double best = 0.0;
  for (const Kernel& k : kernels) best = std::max(best, roof_rate(k.pass, k.transposed, share, threads));
  return best;
}


}  // namespace spinbayes
