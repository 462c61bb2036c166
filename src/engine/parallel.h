#pragma once
// When a kernel forks across threads, and how it shares out its blocks.
#include <omp.h>

namespace spinbayes {

// Below this many word operations (GEMM word pairs, im2col output words) a kernel runs on the
// calling thread: forking would cost more.
constexpr long kParallelWork = 1L << 14;

// Is a kernel of `work` word operations worth forking for? Not when small, and not inside a
// parallel region: the Monte Carlo loop is parallel over images, and a nested region there runs on
// one thread anyway, yet forms a team on every call.
inline bool worth_a_fork(long work) {
  return work >= kParallelWork && !omp_in_parallel() && omp_get_max_threads() > 1;
}

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

}  // namespace spinbayes
