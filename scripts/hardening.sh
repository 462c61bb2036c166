#!/usr/bin/env bash
# Sanitizers and fuzzing. Builds the LibTorch-free library, its unit tests and the libFuzzer
# targets (fuzz/) with clang, AddressSanitizer and UndefinedBehaviorSanitizer into
# build-hardening/, runs the unit tests, then each fuzzer for FUZZ_SECONDS on its seeds in
# fuzz/corpus/<name>/, as many at a time as there are cores. Fails on any test failure,
# sanitizer report or fuzzer finding, and prints the path of each finding's reproducer.
# Run scripts/setup.sh first (it installs clang and its runtimes).
# Environment: HARDENING_BUILD_DIR (default build-hardening), FUZZ_SECONDS (default 30).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${HARDENING_BUILD_DIR:-$root/build-hardening}
seconds=${FUZZ_SECONDS:-30}
jobs=$(nproc)
start=$SECONDS

command -v clang++ >/dev/null 2>&1 || { echo "hardening: clang++ not found (run scripts/setup.sh)" >&2; exit 1; }

# As in setup.sh: cache keys relative to the checkout; the debug build's working directory too.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
echo "hardening: building with clang, ASan + UBSan, libFuzzer in $build"
CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPINBAYES_TORCH=OFF \
  -DSPINBAYES_SANITIZE=ON -DSPINBAYES_FUZZ=ON -DSPINBAYES_BENCHMARKS=OFF -DSPINBAYES_MPI=OFF >/dev/null
cmake --build "$build" -j "$jobs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export OPENBLAS_NUM_THREADS=1
# LeakSanitizer needs ptrace, which some containers forbid: then leak checks are off, the rest stays.
detect_leaks=1
if ! probe=$("$build/spinbayes_tests" --gtest_filter=-* 2>&1) && grep -q "LeakSanitizer" <<<"$probe"; then
  echo "hardening: LeakSanitizer cannot run here; leak checks off"
  export ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0
  detect_leaks=0
fi

echo "hardening: sanitized unit tests"
ctest --test-dir "$build" --output-on-failure -j "$jobs"

fuzzers=("$build"/fuzz/*_fuzzer)
[ -x "${fuzzers[0]}" ] || { echo "hardening: no fuzz targets in $build/fuzz" >&2; exit 1; }
echo "hardening: ${#fuzzers[@]} fuzz targets, ${seconds} s each, $jobs at a time"

# Runs one fuzzer; its exit status goes to fuzz-findings/<name>.status, its output to <name>.log.
run_fuzzer() {
  local binary=$1 name findings work seeds status=0
  name=$(basename "$binary" _fuzzer)
  seeds=$root/fuzz/corpus/$name
  work=$build/fuzz-work/$name  # corpus grown by this and earlier runs (seeds stay untouched)
  findings=$build/fuzz-findings/$name
  mkdir -p "$work" "$findings"
  if [ ! -d "$seeds" ]; then
    echo "hardening: $name has no seed corpus in $seeds" >"$findings.log"
    status=1
  else
    "$binary" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -detect_leaks="$detect_leaks" -print_final_stats=1 \
      -artifact_prefix="$findings/" "$work" "$seeds" >"$findings.log" 2>&1 || status=$?
  fi
  echo "$status" >"$findings.status"
}

rm -rf "$build/fuzz-findings"
for binary in "${fuzzers[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  run_fuzzer "$binary" &
done
wait

failed=0
for binary in "${fuzzers[@]}"; do
  name=$(basename "$binary" _fuzzer)
  findings=$build/fuzz-findings/$name
  status=$(cat "$findings.status" 2>/dev/null || echo "no status")
  runs=$(grep -o '^stat::number_of_executed_units: *[0-9]*' "$findings.log" | grep -o '[0-9]*$' || true)
  if [ "$status" != 0 ] || [ -n "$(ls -A "$findings" 2>/dev/null)" ]; then
    failed=1
    echo "hardening: FUZZ FINDING in $name (exit $status); log: $findings.log"
    tail -n 40 "$findings.log" | sed 's/^/    /'
    for reproducer in "$findings"/*; do
      [ -e "$reproducer" ] && echo "hardening: reproducer: $reproducer (rerun: $binary $reproducer)"
    done
  else
    echo "hardening: $name: ${runs:-?} runs, no finding"
  fi
done

echo "hardening: done in $((SECONDS - start)) s"
exit "$failed"
