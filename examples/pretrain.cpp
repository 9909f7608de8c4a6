// pretrain: FCMAE masked-autoencoder pretraining from a JSON recipe (official main_pretrain.py
// workflow, SPEC §3), with a real sparse encoder (or, with --encoder_mode dense_masked, the
// dense emulation). Writes checkpoints (encoder + decoder, resumable), metrics.jsonl, a loss plot,
// reconstruction PNGs and, at the end, <output_dir>/fcmae_<model>_encoder.safetensors in the
// official dense layout, which `train --ckpt_path` fine-tunes.
//   pretrain --config examples/configs/fashion_mnist_fcmae.json [--output_dir DIR] [--resume [auto|PATH]]
//            [--num_threads T] [--seed S] [--<any recipe key> VALUE ...]
//   mpirun -np 2 --bind-to none pretrain --config C --distribute true      (MPI builds)
#include <convnextv2/core/allocator.hpp>
#include <convnextv2/core/parallel.hpp>
#include <convnextv2/train/pretrainer.hpp>

#include "program_setup.hpp"

#include <CLI/CLI.hpp>

using namespace convnextv2;

int main(int argc, char** argv)
{
    CLI::App app{"pretrain: FCMAE (ConvNeXt V2 masked autoencoder) pretraining from a JSON recipe"};
    std::string config, data_dir, output_dir, resume, val_while_train, distribute;
    int threads = -1;
    long long seed = -1, stop_after = -1;
    app.add_option("--config,-c", config, "JSON recipe (keys as in MindCV's yaml, plus mask_ratio, decoder_dim, ...)")->required();
    app.add_option("--data_dir", data_dir, "dataset folder (Fashion-MNIST IDX files or an ImageFolder root)");
    app.add_option("--output_dir", output_dir, "checkpoints, metrics, plot, reconstructions, encoder export (default: ckpt_save_dir)");
    app.add_option("--resume", resume, "'auto' (latest checkpoint in output_dir) or a checkpoint path")->expected(0, 1)->default_str("auto");
    app.add_option("--num_threads", threads, "worker threads (default: recipe num_threads; 0 = all cores)");
    app.add_option("--seed", seed, "random seed (overrides the recipe)");
    app.add_option("--val_while_train", val_while_train, "masked-patch loss on the validation split after each epoch (true/false)");
    app.add_option("--distribute", distribute, "data-parallel over MPI ranks (true/false)");
    app.add_option("--stop_after_epochs", stop_after, "stop after this many completed epochs (the schedule still spans epoch_size)");
    app.allow_extras();
    CLI11_PARSE(app, argc, argv);
    keep_freed_memory();
    programs::program_env env;
    try {
        programs::setup_program(env, config, app.remaining(),
                                {{"data_dir", data_dir},
                                 {"seed", seed >= 0 ? std::to_string(seed) : ""},
                                 {"num_threads", threads >= 0 ? std::to_string(threads) : ""},
                                 {"val_while_train", val_while_train},
                                 {"distribute", distribute}},
                                &argc, &argv);
        thread_limit limit(env.r.num_threads);
        train::pretrain_options o;
        o.comm = env.comm;
        o.r = env.r;
        o.config_path = config;
        o.output_dir = output_dir;
        o.resume = app.count("--resume") ? (resume.empty() ? "auto" : resume) : "";
        o.stop_after_epochs = stop_after;
        if (env.rank == 0) std::fprintf(stderr, "threads: %d\n", max_threads());
        auto s = train::run_pretrain(o);
        if (env.rank == 0) train::print_pretrain_summary(s);
        return 0;
    } catch (const std::exception& e) {
        return programs::report_failure(env, "pretrain", e);
    }
}
