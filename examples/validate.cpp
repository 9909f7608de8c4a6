// validate: top-1/top-5/loss/throughput of weights on a recipe's evaluation split.
//   validate --config C --data_dir D --ckpt_path W.safetensors [--ema] [--tta_hflip] [--num_threads T]
//            [--matmul_precision fp32|bf16|auto]
// Accepts our training checkpoints and plain safetensors weights (official/timm/HF names).
#include <convnextv2/core/allocator.hpp>
#include <convnextv2/core/parallel.hpp>
#include <convnextv2/train/trainer.hpp>

#include "program_setup.hpp"

#include <CLI/CLI.hpp>

using namespace convnextv2;

int main(int argc, char** argv)
{
    CLI::App app{"validate: evaluate ConvNeXt V2 weights"};
    std::string config, data_dir, ckpt_path, precision;
    int threads = -1;
    bool ema = false, tta_hflip = false;
    app.add_option("--config,-c", config, "JSON recipe")->required();
    app.add_option("--data_dir", data_dir, "dataset folder");
    app.add_option("--ckpt_path", ckpt_path, "weights: a training checkpoint or safetensors file")->required();
    app.add_flag("--ema", ema, "evaluate the EMA weights of a training checkpoint");
    app.add_flag("--tta_hflip", tta_hflip, "also report flip test-time augmentation (as the recipe key tta_hflip)");
    app.add_option("--num_threads", threads, "worker threads (0 = all cores)");
    app.add_option("--matmul_precision", precision,
                   "products in fp32, bf16 (needs AVX512-BF16) or auto (default: the recipe's matmul_precision)")
        ->check(CLI::IsMember({"fp32", "bf16", "auto"}));
    CLI11_PARSE(app, argc, argv);
    keep_freed_memory();
    try {
        recipe r = load_recipe(config);
        if (!data_dir.empty()) apply_override(r, "data_dir", data_dir);
        thread_limit limit(threads >= 0 ? threads : r.num_threads);
        if (!precision.empty()) apply_override(r, "matmul_precision", precision);
        const char* used = programs::apply_matmul_precision(r);
        auto ds = train::make_dataset(r, r.data_dir, false);
        convnextv2_model<float> m(train::model_config_of(r));
        io::load_options lo;
        lo.prefer_ema = ema;
        io::load_weights(m.params(), ckpt_path, lo);
        auto ev = train::evaluate(m, *ds, recipe_eval_batch_size(r), nullptr, tta_hflip || r.tta_hflip);
        std::printf("%s on %ld images (%s products): top-1 %.2f%%  top-5 %.2f%%  loss %.4f  %.1f img/s\n", ckpt_path.c_str(),
                    (long)ev.count, used, ev.top1, ev.top5, ev.loss, ev.images_per_s());
        if (ev.has_hflip)
            std::printf("with horizontal-flip test-time augmentation: top-1 %.2f%%  top-5 %.2f%%  loss %.4f\n", ev.hflip_top1,
                        ev.hflip_top5, ev.hflip_loss);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "validate: error: %s\n", e.what());
        return 1;
    }
}
