#!/usr/bin/env bash
# Issue 7 measurements beyond the PyTorch comparison: per-layer profile, machine limits, kernel
# rates, 1- vs 2-thread training steps and peak memory. tools/perf_limits.sh [build dir=build-perf] [parts]
# parts (default all): profile limits kernels threads memory
# Before each part it waits until the 1-minute load average is below MAX_LOAD (default 1.5): on a
# shared 2-core machine anything else running makes the numbers meaningless. Raw output goes to
# <build>/perf/<part>*.{txt,json}; the load at the start of each part is logged in <build>/perf/load.log.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-perf}
parts=${2:-"profile limits kernels threads memory"}
max_load=${MAX_LOAD:-1.5}
out=$B/perf
mkdir -p "$out"
for t in profile_model bench_limits bench_grn bench_dwconv bench_model; do
    [[ -x $B/benchmarks/$t ]] || { echo "build $t first: cmake --build $B --target $t" >&2; exit 1; }
done

wait_quiet() {
    while :; do
        l=$(cut -d' ' -f1 /proc/loadavg)
        awk -v l="$l" -v m="$max_load" 'BEGIN{exit !(l < m)}' && break
        echo "$(date -u +%T) load $l >= $max_load, waiting" >&2
        sleep 60
    done
    echo "$(date -u '+%F %T') $1 load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.log"
}

for p in $parts; do
    case $p in
    profile)
        for th in 2 1; do
            wait_quiet "profile t$th"
            "$B/benchmarks/profile_model" --threads $th --steps 7 --workload atto_224_b16 --workload fmnist_32_b128 \
                --workload tiny_224_b16 | tee "$out/profile_t$th.txt"
        done ;;
    limits)
        # LIMITS_FILTER=<regex> reruns some rows into limits_rerun<N>.json; tools/perf_report.py lets later files win.
        wait_quiet "limits ${LIMITS_FILTER:-}"
        f=limits
        if [[ -n ${LIMITS_FILTER:-} ]]; then n=1; while [[ -e $out/limits_rerun$n.json ]]; do n=$((n + 1)); done; f=limits_rerun$n; fi
        "$B/benchmarks/bench_limits" --benchmark_filter="${LIMITS_FILTER:-.}" --benchmark_repetitions=3 --benchmark_min_time=0.2 \
            --benchmark_report_aggregates_only=true --benchmark_out="$out/$f.json" --benchmark_out_format=json | tee "$out/$f.txt" ;;
    kernels)
        for k in ${KERNELS:-bench_grn bench_dwconv}; do
            wait_quiet "$k"
            "$B/benchmarks/$k" --benchmark_filter='^bm_(grn_fwd|grn_bwd|dwconv<.*false>)/N:16/' --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
                --benchmark_out="$out/$k.json" --benchmark_out_format=json | tee "$out/$k.txt"
        done ;;
    threads)
        wait_quiet threads
        "$B/benchmarks/bench_model" --benchmark_filter='run_train_step' --benchmark_repetitions=3 \
            --benchmark_report_aggregates_only=true --benchmark_out="$out/threads.json" --benchmark_out_format=json |
            tee "$out/threads.txt" ;;
    memory)
        # Peak RSS of the training step of tiny at 224, batch 16, 2 threads: ours and PyTorch (2 steps each:
        # warm-up + 1; AdamW state exists after the first). /usr/bin/time -v reports ru_maxrss of the process.
        : >"$out/memory.txt"
        for r in 1 2; do
            /usr/bin/time -v "$B/benchmarks/profile_model" --workload tiny_224_b16 --no-profile --steps 1 --warmup 1 --threads 2 2>&1 |
                grep -E "Maximum resident" | sed "s/^/ours round $r: /" | tee -a "$out/memory.txt"
            for fmt in cl cf; do
                /usr/bin/time -v /usr/bin/python3 tools/bench_torch.py --threads 2 --row train/tiny_224/b16 --format $fmt \
                    --min-iters 1 --min-time 0 2>&1 | grep -E "Maximum resident" | sed "s/^/torch $fmt round $r: /" |
                    tee -a "$out/memory.txt"
            done
        done
        /usr/bin/time -v /usr/bin/python3 -c 'import torch' 2>&1 | grep -E "Maximum resident" | sed "s/^/torch import only: /" |
            tee -a "$out/memory.txt" ;;
    *) echo "unknown part $p" >&2; exit 2 ;;
    esac
done
