#pragma once
// Function attributes of the SIMD kernels: each is compiled for its instruction set alone and
// chosen at run time (core/cpu_features.h), so the rest of the binary stays baseline x86-64.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SPINBAYES_X86 1
#include <immintrin.h>
// AVX2 + POPCNT.
#define SPINBAYES_AVX2 __attribute__((target("avx2,popcnt")))
#define SPINBAYES_POPCNT __attribute__((target("popcnt")))
// AVX-512 with the vector popcount instruction (Ice Lake and later).
#define SPINBAYES_AVX512 __attribute__((target("avx512f,avx512vpopcntdq,popcnt")))
#else
#define SPINBAYES_X86 0
#endif
