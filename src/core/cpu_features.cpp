#include "core/cpu_features.h"

namespace spinbayes {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    f.popcnt = __builtin_cpu_supports("popcnt");
    f.avx2 = f.popcnt && __builtin_cpu_supports("avx2");
    f.avx512_vpopcntdq = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
    f.avx512dq = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    f.avx512_bitalg = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bitalg");
    f.avx512_vnni = f.avx512dq && f.popcnt && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                    __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("bmi2");
#endif
    return f;
  }();
  return features;
}

}  // namespace spinbayes
