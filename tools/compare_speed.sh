#!/usr/bin/env bash
# Side-by-side speed comparison with PyTorch (issue 7): tools/compare_speed.sh [threads=2] [rounds=3]
#
# For every row of tools/bench_torch.py --list, runs ours (build/benchmarks/bench_model, one row per
# process, Google Benchmark JSON counter img/s) and PyTorch (tools/bench_torch.py under Debian's
# /usr/bin/python3, one row per process) ALTERNATELY, `rounds` times, all with the same environment
# (../shared/docs/PERF_ANCHORS.md: OPENBLAS_CORETYPE=SkylakeX, OMP/OPENBLAS threads, passive OpenMP
# waiting, glibc malloc without mmap/trim). Round 1 measures PyTorch in channels_first (cf) AND
# channels_last (cl); the faster one per row is used for the remaining rounds. Prints a markdown table
# of medians and the ratio ours/PyTorch; raw numbers go to build/compare_speed_t<threads>.log.
# Env: ROWS=<regex> to run a subset of rows, MIN_TIME=<s> timed seconds per row (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-3}
min_time=${MIN_TIME:-2}
PY=/usr/bin/python3
BM=build/benchmarks/bench_model

if [[ ! -x $BM ]]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCONVNEXTV2_BUILD_BENCHMARKS=ON >/dev/null
    cmake --build build --target bench_model -j2
fi
$PY -c 'import torch' 2>/dev/null || { echo "needs Debian PyTorch: scripts/install-deps.sh --with-torch" >&2; exit 1; }

export OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000

log=build/compare_speed_t${threads}.log
: >"$log"
mapfile -t rows < <($PY tools/bench_torch.py --list | grep -E "${ROWS:-.}")

ours() {  # row -> img/s; infer/atto_224/b16 -> ^run_inference/atto_224/<threads>/16/
    local kind=${1%%/*} rest=${1#*/}
    local model=${rest%%/*} batch=${rest##*/b}
    local fn=run_inference; [[ $kind == train ]] && fn=run_train_step
    $BM --benchmark_filter="^${fn}/${model}/${threads}/${batch}/" --benchmark_min_time="$min_time" \
        --benchmark_format=json 2>/dev/null |
        $PY -c 'import json,sys; b=json.load(sys.stdin)["benchmarks"]; assert len(b)==1, b; print("%.4g" % b[0]["img/s"])'
}
torch_run() {  # row format -> img/s
    $PY tools/bench_torch.py --threads "$threads" --row "$1" --format "$2" --min-time "$min_time" | awk '$1=="ROW"{print $3}'
}

declare -A O CF CL BEST
start=$(date +%s)
for ((r = 1; r <= rounds; ++r)); do
    for row in "${rows[@]}"; do
        o=$(ours "$row"); O[$row]+="$o "
        echo "round $r $row ours $o" >>"$log"
        if ((r == 1)); then
            cf=$(torch_run "$row" cf); cl=$(torch_run "$row" cl)
            CF[$row]=$cf; CL[$row]=$cl
            BEST[$row]=$(awk -v a="$cf" -v b="$cl" 'BEGIN{print (b+0 >= a+0) ? "cl" : "cf"}')
            echo "round $r $row torch cf $cf cl $cl -> ${BEST[$row]}" >>"$log"
        else
            t=$(torch_run "$row" "${BEST[$row]}")
            if [[ ${BEST[$row]} == cl ]]; then CL[$row]+=" $t"; else CF[$row]+=" $t"; fi
            echo "round $r $row torch ${BEST[$row]} $t" >>"$log"
        fi
        echo "[$(($(date +%s) - start)) s] round $r/$rounds $row: ours $o, torch ${CF[$row]##* } (cf) ${CL[$row]##* } (cl)" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "threads=$threads, rounds=$rounds, $(date -u +%Y-%m-%d), $(($(date +%s) - start)) s; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "| row | ours img/s (median) | PyTorch img/s (median) | ratio ours/PyTorch |"
echo "|---|---:|---:|---:|"
for row in "${rows[@]}"; do
    om=$(echo "${O[$row]}" | median)
    if [[ ${BEST[$row]} == cl ]]; then tm=$(echo "${CL[$row]}" | median); else tm=$(echo "${CF[$row]}" | median); fi
    awk -v r="$row" -v o="$om" -v t="$tm" -v f="${BEST[$row]}" 'BEGIN{printf "| %s | %.4g | %.4g (%s) | %.2f |\n", r, o, t, f, o/t}'
done | tee -a "$log"
