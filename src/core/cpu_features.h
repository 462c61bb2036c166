#pragma once
// What the CPU can run, asked once: SIMD kernels are compiled for their instruction sets with
// target attributes and chosen at run time, so one binary runs everywhere.
namespace spinbayes {

struct CpuFeatures {
  bool popcnt = false;
  bool avx2 = false;               // with POPCNT
  bool avx512_vpopcntdq = false;   // AVX-512F with the vector popcount (Ice Lake and later)
  bool avx512dq = false;           // AVX-512F with the 64-bit multiply
  bool avx512_bitalg = false;      // AVX-512F/BW/VL with the 8- and 16-bit vector popcount (BITALG)
  bool avx512_vnni = false;        // AVX-512F/BW/VL with the 8-bit dot product (VPDPBUSD) and BMI2
};

const CpuFeatures& cpu_features();

}  // namespace spinbayes
