// FCMAE encoder forward + backward at mask ratio 0.6: the real sparse encoder against the
// dense-masked emulation (SPEC §3.4), same weights and mask, for atto and tiny at 224, batch 16,
// 1 and 2 threads (first argument, through a task_arena). Only the encoder is timed (decoder and
// loss are the same dense code in both). A new mask per iteration, as in training; the site
// tables are built inside the timed region (they are part of the sparse path's cost).
//   bench_fcmae --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <convnextv2/core/allocator.hpp>
#include <convnextv2/fcmae/fcmae.hpp>

#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>

using namespace convnextv2;

namespace {

template <class Mode>
void run_encoder(benchmark::State& state, const std::string& name)
{
    const int threads = static_cast<int>(state.range(0));
    const index_t batch = state.range(1), side = 224;
    tbb::task_arena arena(threads);
    keep_freed_memory();
    param_list<float> params;
    fcmae_encoder<float, Mode> enc;
    enc.build(variant_config(name), params);
    init_conv_linear_weights(params, 0);
    tensor<float> img({batch, side, side, 3}), out, dout;
    counter_rng rng(1, 2);
    for (auto& v : img) v = static_cast<float>(rng.uniform(-1, 1));
    std::uint64_t step = 0;
    auto one = [&] {
        fcmae_mask m = random_fcmae_mask(batch, side / 32, 0.6, 0, step++);
        enc.forward(img, m, out);
        dout.resize_like(out);
        dout.fill(1e-3f);
        enc.backward(dout);
    };
    arena.execute(one);  // warm-up: allocate buffers
    for (auto _ : state) arena.execute(one);
    state.counters["img/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void sparse(benchmark::State& state, const std::string& name) { run_encoder<sparse_sites>(state, name); }
void dense_masked(benchmark::State& state, const std::string& name) { run_encoder<masked_sites>(state, name); }

} // namespace

// Args: {threads, batch}.
#define CNX_T12(b) ->Args({1, b})->Args({2, b})
BENCHMARK_CAPTURE(sparse, atto_224, std::string("atto")) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(dense_masked, atto_224, std::string("atto")) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(sparse, tiny_224, std::string("tiny")) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK_CAPTURE(dense_masked, tiny_224, std::string("tiny")) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
