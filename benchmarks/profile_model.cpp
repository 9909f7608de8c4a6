// Per-layer-kind profile of whole training steps (issue 7): where the time of a step goes, forward
// and backward, by layer kind (core/profile.hpp hooks), plus the model-level phases (parameter
// gradient zeroing, loss, AdamW). Also prints the achieved rate of each kind (GFLOP/s from the
// analytic FLOP count, GB/s from the bytes its kernel passes touch) and the peak resident memory.
//
//   profile_model [--threads 2] [--steps 5] [--warmup 1] [--workload NAME]... [--no-profile]
//                 [--matmul_precision fp32|bf16]
//
// Workloads: atto_224_b16 (as bench_model's train/atto_224/b16: 3 channels, 1000 classes),
// fmnist_32_b128 (the main job, examples/configs/fashion_mnist.json: depths 2,2,4,2, dims 32..256,
// stem 2, 1 channel, 10 classes, drop path 0.05, 28x28 images on a 32x32 canvas: maps 16, 8, 4, 2),
// fmnist_28_b128 (the same model on the bare 28x28 images: maps 14, 7, 3, 1, the strided convs
// floor as in PyTorch), tiny_224_b16 (as train/tiny_224/b16),
// atto_32_b128 (as train/atto_32/b128), tiny_224_b1_infer and nano_224_b1_infer (forward only
// in eval mode, as infer/<v>_224/b1).
// Default: atto_224_b16 and fmnist_32_b128. Every cell is the median over the timed steps.
// --no-profile leaves the hooks off (step time and peak memory only). --matmul_precision bf16 runs the
// pointwise products in bf16 (kernels/gemm_bf16.hpp; forward and both gradients).
#include <convnextv2/core/allocator.hpp>
#include <convnextv2/core/profile.hpp>
#include <convnextv2/kernels/cross_entropy.hpp>
#include <convnextv2/models/convnextv2.hpp>
#include <convnextv2/optim/adamw.hpp>

#include <tbb/task_arena.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace convnextv2;
namespace prof = convnextv2::profile;

namespace {

struct workload {
    std::string name;
    model_config cfg;
    index_t batch = 0, side = 0;
    bool infer = false;  // forward only, eval mode (the batch-1 inference rows of bench_model)
};

std::vector<workload> all_workloads()
{
    std::vector<workload> w;
    w.push_back({"atto_224_b16", variant_config("atto", 1000), 16, 224});
    model_config fm;
    fm.name = "convnextv2_fmnist";
    fm.depths = {2, 2, 4, 2};
    fm.dims = {32, 64, 128, 256};
    fm.stem_kernel = 2;
    fm.in_chans = 1;
    fm.num_classes = 10;
    fm.drop_path_rate = 0.05;
    w.push_back({"fmnist_32_b128", fm, 128, 32});
    w.push_back({"fmnist_28_b128", fm, 128, 28});
    w.push_back({"tiny_224_b16", variant_config("tiny", 1000), 16, 224});
    w.push_back({"atto_32_b128", variant_config("atto", 1000), 128, 32});  // bench_model's train/atto_32/b128
    w.push_back({"tiny_224_b1_infer", variant_config("tiny", 1000), 1, 224, true});
    w.push_back({"nano_224_b1_infer", variant_config("nano", 1000), 1, 224, true});
    return w;
}

// Work per training step by kind, from the architecture: FLOPs (2 per multiply-add) and elements.
struct work {
    double linear_fwd = 0, pw1_fwd = 0, dw_fwd = 0, patch_fwd = 0, patch_bwd = 0;  // FLOP (pw1: the fused pwconv1 + GELU)
    double grn_elems = 0, gelu_elems = 0, ln_elems = 0;               // elements per pass
};

work count_work(const model_config& c, index_t batch, index_t side)
{
    work w;
    const double N = static_cast<double>(batch);
    index_t s = side / c.stem_kernel;  // strided convs floor (28: 14, 7, 3, 1)
    double prev_sites = 0, prev_C = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        const double C = static_cast<double>(c.dims[i]), sites = N * static_cast<double>(s * s), d = c.depths[i];
        if (i == 0) {
            const double f = 2 * sites * C * static_cast<double>(c.in_chans * c.stem_kernel * c.stem_kernel);
            w.patch_fwd += f;
            w.patch_bwd += f;  // weight gradient only: the input needs none
            w.ln_elems += sites * C;
        } else {
            const double f = 2 * sites * C * 4 * prev_C;
            w.patch_fwd += f;
            w.patch_bwd += 2 * f;
            w.ln_elems += prev_sites * prev_C;
        }
        w.pw1_fwd += d * 2 * sites * C * 4 * C;
        w.linear_fwd += d * 2 * sites * 4 * C * C;
        w.dw_fwd += d * 2 * 49 * sites * C;
        w.grn_elems += d * sites * 4 * C;
        w.gelu_elems += d * sites * 4 * C;
        w.ln_elems += d * sites * C;
        prev_sites = sites;
        prev_C = C;
        s /= 2;
    }
    const double C3 = static_cast<double>(c.dims[3]);
    w.linear_fwd += 2 * N * C3 * static_cast<double>(c.num_classes);
    w.ln_elems += N * C3;
    return w;
}

double median(std::vector<double> v)
{
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double now_ms()
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

long peak_rss_kib()
{
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

struct options {
    int threads = 2, steps = 5, warmup = 1;
    bool profile = true;
    std::vector<std::string> names;
};

void run(const workload& wl, const options& o)
{
    tbb::task_arena arena(o.threads);
    convnextv2_model<float> model(wl.cfg, 0);
    const index_t N = wl.batch, K = wl.cfg.num_classes;
    tensor<float> x({N, wl.side, wl.side, wl.cfg.in_chans}), logits, targets({N, K}), dlogits({N, K});
    counter_rng rng(1, 2);
    for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
    std::vector<int> labels(static_cast<std::size_t>(N));
    for (index_t i = 0; i < N; ++i) labels[static_cast<std::size_t>(i)] = static_cast<int>(i % K);
    kernels::smooth_targets(labels.data(), N, K, 0.1, targets.data());
    model.set_training(!wl.infer);
    adamw<float> opt(model.params(), adamw_options{});

    enum phase { p_zero, p_fwd, p_loss, p_bwd, p_opt, p_step, num_phases };
    std::vector<double> ph[num_phases];
    std::vector<double> kind_ms[prof::num_kinds][2];
    std::uint64_t step = 0;
    auto one_step = [&](bool record) {
        prof::reset();
        double t[6];
        t[0] = now_ms();
        if (!wl.infer) model.zero_grad();
        t[1] = now_ms();
        model.set_step(step++);
        model.forward(x, logits);
        t[2] = t[3] = t[4] = t[5] = now_ms();
        if (!wl.infer) {
            kernels::softmax_cross_entropy(logits.data(), N, K, targets.data(), dlogits.data());
            t[3] = now_ms();
            model.backward(dlogits);
            t[4] = now_ms();
            opt.step(1e-4);
            t[5] = now_ms();
        }
        if (!record) return;
        for (int p = 0; p < 5; ++p) ph[p].push_back(t[p + 1] - t[p]);
        ph[p_step].push_back(t[5] - t[0]);
        for (int k = 0; k < prof::num_kinds; ++k)
            for (int p = 0; p < 2; ++p)
                kind_ms[k][p].push_back(1e-6 * static_cast<double>(prof::total_ns(static_cast<prof::kind>(k), static_cast<prof::pass>(p))));
    };

    // Hooks off first: the plain step time (and the cost of the hooks, by comparison).
    prof::enable(false);
    std::vector<double> off_ms;
    arena.execute([&] {
        for (int i = 0; i < o.warmup; ++i) one_step(false);
        for (int i = 0; i < o.steps; ++i) {
            const double t0 = now_ms();
            one_step(false);
            off_ms.push_back(now_ms() - t0);
        }
    });
    const double off = median(off_ms);
    std::printf("\n### %s: %s, batch %lld, %lldx%lld, %lld channels, %lld classes, drop path %.2f, %d thread(s)\n", wl.name.c_str(),
                wl.cfg.name.c_str(), static_cast<long long>(N), static_cast<long long>(wl.side), static_cast<long long>(wl.side),
                static_cast<long long>(wl.cfg.in_chans), static_cast<long long>(K), wl.cfg.drop_path_rate, o.threads);
    std::printf("step (hooks off): median %.2f ms over %d steps = %.1f img/s; peak RSS %.1f MiB\n", off, o.steps,
                1000.0 * static_cast<double>(N) / off, static_cast<double>(peak_rss_kib()) / 1024.0);
    if (!o.profile) return;

    prof::enable(true);
    arena.execute([&] {
        for (int i = 0; i < o.steps; ++i) one_step(true);
    });
    prof::enable(false);
    const double step_ms = median(ph[p_step]);
    std::printf("step (hooks on):  median %.2f ms over %d steps (hook cost %+.1f%%)\n\n", step_ms, o.steps,
                100.0 * (step_ms - off) / off);

    std::printf("| part | forward ms | backward ms | total ms | %% of step |\n|---|---:|---:|---:|---:|\n");
    std::vector<double> fwd_other(ph[p_fwd]), bwd_other(ph[p_bwd]);
    double kf[prof::num_kinds], kb[prof::num_kinds];
    for (int k = 0; k < prof::num_kinds; ++k) {
        for (std::size_t i = 0; i < fwd_other.size(); ++i) {
            fwd_other[i] -= kind_ms[k][0][i];
            bwd_other[i] -= kind_ms[k][1][i];
        }
        kf[k] = median(kind_ms[k][0]);
        kb[k] = median(kind_ms[k][1]);
        if (kf[k] + kb[k] == 0) continue;
        std::printf("| %s | %.2f | %.2f | %.2f | %.1f |\n", prof::name(static_cast<prof::kind>(k)), kf[k], kb[k], kf[k] + kb[k],
                    100.0 * (kf[k] + kb[k]) / step_ms);
    }
    const double of = median(fwd_other), ob = median(bwd_other);
    std::printf("| untimed rest of forward/backward | %.2f | %.2f | %.2f | %.1f |\n", of, ob, of + ob, 100.0 * (of + ob) / step_ms);
    const double z = median(ph[p_zero]), l = median(ph[p_loss]), a = median(ph[p_opt]);
    std::printf("| parameter-gradient zeroing (zero_grad) | | | %.2f | %.1f |\n", z, 100.0 * z / step_ms);
    std::printf("| loss (softmax cross entropy) | | | %.2f | %.1f |\n", l, 100.0 * l / step_ms);
    std::printf("| optimizer (AdamW) | | | %.2f | %.1f |\n", a, 100.0 * a / step_ms);
    const double f = median(ph[p_fwd]), b = median(ph[p_bwd]);
    std::printf("| **step** | %.2f | %.2f | %.2f | 100 |\n", f, b, step_ms);

    // Achieved rates: FLOP/s for the matrix and conv work, bytes touched by the kernels' passes for
    // the memory-bound ones (GRN fwd: sum of squares + apply = 3 floats/elem, bwd: sums + data =
    // 6; LayerNorm/GELU fwd read+write = 2, bwd read dy, x, dx + write dx = 4).
    const work w = count_work(wl.cfg, N, wl.side);
    auto gf = [](double flop, double ms) { return ms > 0 ? flop / ms * 1e-6 : 0.0; };
    auto idx = [](prof::kind k) { return static_cast<int>(k); };
    std::printf("\n| kind | work fwd / bwd | rate fwd | rate bwd |\n|---|---|---:|---:|\n");
    // pwconv2 runs in the fused GRN + pwconv2 layer when that is on (its time then includes GRN's)
    const bool pw2_fused = kf[idx(prof::kind::grn_linear)] > 0;
    const prof::kind pw2_kind = pw2_fused ? prof::kind::grn_linear : prof::kind::linear;
    std::printf("| %s | %.2f / %.2f GFLOP | %.1f GFLOP/s | %.1f GFLOP/s |\n",
                pw2_fused ? "GRN + pwconv2 (fused; GEMM FLOP only)" : "linear (GEMM)", w.linear_fwd * 1e-9, 2 * w.linear_fwd * 1e-9,
                gf(w.linear_fwd, kf[idx(pw2_kind)]), gf(2 * w.linear_fwd, kb[idx(pw2_kind)]));
    std::printf("| pwconv1 + GELU (fused; GEMM FLOP only) | %.2f / %.2f GFLOP | %.1f GFLOP/s | %.1f GFLOP/s |\n", w.pw1_fwd * 1e-9,
                2 * w.pw1_fwd * 1e-9, gf(w.pw1_fwd, kf[idx(prof::kind::linear_gelu)]), gf(2 * w.pw1_fwd, kb[idx(prof::kind::linear_gelu)]));
    std::printf("| depthwise conv 7x7 | %.2f / %.2f GFLOP | %.1f GFLOP/s | %.1f GFLOP/s |\n", w.dw_fwd * 1e-9, 2 * w.dw_fwd * 1e-9,
                gf(w.dw_fwd, kf[idx(prof::kind::dwconv)]), gf(2 * w.dw_fwd, kb[idx(prof::kind::dwconv)]));
    std::printf("| patch conv | %.2f / %.2f GFLOP | %.1f GFLOP/s | %.1f GFLOP/s |\n", w.patch_fwd * 1e-9, w.patch_bwd * 1e-9,
                gf(w.patch_fwd, kf[idx(prof::kind::patch_conv)]), gf(w.patch_bwd, kb[idx(prof::kind::patch_conv)]));
    auto gb = [&](const char* n, double elems, double fwd_floats, double bwd_floats, prof::kind k) {
        std::printf("| %s | %.0f / %.0f MB touched | %.1f GB/s | %.1f GB/s |\n", n, 4e-6 * fwd_floats * elems, 4e-6 * bwd_floats * elems,
                    gf(4 * fwd_floats * elems, kf[idx(k)]), gf(4 * bwd_floats * elems, kb[idx(k)]));
    };
    if (!pw2_fused) gb("GRN", w.grn_elems, 3, 6, prof::kind::grn);
    gb("LayerNorm", w.ln_elems, 2, 4, prof::kind::layer_norm);
    if (kf[idx(prof::kind::gelu)] > 0) gb("GELU", w.gelu_elems, 2, 4, prof::kind::gelu);  // only when not fused
    std::printf("\ncalls per step:");
    for (int k = 0; k < prof::num_kinds; ++k)
        std::printf(" %s %lld/%lld;", prof::name(static_cast<prof::kind>(k)),
                    static_cast<long long>(prof::num_calls(static_cast<prof::kind>(k), prof::pass::fwd)),
                    static_cast<long long>(prof::num_calls(static_cast<prof::kind>(k), prof::pass::bwd)));
    std::printf("\n");
}

[[noreturn]] void usage(const char* argv0)
{
    std::fprintf(stderr, "usage: %s [--threads N] [--steps S] [--warmup W] [--workload NAME]... [--no-profile] [--matmul_precision fp32|bf16]\nworkloads:", argv0);
    for (auto& w : all_workloads()) std::fprintf(stderr, " %s", w.name.c_str());
    std::fprintf(stderr, "\n");
    std::exit(2);
}

} // namespace

int main(int argc, char** argv)
{
    keep_freed_memory();
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage(argv[0]);
            return argv[++i];
        };
        if (a == "--threads") o.threads = std::atoi(val().c_str());
        else if (a == "--steps") o.steps = std::atoi(val().c_str());
        else if (a == "--warmup") o.warmup = std::atoi(val().c_str());
        else if (a == "--workload") o.names.push_back(val());
        else if (a == "--no-profile") o.profile = false;
        else if (a == "--matmul_precision") {
            const std::string p = val();
            if (p != "fp32" && p != "bf16") usage(argv[0]);
            set_matmul_precision(p == "bf16" ? matmul_precision::bf16 : matmul_precision::fp32);
        } else usage(argv[0]);
    }
    if (o.threads < 1 || o.steps < 1 || o.warmup < 0) usage(argv[0]);
    if (o.names.empty()) o.names = {"atto_224_b16", "fmnist_32_b128"};
    const auto wls = all_workloads();
    for (auto& n : o.names) {
        auto it = std::find_if(wls.begin(), wls.end(), [&](const workload& w) { return w.name == n; });
        if (it == wls.end()) usage(argv[0]);
        run(*it, o);
    }
    return 0;
}
