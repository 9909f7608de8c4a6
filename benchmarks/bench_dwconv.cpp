// Depthwise 7x7 convolution kernels at the ConvNeXt stage shapes (batch 16, 224 input):
// forward, data gradient and weight gradient separately, plus the naive _ref on a small shape.
#include <convnextv2/kernels/dwconv7x7.hpp>
#include <convnextv2/core/rng.hpp>
#include <convnextv2/core/tensor.hpp>

#include <benchmark/benchmark.h>

using namespace convnextv2;

namespace {

enum class pass { fwd, bwd_data, bwd_weight };

struct problem {
    index_t N, H, W, C;
    tensor<float> x, w, b, dy, out, dw, db;
    problem(index_t n, index_t h, index_t wd, index_t c)
        : N(n), H(h), W(wd), C(c), x({n, h, wd, c}), w({7, 7, 1, c}), b({c}), dy({n, h, wd, c}), out({n, h, wd, c}, 0.f),
          dw({7, 7, 1, c}, 0.f), db({c}, 0.f)
    {
        counter_rng rng(1, 2);
        for (auto* t : {&x, &w, &b, &dy})
            for (auto& v : *t) v = static_cast<float>(rng.uniform(-1, 1));
    }
    double flops() const { return 2.0 * 49 * static_cast<double>(N * H * W * C); }
};

template <pass P, bool Ref>
void bm_dwconv(benchmark::State& state)
{
    problem p(state.range(0), state.range(1), state.range(1), state.range(2));
    for (auto _ : state) {
        if constexpr (P == pass::fwd) {
            if constexpr (Ref)
                kernels::dwconv7x7_fwd_ref(p.x.data(), p.N, p.H, p.W, p.C, p.w.data(), p.b.data(), p.out.data());
            else
                kernels::dwconv7x7_fwd(p.x.data(), p.N, p.H, p.W, p.C, p.w.data(), p.b.data(), p.out.data());
        } else if constexpr (P == pass::bwd_data) {
            if constexpr (Ref)
                kernels::dwconv7x7_bwd_data_ref(p.dy.data(), p.N, p.H, p.W, p.C, p.w.data(), p.out.data());
            else
                kernels::dwconv7x7_bwd_data(p.dy.data(), p.N, p.H, p.W, p.C, p.w.data(), p.out.data());
        } else {
            if constexpr (Ref)
                kernels::dwconv7x7_bwd_weight_ref(p.dy.data(), p.x.data(), p.N, p.H, p.W, p.C, p.dw.data(), p.db.data());
            else
                kernels::dwconv7x7_bwd_weight(p.dy.data(), p.x.data(), p.N, p.H, p.W, p.C, p.dw.data(), p.db.data());
        }
        benchmark::DoNotOptimize(p.out.data());
        benchmark::DoNotOptimize(p.dw.data());
        benchmark::ClobberMemory();
    }
    state.counters["GFLOP/s"] = benchmark::Counter(p.flops() * 1e-9 * static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kIsRate);
}

void stage_shapes(benchmark::internal::Benchmark* b)
{
    b->ArgNames({"N", "HW", "C"});
    b->Args({16, 56, 96})->Args({16, 28, 192})->Args({16, 14, 384})->Args({16, 7, 768});
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void small_shape(benchmark::internal::Benchmark* b)
{
    b->ArgNames({"N", "HW", "C"})->Args({2, 14, 96})->Unit(benchmark::kMillisecond)->UseRealTime();
}

} // namespace

BENCHMARK_TEMPLATE(bm_dwconv, pass::fwd, false)->Apply(stage_shapes);
BENCHMARK_TEMPLATE(bm_dwconv, pass::bwd_data, false)->Apply(stage_shapes);
BENCHMARK_TEMPLATE(bm_dwconv, pass::bwd_weight, false)->Apply(stage_shapes);
BENCHMARK_TEMPLATE(bm_dwconv, pass::fwd, true)->Apply(small_shape);
BENCHMARK_TEMPLATE(bm_dwconv, pass::bwd_data, true)->Apply(small_shape);
BENCHMARK_TEMPLATE(bm_dwconv, pass::bwd_weight, true)->Apply(small_shape);
BENCHMARK_TEMPLATE(bm_dwconv, pass::fwd, false)->Apply(small_shape);
