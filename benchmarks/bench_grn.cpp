// GRN kernels at the ConvNeXt V2 MLP widths (D = 4C) for batch 16 at 224 input: forward and
// backward separately, plus the naive _ref at one shape. Bytes counted as the memory the
// kernel streams: forward reads x twice (norms, apply) and writes y (3 tensors); backward reads
// dy and x twice and reads + writes dx (6 tensors).
#include <convnextv2/kernels/grn.hpp>
#include <convnextv2/core/rng.hpp>
#include <convnextv2/core/tensor.hpp>

#include <benchmark/benchmark.h>

using namespace convnextv2;

namespace {

struct problem {
    index_t N, S, D;
    tensor<float> x, dy, y, dx, gamma, beta, dgamma, dbeta;
    kernels::grn_stats st;
    problem(index_t n, index_t hw, index_t d)
        : N(n), S(hw * hw), D(d), x({n, hw, hw, d}), dy({n, hw, hw, d}), y({n, hw, hw, d}), dx({n, hw, hw, d}, 0.f), gamma({d}),
          beta({d}), dgamma({d}, 0.f), dbeta({d}, 0.f)
    {
        counter_rng rng(1, 2);
        for (auto* t : {&x, &dy, &gamma, &beta})
            for (auto& v : *t) v = static_cast<float>(rng.uniform(-1, 1));
        kernels::grn_fwd(x.data(), N, S, D, gamma.data(), beta.data(), y.data(), st);
    }
    double bytes() const { return static_cast<double>(x.size()) * sizeof(float); }
};

void bm_grn_fwd(benchmark::State& state)
{
    problem p(state.range(0), state.range(1), state.range(2));
    for (auto _ : state) {
        kernels::grn_fwd(p.x.data(), p.N, p.S, p.D, p.gamma.data(), p.beta.data(), p.y.data(), p.st);
        benchmark::DoNotOptimize(p.y.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 3 * p.bytes()));
}

void bm_grn_bwd(benchmark::State& state)
{
    problem p(state.range(0), state.range(1), state.range(2));
    for (auto _ : state) {
        kernels::grn_bwd(p.dy.data(), p.x.data(), p.N, p.S, p.D, p.gamma.data(), p.st, p.dx.data(), p.dgamma.data(), p.dbeta.data());
        benchmark::DoNotOptimize(p.dx.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 6 * p.bytes()));
}

void bm_grn_fwd_ref(benchmark::State& state)
{
    problem p(state.range(0), state.range(1), state.range(2));
    for (auto _ : state) {
        kernels::grn_fwd_ref(p.x.data(), p.N, p.S, p.D, p.gamma.data(), p.beta.data(), p.y.data());
        benchmark::DoNotOptimize(p.y.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 3 * p.bytes()));
}

void bm_grn_bwd_ref(benchmark::State& state)
{
    problem p(state.range(0), state.range(1), state.range(2));
    for (auto _ : state) {
        kernels::grn_bwd_ref(p.dy.data(), p.x.data(), p.N, p.S, p.D, p.gamma.data(), p.dx.data(), p.dgamma.data(), p.dbeta.data());
        benchmark::DoNotOptimize(p.dx.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 6 * p.bytes()));
}

// {N, H = W, D}: the four stage shapes of a C = 96 model (tiny) at 224.
void stage_shapes(benchmark::internal::Benchmark* b)
{
    b->ArgNames({"N", "HW", "D"});
    b->Args({16, 56, 384})->Args({16, 28, 768})->Args({16, 14, 1536})->Args({16, 7, 3072});
}

// The main job's model (examples/configs/fashion_mnist.json: C = 32…256, 32x32 input, stem 2),
// batch 128: many small samples, each group fits in L2.
void fmnist_shapes(benchmark::internal::Benchmark* b)
{
    b->ArgNames({"N", "HW", "D"});
    b->Args({128, 16, 128})->Args({128, 8, 256})->Args({128, 4, 512})->Args({128, 2, 1024});
}

} // namespace

BENCHMARK(bm_grn_fwd)->Apply(stage_shapes)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_grn_bwd)->Apply(stage_shapes)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_grn_fwd)->Apply(fmnist_shapes)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_grn_bwd)->Apply(fmnist_shapes)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_grn_fwd_ref)->ArgNames({"N", "HW", "D"})->Args({16, 14, 1536})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_grn_bwd_ref)->ArgNames({"N", "HW", "D"})->Args({16, 14, 1536})->UseRealTime()->Unit(benchmark::kMillisecond);
