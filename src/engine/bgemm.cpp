// The GEMM's reference, its dispatch to the SIMD kernels, and the driver that shares a product's
// row blocks across threads.
#include "engine/bgemm.h"

#include <algorithm>
#include <bit>

#include "core/cpu_features.h"
#include "core/error.h"
#include "engine/bgemm_blocks.h"
#include "engine/parallel.h"

namespace spinbayes {
namespace {

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

// Every block of the product, across the threads when worth_a_fork, each with its own gathered
// keep rows.
void bgemm_in_blocks(xnor::GemmBlocks gemm_blocks, int block_rows, const BitMatrix& a, const KeepRows& keep,
                     const std::vector<std::int32_t>& kept, const PackedOperand& b, std::int32_t* out,
                     bool gathers = true) {
  const int blocks = (a.rows + block_rows - 1) / block_rows;
  for_block_ranges(blocks, static_cast<long>(a.rows) * b.rows * a.words, [&](int first, int last) {
    std::vector<BitWord> gathered(!gathers || keep.index.empty() ? 0 : static_cast<std::size_t>(block_rows) * a.words);
    gemm_blocks(a, keep, kept.data(), b, out, first, last, gathered.data());
  });
}

}  // namespace

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
  if (cpu_features().avx512_vpopcntdq) kernels.push_back("avx512-vpopcntdq");
  if (cpu_features().avx2) kernels.push_back("avx2");
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
  if (kernel == "avx512-vpopcntdq" && cpu_features().avx512_vpopcntdq) {
    if (const xnor::GemmBlocks resident = xnor::bgemm_resident_avx512(a.bits, a.words, packed_b.padded_rows)) {
      bgemm_in_blocks(resident, xnor::kBlockRowsResident512, a, keep, kept, packed_b, out, false);
      return;
    }
    bgemm_in_blocks(xnor::bgemm_blocks_avx512, xnor::kBlockRowsAvx512, a, keep, kept, packed_b, out);
    return;
  }
  if (kernel == "avx2" && cpu_features().avx2) {
    bgemm_in_blocks(xnor::bgemm_blocks_avx2, xnor::kBlockRowsAvx2, a, keep, kept, packed_b, out);
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
  if (cpu_features().avx2) {
    bgemm(a, keep, kept, b, pack_operand(b), out);
    return;
  }
#endif
  bgemm_reference(a, keep, kept, b, out);
}

const char* bgemm_kernel_name() {
  static const std::string best = bgemm_kernels().front();
  return best.c_str();
}

}  // namespace spinbayes
