#pragma once
// The binary GEMM: XNOR-popcount dot products of patch rows with weight rows under a keep mask.
// bgemm_reference is the plain loop; bgemm dispatches at run time to the fastest kernel this CPU
// runs (AVX-512 VPOPCNTDQ, AVX2, or the reference), every one giving the same integers.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/bit_matrix.h"

namespace spinbayes {

// The keep operand of a binary GEMM: row m of the mask is rows.row(index[m]), so that patch rows
// with one mask share one stored row (channel_conv.h), or rows.row(m) without an index (a
// BitMatrix converts to this). Blocks of rows that share a keep row load it once for all of them.
struct KeepRows {
  KeepRows(const BitMatrix& rows_, std::span<const std::int32_t> index_ = {}) : rows(rows_), index(index_) {}
  const BitMatrix& rows;
  std::span<const std::int32_t> index;
  const BitWord* row(int m) const { return rows.row(index.empty() ? m : index[static_cast<std::size_t>(m)]); }
};

// b rearranged once for the SIMD kernels (word-major: word w of rows j..j+7 side by side), so that
// a layer's weights are not rearranged on every call.
struct PackedOperand {
  int rows = 0, words = 0, padded_rows = 0;
  std::vector<BitWord> data;  // words x padded_rows, zero rows past `rows`
  // The same weights as the narrow convolution reads them (narrow_conv.h: pack_narrow_lanes), for
  // a convolution of narrow_channels channels and a narrow_kernel x narrow_kernel kernel; empty
  // when not laid out so.
  std::vector<std::uint32_t> narrow_lanes;
  int narrow_channels = 0, narrow_kernel = 0;
};
PackedOperand pack_operand(const BitMatrix& b);

// out[m * n + j] = dot(a.row(m), b.row(j)) under keep.row(m), with kept[m] = popcount(keep.row(m)):
// a binary GEMM, M = a.rows, N = b.rows, all operands with the same `words`.
void bgemm_reference(const BitMatrix& a, const KeepRows& keep, const std::vector<std::int32_t>& kept,
                     const BitMatrix& b, std::int32_t* out);
// The same result, fastest kernel for this CPU, with b given both plainly (for the reference) and
// packed (for the SIMD kernels).
void bgemm(const BitMatrix& a, const KeepRows& keep, const std::vector<std::int32_t>& kept, const BitMatrix& b,
           const PackedOperand& packed_b, std::int32_t* out);
// The same, packing b on the way (for one-off products).
void bgemm(const BitMatrix& a, const KeepRows& keep, const std::vector<std::int32_t>& kept,
           const BitMatrix& b, std::int32_t* out);
// Name of the kernel bgemm() dispatches to ("avx512-vpopcntdq", "avx2" or "portable").
const char* bgemm_kernel_name();
// Every kernel this CPU can run, best first, and bgemm through a named one (for tests and benches).
std::vector<std::string> bgemm_kernels();
void bgemm_using(const std::string& kernel, const BitMatrix& a, const KeepRows& keep,
                 const std::vector<std::int32_t>& kept, const BitMatrix& b, const PackedOperand& packed_b,
                 std::int32_t* out);

}  // namespace spinbayes
