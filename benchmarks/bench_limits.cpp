// Machine limits for issue 7: what the kernels could reach on this machine.
//  * fma_peak/<threads>: FP32 FMA throughput of a register-only loop (16-wide vectors, 12
//    independent accumulators), GFLOP/s; std::threads, one per core.
//  * stream_{copy,triad}/<floats per array>/<threads>: STREAM-like bandwidth, GB/s counting the
//    bytes read + written (no write-allocate traffic); arrays of 32 Mi floats (128 MiB each, far
//    beyond any cache) and of 256 Ki floats (1 MiB each, cache-resident; 64 sweeps per thread launch).
//  * linear/<op>/<shape>/<threads>: the library's GEMM kernels (kernels/gemm.hpp: Eigen per tile,
//    tiles on oneTBB) at ConvNeXt's pointwise shapes, GFLOP/s (2·M·K·N per call). Shapes: M = N·H·W
//    sites of a stage, pw1 = [M,C]·[C,4C], pw2 = [M,4C]·[4C,C], for atto and tiny at 224 batch 16
//    (stages s0..s3 at 56², 28², 14², 7²) and the main job (fmnist: batch 128, 16²..2², C 32..256).
//    op: fwd (y = x·Wᵀ + b), bwd_data (dx += dy·W), bwd_weight (dW += dyᵀ·x, db += Σ dy).
//  * linear_bf16/<op>/<shape>/<threads>: the main job's rows with matmul_precision bf16
//    (kernels/gemm_bf16.hpp), to set beside the float rows.
//  * linear/fwd/square2048/<threads>: the same kernel at 2048³ (Eigen's best case).
//   bench_limits --benchmark_filter='stream|fma' --benchmark_repetitions=3
#include <convnextv2/core/allocator.hpp>
#include <convnextv2/core/rng.hpp>
#include <convnextv2/core/tensor.hpp>
#include <convnextv2/kernels/gemm.hpp>
#include <convnextv2/kernels/gemm_bf16.hpp>

#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

using namespace convnextv2;

namespace {

// Runs f(t, threads) on `threads` std::threads and waits.
template <class F>
void on_threads(int threads, F&& f)
{
    std::vector<std::thread> ts;
    for (int t = 1; t < threads; ++t) ts.emplace_back([&, t] { f(t, threads); });
    f(0, threads);
    for (auto& t : ts) t.join();
}

typedef float v16 __attribute__((vector_size(64)));

// 12 independent FMA chains of 16 floats; returns a value so the loop is not removed.
float fma_loop(long iters, float seed)
{
    v16 a[12], m, c;
    for (int i = 0; i < 12; ++i)
        for (int j = 0; j < 16; ++j) a[i][j] = seed + static_cast<float>(i * 16 + j) * 1e-3f;
    for (int j = 0; j < 16; ++j) { m[j] = 0.999999f; c[j] = 1e-7f; }
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) a[i] = a[i] * m + c;
    }
    float s = 0;
    for (int i = 0; i < 12; ++i)
        for (int j = 0; j < 16; ++j) s += a[i][j];
    return s;
}

void fma_peak(benchmark::State& state)
{
    const int threads = static_cast<int>(state.range(0));
    const long iters = 1L << 22;
    for (auto _ : state) {
        std::vector<float> out(static_cast<std::size_t>(threads));
        on_threads(threads, [&](int t, int) { out[static_cast<std::size_t>(t)] = fma_loop(iters, 1.0f + static_cast<float>(t)); });
        benchmark::DoNotOptimize(out.data());
    }
    const double flop = static_cast<double>(threads) * static_cast<double>(iters) * 12 * 16 * 2;
    state.counters["GFLOP/s"] = benchmark::Counter(flop * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Each thread owns (and first-touches) a contiguous part of the arrays.
struct stream_arrays {
    std::vector<float> a, b, c;
    explicit stream_arrays(index_t n, int threads)
    {
        a.resize(static_cast<std::size_t>(n));
        b.resize(static_cast<std::size_t>(n));
        c.resize(static_cast<std::size_t>(n));
        on_threads(threads, [&](int t, int T) {
            const index_t i0 = n * t / T, i1 = n * (t + 1) / T;
            for (index_t i = i0; i < i1; ++i) { a[i] = 1.0f; b[i] = 2.0f; c[i] = 0.5f; }
        });
    }
};

void stream_copy(benchmark::State& state)
{
    const index_t n = state.range(0);
    const int threads = static_cast<int>(state.range(1));
    stream_arrays s(n, threads);
    const index_t reps = std::max<index_t>(1, (index_t{1} << 24) / n);  // sweeps per thread launch
    for (auto _ : state) {
        on_threads(threads, [&](int t, int T) {
            const index_t i0 = n * t / T, i1 = n * (t + 1) / T;
            float* __restrict c = s.c.data();
            const float* __restrict a = s.a.data();
            for (index_t r = 0; r < reps; ++r) {
                for (index_t i = i0; i < i1; ++i) c[i] = a[i];
                asm volatile("" ::: "memory");
            }
        });
        benchmark::ClobberMemory();
    }
    state.counters["GB/s"] = benchmark::Counter(8.0 * static_cast<double>(n * reps) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void stream_triad(benchmark::State& state)
{
    const index_t n = state.range(0);
    const int threads = static_cast<int>(state.range(1));
    stream_arrays s(n, threads);
    const index_t reps = std::max<index_t>(1, (index_t{1} << 24) / n);  // sweeps per thread launch
    for (auto _ : state) {
        on_threads(threads, [&](int t, int T) {
            const index_t i0 = n * t / T, i1 = n * (t + 1) / T;
            float* __restrict a = s.a.data();
            const float* __restrict b = s.b.data();
            const float* __restrict c = s.c.data();
            for (index_t r = 0; r < reps; ++r) {
                for (index_t i = i0; i < i1; ++i) a[i] = b[i] + 0.5f * c[i];
                asm volatile("" ::: "memory");
            }
        });
        benchmark::ClobberMemory();
    }
    state.counters["GB/s"] = benchmark::Counter(12.0 * static_cast<double>(n * reps) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

enum gemm_op { op_fwd, op_bwd_data, op_bwd_weight };

void linear_op(benchmark::State& state, gemm_op op, index_t M, index_t K, index_t N, matmul_precision precision)
{
    if (precision == matmul_precision::bf16 && !bf16_matmul_available()) {
        state.SkipWithError("this build has no AVX512-BF16 path");
        return;
    }
    const scoped_matmul_precision scope(precision);
    const int threads = static_cast<int>(state.range(0));
    tbb::task_arena arena(threads);
    tensor<float> x({M, K}), w({N, K}), b({N}), y({M, N}), dw({N, K}), db({N});
    counter_rng rng(3, 4);
    for (auto* t : {&x, &w, &b, &y})
        for (auto& v : *t) v = static_cast<float>(rng.uniform(-1, 1));
    dw.zero();
    db.zero();
    auto call = [&] {
        switch (op) {
        case op_fwd: kernels::linear_fwd(x.data(), M, K, w.data(), b.data(), N, y.data()); break;
        case op_bwd_data: kernels::linear_bwd_data(y.data(), M, N, w.data(), K, x.data()); break;
        case op_bwd_weight: kernels::linear_bwd_weight(y.data(), x.data(), M, K, N, dw.data(), db.data()); break;
        }
    };
    arena.execute(call);  // warm-up
    for (auto _ : state) arena.execute(call);
    const double flop = 2.0 * static_cast<double>(M) * static_cast<double>(K) * static_cast<double>(N);
    state.counters["GFLOP/s"] = benchmark::Counter(flop * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

struct model_shapes {
    const char* name;
    index_t sites0;     // N·H·W of stage 0
    index_t dims[4];
};

// Registers the linear rows at static-initialisation time (benchmark_main runs them).
int register_all()
{
    keep_freed_memory();
    benchmark::RegisterBenchmark("fma_peak", fma_peak)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
    for (index_t n : {index_t{1} << 25, index_t{1} << 18}) {
        benchmark::RegisterBenchmark("stream_copy", stream_copy)->Args({n, 1})->Args({n, 2})->UseRealTime()->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark("stream_triad", stream_triad)->Args({n, 1})->Args({n, 2})->UseRealTime()->Unit(benchmark::kMillisecond);
    }
    const model_shapes models[] = {
        {"atto", 16 * 56 * 56, {40, 80, 160, 320}},
        {"tiny", 16 * 56 * 56, {96, 192, 384, 768}},
        {"fmnist", 128 * 16 * 16, {32, 64, 128, 256}},
    };
    const char* ops[] = {"fwd", "bwd_data", "bwd_weight"};
    // linear/...: float products; linear_bf16/...: the same with matmul_precision bf16 (the main
    // job's model only: the shapes a bf16 training run uses most here).
    for (auto precision : {matmul_precision::fp32, matmul_precision::bf16})
        for (auto& m : models) {
            if (precision == matmul_precision::bf16 && std::string(m.name) != "fmnist") continue;
            for (int s = 0; s < 4; ++s) {
                const index_t M = m.sites0 >> (2 * s), C = m.dims[s];
                for (int pw = 1; pw <= 2; ++pw)
                    for (int op = 0; op < 3; ++op) {
                        const index_t K = pw == 1 ? C : 4 * C, N = pw == 1 ? 4 * C : C;
                        const std::string name = std::string(precision == matmul_precision::bf16 ? "linear_bf16/" : "linear/") +
                                                 ops[op] + "/" + m.name + "_s" + std::to_string(s) + "_pw" + std::to_string(pw) +
                                                 "_M" + std::to_string(M) + "_K" + std::to_string(K) + "_N" + std::to_string(N);
                        benchmark::RegisterBenchmark(name.c_str(), linear_op, static_cast<gemm_op>(op), M, K, N, precision)
                            ->Arg(1)
                            ->Arg(2)
                            ->UseRealTime()
                            ->Unit(benchmark::kMillisecond);
                    }
            }
        }
    benchmark::RegisterBenchmark("linear/fwd/square2048", linear_op, op_fwd, index_t{2048}, index_t{2048}, index_t{2048},
                                 matmul_precision::fp32)
        ->Arg(1)
        ->Arg(2)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    return 0;
}

[[maybe_unused]] const int registered = register_all();

} // namespace
