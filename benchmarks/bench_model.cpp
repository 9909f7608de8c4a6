// Whole-model throughput: inference (eval mode) and a full training step (forward +
// cross entropy + backward + AdamW) in images/s, in fp32 and with the products in bf16, for
// atto/femto/nano/tiny at 224 and atto in the small-image (Fashion-MNIST) regime. Threads: the first argument, through a task_arena.
//   bench_model --benchmark_filter=atto --benchmark_repetitions=3
#include <convnextv2/core/allocator.hpp>
#include <convnextv2/kernels/cross_entropy.hpp>
#include <convnextv2/kernels/gemm_bf16.hpp>
#include <convnextv2/models/convnextv2.hpp>
#include <convnextv2/optim/adamw.hpp>

#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>

#include <memory>

using namespace convnextv2;

namespace {

struct setup {
    std::unique_ptr<convnextv2_model<float>> model;
    tensor<float> x, logits, targets, dlogits;
    std::vector<int> labels;
};

setup make(const std::string& name, index_t batch, index_t side, index_t stem = 4)
{
    keep_freed_memory();
    setup s;
    model_config c = variant_config(name, 1000);
    c.stem_kernel = stem;
    s.model = std::make_unique<convnextv2_model<float>>(c, 0);
    s.x = tensor<float>({batch, side, side, 3});
    counter_rng rng(1, 2);
    for (auto& v : s.x) v = static_cast<float>(rng.uniform(-1, 1));
    s.labels.resize(static_cast<std::size_t>(batch));
    for (index_t i = 0; i < batch; ++i) s.labels[static_cast<std::size_t>(i)] = static_cast<int>(i % 1000);
    s.targets.resize({batch, 1000});
    s.dlogits.resize({batch, 1000});
    kernels::smooth_targets(s.labels.data(), batch, 1000, 0.1, s.targets.data());
    return s;
}

void run_inference(benchmark::State& state, const std::string& name, index_t side, index_t stem = 4)
{
    const int threads = static_cast<int>(state.range(0));
    const index_t batch = state.range(1);
    tbb::task_arena arena(threads);
    setup s = make(name, batch, side, stem);
    s.model->set_training(false);
    arena.execute([&] { s.model->forward(s.x, s.logits); });  // warm-up: allocate buffers
    for (auto _ : state) arena.execute([&] { s.model->forward(s.x, s.logits); });
    state.counters["img/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

// Inference with the forward GEMMs in bf16 (set_matmul_precision, kernels/gemm_bf16.hpp); the
// same rows as run_inference, to compare side by side.
void run_inference_bf16(benchmark::State& state, const std::string& name, index_t side, index_t stem = 4)
{
    if (!bf16_matmul_available()) {
        state.SkipWithError("this build has no AVX512-BF16 path");
        return;
    }
    set_matmul_precision(matmul_precision::bf16);
    run_inference(state, name, side, stem);
    set_matmul_precision(matmul_precision::fp32);
}

void run_train_step(benchmark::State& state, const std::string& name, index_t side, index_t stem = 4)
{
    const int threads = static_cast<int>(state.range(0));
    const index_t batch = state.range(1);
    tbb::task_arena arena(threads);
    setup s = make(name, batch, side, stem);
    s.model->set_training(true);
    adamw<float> opt(s.model->params(), adamw_options{});
    std::uint64_t step = 0;
    auto one_step = [&] {
        s.model->zero_grad();
        s.model->set_step(step++);
        s.model->forward(s.x, s.logits);
        kernels::softmax_cross_entropy(s.logits.data(), batch, 1000, s.targets.data(), s.dlogits.data());
        s.model->backward(s.dlogits);
        opt.step(1e-4);
    };
    arena.execute(one_step);  // warm-up
    for (auto _ : state) arena.execute(one_step);
    state.counters["img/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

// A training step with all three products of the pointwise layers in bf16 (forward, data and
// weight gradients; kernels/gemm_bf16.hpp), next to run_train_step's rows.
void run_train_step_bf16(benchmark::State& state, const std::string& name, index_t side, index_t stem = 4)
{
    if (!bf16_matmul_available()) {
        state.SkipWithError("this build has no AVX512-BF16 path");
        return;
    }
    const scoped_matmul_precision bf16(matmul_precision::bf16);
    run_train_step(state, name, side, stem);
}

} // namespace

// Args: {threads, batch}. Every row exists for 1 and 2 threads so that tools/compare_speed.sh can select
// one thread count with --benchmark_filter='/<threads>/'; row names match tools/bench_torch.py
// (run_inference/atto_224/2/16 -> infer/atto_224/b16).
#define CNX_T12(b) ->Args({1, b})->Args({2, b})
BENCHMARK_CAPTURE(run_inference, atto_224, std::string("atto"), 224) CNX_T12(1) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_inference, femto_224, std::string("femto"), 224) CNX_T12(1) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_inference, nano_224, std::string("nano"), 224) CNX_T12(1) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_inference, tiny_224, std::string("tiny"), 224) CNX_T12(1) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_inference_bf16, atto_224, std::string("atto"), 224) CNX_T12(1) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_inference_bf16, femto_224, std::string("femto"), 224) CNX_T12(1) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_inference_bf16, nano_224, std::string("nano"), 224) CNX_T12(1) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_inference_bf16, tiny_224, std::string("tiny"), 224) CNX_T12(1) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_train_step, atto_224, std::string("atto"), 224) CNX_T12(16) CNX_T12(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_train_step, tiny_224, std::string("tiny"), 224) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK_CAPTURE(run_train_step_bf16, atto_224, std::string("atto"), 224) CNX_T12(16) CNX_T12(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_train_step_bf16, tiny_224, std::string("tiny"), 224) CNX_T12(16)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK_CAPTURE(run_inference, atto_32, std::string("atto"), 32) CNX_T12(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_inference_bf16, atto_32, std::string("atto"), 32) CNX_T12(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_train_step, atto_32, std::string("atto"), 32) CNX_T12(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_train_step_bf16, atto_32, std::string("atto"), 32) CNX_T12(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_inference, atto_64, std::string("atto"), 64) CNX_T12(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_train_step, atto_64, std::string("atto"), 64) CNX_T12(128)->Unit(benchmark::kMillisecond)->UseRealTime();
#undef CNX_T12
