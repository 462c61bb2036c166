#pragma once
// The machine's popcount roof: binary multiply-accumulates per second of the best register-
// blocked XNOR-popcount microkernel (the GEMM's own, without its keep mask) on L1-resident data,
// over about `seconds` on `threads` threads (<= 0: all). What the engine's layers are measured
// against (`spinbayes bench`, bench_kernels).
namespace spinbayes {

double measure_popcount_roof(double seconds, int threads);

}  // namespace spinbayes
