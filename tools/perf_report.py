#!/usr/bin/env python3
"""Markdown tables from the raw output of tools/perf_limits.sh (issue 7).

    python3 tools/perf_report.py [build-perf/perf]

Reads limits.json (bench_limits), bench_grn.json, bench_dwconv.json, threads.json (bench_model
training rows), profile_t2.txt / profile_t1.txt (profile_model) and memory.txt, all medians of the
repetitions, and prints: machine limits, GEMM rates at the pointwise shapes, each kernel's fraction
of its limit, the linear layers of the profiled steps against the isolated GEMM kernels, the
1- vs 2-thread training-step ratios and the peak memory.
"""
import json, os, re, statistics, sys

D = sys.argv[1] if len(sys.argv) > 1 else "build-perf/perf"
DEPTHS = {"atto": [2, 2, 6, 2], "tiny": [3, 3, 9, 3], "fmnist": [2, 2, 4, 2]}
WORKLOAD = {"atto": "atto_224_b16", "tiny": "tiny_224_b16", "fmnist": "fmnist_32_b128"}


def load(name):
    """Median rows of <name>.json and of its reruns <name>_rerun<N>.json (later files win)."""
    files = [os.path.join(D, name + ".json")]
    n = 1
    while os.path.exists(os.path.join(D, f"{name}_rerun{n}.json")):
        files.append(os.path.join(D, f"{name}_rerun{n}.json"))
        n += 1
    out = {}
    for p in files:
        if not os.path.exists(p):
            continue
        for b in json.load(open(p))["benchmarks"]:
            if b.get("aggregate_name", "median") != "median":
                continue
            out[b["run_name"]] = b
    return out


def rate(rows, name, key):
    b = rows.get(name)
    return b[key] if b else float("nan")


lim = load("limits")
print("## Machine limits (bench_limits, medians of 3)\n")
print("| what | 1 thread | 2 threads |\n|---|---:|---:|")
fma = [rate(lim, f"fma_peak/{t}/real_time", "GFLOP/s") for t in (1, 2)]
print(f"| FP32 FMA peak (register-only loop) | {fma[0]:.0f} GFLOP/s | {fma[1]:.0f} GFLOP/s |")
bw = {}
for kind in ("copy", "triad"):
    for n, what in ((33554432, "DRAM, 3×128 MiB"), (262144, "cache, 3×1 MiB")):
        v = [rate(lim, f"stream_{kind}/{n}/{t}/real_time", "GB/s") for t in (1, 2)]
        bw[(kind, n)] = v
        print(f"| STREAM {kind} ({what}) | {v[0]:.1f} GB/s | {v[1]:.1f} GB/s |")
sq = [rate(lim, f"linear/fwd/square2048/{t}/real_time", "GFLOP/s") for t in (1, 2)]
print(f"| linear_fwd (Eigen per tile) at 2048³ | {sq[0]:.0f} GFLOP/s | {sq[1]:.0f} GFLOP/s |")

print("\n## GEMM kernels at the pointwise shapes (GFLOP/s, 1 thread / 2 threads)\n")
print("| model, stage | M | pw1 C→4C fwd | bwd_data | bwd_weight | pw2 4C→C fwd | bwd_data | bwd_weight |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
gemm = {}  # (model, stage, pw, op, threads) -> GFLOP/s
shape = {}
for rn, b in lim.items():
    m = re.match(r"linear/(\w+)/(\w+)_s(\d)_pw(\d)_M(\d+)_K(\d+)_N(\d+)/(\d)/real_time", rn)
    if m:
        op, model, s, pw, M, K, N, t = m.groups()
        gemm[(model, int(s), int(pw), op, int(t))] = b["GFLOP/s"]
        shape[(model, int(s), int(pw))] = (int(M), int(K), int(N))
for model in ("atto", "tiny", "fmnist"):
    for s in range(4):
        if (model, s, 1) not in shape:
            continue
        cells = []
        for pw in (1, 2):
            for op in ("fwd", "bwd_data", "bwd_weight"):
                cells.append(f"{gemm.get((model, s, pw, op, 1), float('nan')):.0f} / {gemm.get((model, s, pw, op, 2), float('nan')):.0f}")
        M, K, N = shape[(model, s, 1)]
        print(f"| {model} s{s} (C={K}) | {M} | " + " | ".join(cells) + " |")


def profile(threads):
    p = os.path.join(D, f"profile_t{threads}.txt")
    if not os.path.exists(p):
        return {}
    res, cur = {}, None
    for line in open(p):
        m = re.match(r"### (\S+):", line)
        if m:
            cur = res.setdefault(m.group(1), {})
            continue
        m = re.match(r"\| ([^|]+) \|\s*([\d.]*)\s*\|\s*([\d.]*)\s*\| ([\d.]+) \| ([\d.]+) \|", line)
        if m and cur is not None:
            cur[m.group(1).strip()] = [float(x) if x else 0.0 for x in m.groups()[1:]]
        m = re.match(r"step \(hooks off\): median ([\d.]+) ms", line)
        if m and cur is not None:
            cur["off"] = float(m.group(1))
    return res


for threads in (2, 1):
    pr = profile(threads)
    wls = [w for w in WORKLOAD.values() if w in pr]
    if not wls:
        continue
    print(f"\n## Where a training step goes (profile_model, {threads} thread(s), medians over the steps)\n")
    print("| part | " + " | ".join(f"{w}: fwd / bwd ms (% of step)" for w in wls) + " |")
    print("|---|" + "---:|" * len(wls))
    for k in pr[wls[0]]:
        if k == "off":
            continue
        cells = []
        for w in wls:
            f, b, t, pc = pr[w][k]
            cells.append(f"{f:.2f} / {b:.2f} ({pc:.1f}%)" if f or b else f"{t:.2f} ({pc:.1f}%)")
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("| step with the hooks off, ms | " + " | ".join(f"{pr[w]['off']:.1f}" for w in wls) + " |")

print("\n## Linear layers in the profiled training step vs the same GEMMs in isolation (2 threads)\n")
print("| workload | linear fwd+bwd in the step | at the isolated kernels' rates | fraction | achieved GFLOP/s | of FMA peak |")
print("|---|---:|---:|---:|---:|---:|")
prof2 = profile(2)
for model, wl in WORKLOAD.items():
    row = prof2.get(wl, {}).get("linear (GEMM)")
    if not row or (model, 0, 1) not in shape:
        continue
    ideal, flop = 0.0, 0.0
    for s in range(4):
        for pw in (1, 2):
            M, K, N = shape[(model, s, pw)]
            f = 2.0 * M * K * N * DEPTHS[model][s]
            for op in ("fwd", "bwd_data", "bwd_weight"):
                ideal += f / (gemm[(model, s, pw, op, 2)] * 1e6)  # ms
                flop += f
    measured = row[0] + row[1]  # includes the (small) head linear
    print(f"| {wl} | {measured:.1f} ms | {ideal:.1f} ms | {ideal / measured:.2f} | {flop / measured * 1e-6:.0f} | "
          f"{flop / measured * 1e-6 / fma[1]:.2f} |")

grn, dw = load("bench_grn"), load("bench_dwconv")
dram2, cache2 = bw[("triad", 33554432)][1], bw[("triad", 262144)][1]
if grn:
    print(f"\n## GRN vs bandwidth (bench_grn, N=16, 2 threads; DRAM triad {dram2:.1f} GB/s, cache triad {cache2:.1f} GB/s)\n")
    print("| shape | fwd ms | fwd GB/s touched | of DRAM triad | bwd ms | bwd GB/s touched | of DRAM triad |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for rn, b in grn.items():
        m = re.match(r"bm_grn_fwd/N:16/HW:(\d+)/D:(\d+)/real_time", rn)
        if not m:
            continue
        hw, d = int(m.group(1)), int(m.group(2))
        elems = 16 * hw * hw * d
        f = b["real_time"]
        bb = grn[rn.replace("fwd", "bwd")]["real_time"]
        gf, gb = 12 * elems / f * 1e-6, 24 * elems / bb * 1e-6
        print(f"| {hw}×{hw}×{d} | {f:.2f} | {gf:.0f} | {gf / dram2:.2f} | {bb:.2f} | {gb:.0f} | {gb / dram2:.2f} |")
if dw:
    print(f"\n## Depthwise 7×7 vs roofline (bench_dwconv, N=16, 2 threads)\n")
    print("Roofline = min(FMA peak, 98 FLOP / 8 bytes per output × DRAM triad) = "
          f"min({fma[1]:.0f}, {98 / 8 * dram2:.0f}) GFLOP/s.\n")
    roof = min(fma[1], 98 / 8 * dram2)
    print("| shape | fwd GFLOP/s | bwd_data | bwd_weight | fraction of roofline fwd / data / weight |")
    print("|---|---:|---:|---:|---:|")
    for rn, b in dw.items():
        m = re.match(r"bm_dwconv<pass::fwd, false>/N:16/HW:(\d+)/C:(\d+)/real_time", rn)
        if not m:
            continue
        hw, c = int(m.group(1)), int(m.group(2))
        flop = 98.0 * 16 * hw * hw * c
        r = [flop / dw[rn.replace("pass::fwd", f"pass::{p}")]["real_time"] * 1e-6 for p in ("fwd", "bwd_data", "bwd_weight")]
        print(f"| {hw}×{hw}×{c} | {r[0]:.0f} | {r[1]:.0f} | {r[2]:.0f} | {r[0] / roof:.2f} / {r[1] / roof:.2f} / {r[2] / roof:.2f} |")

th = load("threads")
if th:
    print("\n## Training step, 1 vs 2 threads (bench_model, medians of 3)\n")
    print("| row | 1 thread img/s | 2 threads img/s | ratio 2T/1T |\n|---|---:|---:|---:|")
    for rn, b in th.items():
        m = re.match(r"run_train_step/(\w+)/1/(\d+)/(.*)", rn)
        if not m:
            continue
        two = th.get(f"run_train_step/{m.group(1)}/2/{m.group(2)}/{m.group(3)}")
        if two:
            print(f"| train/{m.group(1)}/b{m.group(2)} | {b['img/s']:.4g} | {two['img/s']:.4g} | {two['img/s'] / b['img/s']:.2f} |")

mp = os.path.join(D, "memory.txt")
if os.path.exists(mp):
    print("\n## Peak resident memory (/usr/bin/time -v, maximum resident set size)\n")
    vals = {}
    for line in open(mp):
        m = re.match(r"(.*?)(?: round \d)?: \s*Maximum resident set size \(kbytes\): (\d+)", line)
        if m:
            vals.setdefault(m.group(1), []).append(int(m.group(2)) / 1024.0)
    for k, v in vals.items():
        print(f"- {k}: {statistics.median(v):.0f} MiB ({len(v)} runs: {', '.join(f'{x:.0f}' for x in v)})")
