// train: supervised training driven by a JSON recipe (MindCV's train.py workflow).
//   train --config examples/configs/fashion_mnist_atto.json --data_dir /usr/share/datasets/fashion-mnist
//         [--output_dir DIR] [--ckpt_path W.safetensors] [--resume [auto|PATH]] [--num_threads T]
//         [--seed S] [--val_while_train true|false] [--<any recipe key> VALUE ...]
//   mpirun -np 2 --bind-to none train --config C --distribute true [--num_threads 1]   (MPI builds)
#include <convnextv2/core/allocator.hpp>
#include <convnextv2/core/parallel.hpp>
#include <convnextv2/train/trainer.hpp>

#include "program_setup.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>

using namespace convnextv2;

int main(int argc, char** argv)
{
    CLI::App app{"train: ConvNeXt V2 supervised training from a JSON recipe"};
    std::string config, data_dir, output_dir, ckpt_path, resume, val_while_train, distribute;
    int threads = -1;
    long long seed = -1;
    long long stop_after = -1;
    app.add_option("--config,-c", config, "JSON recipe (keys as in MindCV's yaml)")->required();
    app.add_option("--data_dir", data_dir, "dataset folder (Fashion-MNIST IDX files or an ImageFolder root)");
    app.add_option("--output_dir", output_dir, "checkpoints, metrics.jsonl and the plot (default: recipe ckpt_save_dir)");
    app.add_option("--ckpt_path", ckpt_path, "initial weights: a classifier or an FCMAE encoder (safetensors)");
    app.add_option("--resume", resume, "'auto' (latest checkpoint in output_dir) or a checkpoint path")->expected(0, 1)->default_str("auto");
    app.add_option("--num_threads", threads, "worker threads (default: recipe num_threads; 0 = all cores)");
    app.add_option("--seed", seed, "random seed (overrides the recipe)");
    app.add_option("--val_while_train", val_while_train, "evaluate after each epoch (true/false)");
    app.add_option("--distribute", distribute, "data-parallel over MPI ranks (true/false)");
    app.add_option("--stop_after_epochs", stop_after, "stop after this many completed epochs (the schedule still spans epoch_size)");
    app.allow_extras();  // any other --key value pair overrides the recipe key of that name
    CLI11_PARSE(app, argc, argv);
    keep_freed_memory();
    programs::program_env env;
    try {
        programs::setup_program(env, config, app.remaining(),
                                {{"data_dir", data_dir},
                                 {"seed", seed >= 0 ? std::to_string(seed) : ""},
                                 {"num_threads", threads >= 0 ? std::to_string(threads) : ""},
                                 {"val_while_train", val_while_train},
                                 {"distribute", distribute},
                                 {"ckpt_path", ckpt_path}},
                                &argc, &argv);
        const recipe& r = env.r;
        const int rank = env.rank;
        thread_limit limit(r.num_threads);
        train::train_options o;
        o.comm = env.comm;
        o.r = r;
        o.config_path = config;
        o.output_dir = output_dir;
        o.resume = app.count("--resume") ? (resume.empty() ? "auto" : resume) : "";
        o.stop_after_epochs = stop_after;
        train::trainer t(o);
        if (rank == 0) std::fprintf(stderr, "threads: %d\n", max_threads());
        auto s = t.run();
        if (rank == 0) {
            train::print_summary(s);
            std::printf("metrics: %s\nplot: %s/metrics.svg\n", t.metrics_path().c_str(), t.output_dir().c_str());
        }
        return 0;
    } catch (const std::exception& e) {
        return programs::report_failure(env, "train", e);
    }
}
