#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ with clang, libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer (build-fuzz/), then runs each target for SECONDS, one after the other,
# starting from the committed corpus fuzz/corpus/<target>. New coverage goes to
# build-fuzz/corpus/<target>; a crash, leak, sanitizer report, timeout or an allocation over
# 1 GiB stops that target and leaves the input in build-fuzz/artifacts/<target>/ (inputs slower
# than 10 s are kept there too, as slow-unit-*, without stopping the run).
# Usage: scripts/fuzz.sh SECONDS [TARGET ...]   (targets: safetensors npy idx recipe image checkpoint)
# Needs clang-14 and libclang-rt-14-dev (scripts/install-deps.sh --with-fuzz).
# Add a crash input to fuzz/corpus/<target>/crash_<what> once it is fixed: the normal build runs
# every corpus file as the CTest test fuzz/<target>:corpus.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:?usage: scripts/fuzz.sh SECONDS [TARGET ...]}
shift
targets=("$@")
((${#targets[@]})) || targets=(safetensors npy idx recipe image checkpoint)
build=${FUZZ_BUILD_DIR:-build-fuzz}
cxx=${FUZZ_CXX:-clang++-14}
if ! command -v "$cxx" >/dev/null; then
  echo "fuzz.sh: $cxx not found; run scripts/install-deps.sh --with-fuzz" >&2
  exit 1
fi
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCONVNEXTV2_SANITIZE=address,undefined -DCONVNEXTV2_LIBFUZZER=ON -DCONVNEXTV2_BUILD_FUZZERS=ON \
  -DCONVNEXTV2_BUILD_TESTS=OFF -DCONVNEXTV2_BUILD_EXAMPLES=OFF -DCONVNEXTV2_BUILD_BENCHMARKS=OFF >/dev/null || exit 1
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}" || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=""
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  log="$build/fuzz_$t.log"
  echo "== fuzz_$t for ${secs}s (log: $log)"
  "$build/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=20 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" "$build/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  found=$(ls "$build/artifacts/$t" | grep -cE '^(crash|leak|oom|timeout)-' || true)
  slow=$(ls "$build/artifacts/$t" | grep -c '^slow-unit-' || true)
  line="fuzz_$t: exit $rc, ${runs:-?} executions in ${took:-?} s, coverage ${cov:-?} edges, crash/leak/oom/timeout inputs $found, slow units $slow"
  echo "$line"
  summary+="$line"$'\n'
  if ((rc != 0)); then status=1; grep -m5 -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log"; fi
done
echo
printf '%s' "$summary"
exit $status
