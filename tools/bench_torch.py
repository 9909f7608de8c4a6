#!/usr/bin/python3
"""PyTorch side of the speed comparison (issue 7): the same rows as benchmarks/bench_model.

Run with Debian's PyTorch 1.13:  /usr/bin/python3 tools/bench_torch.py --threads 2 [--row ROW] [--format cf|cl]
Prints one line per row:  ROW <name> <img/s>   (plus a '#' comment line with the details).

The model is the one in tools/make_golden.py (ConvNeXt V2 written from SPEC.md, official NCHW structure:
channels-first LayerNorm in the stem/downsample layers, permute to NHWC inside each block), float32,
3 input channels, 1000 classes, like bench_model. Inference runs in eval mode under torch.inference_mode();
a training step is zero_grad + forward + cross entropy (label smoothing 0.1, as bench_model's targets) +
backward + AdamW step (lr 1e-4, weight decay 0.05, as bench_model).

Fairness (../shared/docs/PERF_ANCHORS.md): OPENBLAS_CORETYPE=SkylakeX, OMP/OPENBLAS threads = --threads,
OMP_WAIT_POLICY=PASSIVE, glibc malloc kept from unmapping large blocks. If these are not already in the
environment the script re-executes itself with them. Use one fresh process per measurement
(tools/compare_speed.sh does), and the better of --format cf (channels_first) / cl (channels_last).
"""
import argparse, os, sys, time

ROWS = [  # name, kind, variant, side, batch   (name = <kind>/<variant>_<side>/b<batch>)
    ("infer", "atto", 224, 1), ("infer", "atto", 224, 16),
    ("infer", "femto", 224, 1), ("infer", "femto", 224, 16),
    ("infer", "nano", 224, 1), ("infer", "nano", 224, 16),
    ("infer", "tiny", 224, 1), ("infer", "tiny", 224, 16),
    ("train", "atto", 224, 16), ("train", "atto", 224, 64),
    ("train", "tiny", 224, 16),
    ("infer", "atto", 32, 128), ("train", "atto", 32, 128),
    ("infer", "atto", 64, 128), ("train", "atto", 64, 128),
]
VARIANTS = {  # depths, dims (SPEC.md / variants.hpp)
    "atto": ([2, 2, 6, 2], [40, 80, 160, 320]),
    "femto": ([2, 2, 6, 2], [48, 96, 192, 384]),
    "nano": ([2, 2, 8, 2], [80, 160, 320, 640]),
    "tiny": ([3, 3, 9, 3], [96, 192, 384, 768]),
}


def row_name(kind, variant, side, batch):
    return f"{kind}/{variant}_{side}/b{batch}"


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--row", action="append", help="row name (repeatable); default: all rows")
    ap.add_argument("--format", choices=["cf", "cl"], default="cl", help="channels_first or channels_last")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds timed per row (at least --min-iters)")
    ap.add_argument("--min-iters", type=int, default=3)
    ap.add_argument("--list", action="store_true", help="print the row names and exit")
    return ap.parse_args()


def ensure_env(threads):
    want = {"OPENBLAS_CORETYPE": "SkylakeX", "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
            "OMP_WAIT_POLICY": "PASSIVE", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
    if any(os.environ.get(k) != v for k, v in want.items()):
        env = dict(os.environ); env.update(want)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def bench_row(torch, F, ConvNeXtV2, kind, variant, side, batch, fmt, min_time, min_iters):
    depths, dims = VARIANTS[variant]
    torch.manual_seed(0)
    mf = torch.channels_last if fmt == "cl" else torch.contiguous_format
    model = ConvNeXtV2(3, 1000, depths, dims).to(memory_format=mf)
    x = torch.empty(batch, 3, side, side).uniform_(-1, 1).contiguous(memory_format=mf)
    labels = torch.arange(batch) % 1000
    if kind == "infer":
        model.eval()
        def step():
            with torch.inference_mode():
                model(x)
        warmup = 2
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
        def step():
            opt.zero_grad()
            logits, _ = model(x)
            loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
            loss.backward()
            opt.step()
        warmup = 1
    for _ in range(warmup):
        step()
    iters, t0 = 0, time.perf_counter()
    while True:
        step(); iters += 1
        el = time.perf_counter() - t0
        if iters >= min_iters and el >= min_time:
            break
    return batch * iters / el, iters, el


def main():
    a = parse()
    if a.list:
        for r in ROWS:
            print(row_name(*r))
        return
    ensure_env(a.threads)
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_golden import ConvNeXtV2  # sets 2 threads at import; overridden below
    torch.set_num_threads(a.threads)
    rows = ROWS if not a.row else [r for r in ROWS if row_name(*r) in a.row]
    if a.row and len(rows) != len(a.row):
        sys.exit(f"unknown row in {a.row}; see --list")
    for r in rows:
        ips, iters, el = bench_row(torch, F, ConvNeXtV2, *r, a.format, a.min_time, a.min_iters)
        print(f"# torch {torch.__version__} threads={torch.get_num_threads()} format={a.format} iters={iters} time={el:.2f}s")
        print(f"ROW {row_name(*r)} {ips:.4g}", flush=True)


if __name__ == "__main__":
    main()
