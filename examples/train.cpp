// train: supervised training driven by a JSON recipe (MindCV's train.py workflow).
//   train --config examples/configs/fashion_mnist_atto.json --data_dir /usr/share/datasets/fashion-mnist
//         [--output_dir DIR] [--ckpt_path W.safetensors] [--resume [auto|PATH]] [--num_threads T]
//         [--seed S] [--val_while_train true|false] [--<any recipe key> VALUE ...]
//   mpirun -np 2 --bind-to none train --config C --distribute true [--num_threads 1]   (MPI builds)
#include <convnextv2/core/allocator.hpp>
#include <convnextv2/core/parallel.hpp>
#include <convnextv2/train/trainer.hpp>
#ifdef CONVNEXTV2_WITH_MPI
#include <convnextv2/train/mpi_communicator.hpp>
#endif

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
#ifdef CONVNEXTV2_WITH_MPI
    std::unique_ptr<train::mpi_session> mpi;
#endif
    int rank = 0;
    bool distributed = false;

    try {
        recipe r = load_recipe(config);
        std::vector<std::string> extra = app.remaining();
        for (std::size_t i = 0; i < extra.size(); ++i) {
            std::string k = extra[i], v;
            CONVNEXTV2_CHECK(k.rfind("--", 0) == 0, "unexpected argument '", k, "' (recipe overrides are --key value)");
            if (auto eq = k.find('='); eq != std::string::npos) {
                v = k.substr(eq + 1);
                k = k.substr(0, eq);
            } else {
                CONVNEXTV2_CHECK(i + 1 < extra.size(), "option ", k, " needs a value");
                v = extra[++i];
            }
            apply_override(r, k, v);
        }
        if (!data_dir.empty()) apply_override(r, "data_dir", data_dir);
        if (seed >= 0) apply_override(r, "seed", std::to_string(seed));
        if (threads >= 0) apply_override(r, "num_threads", std::to_string(threads));
        if (!val_while_train.empty()) apply_override(r, "val_while_train", val_while_train);
        if (!distribute.empty()) apply_override(r, "distribute", distribute);
        if (!ckpt_path.empty()) apply_override(r, "ckpt_path", ckpt_path);
        std::shared_ptr<train::communicator> comm;
#ifdef CONVNEXTV2_WITH_MPI
        if (r.distribute) {
            mpi = std::make_unique<train::mpi_session>(&argc, &argv);
            comm = std::make_shared<train::mpi_communicator>();
            rank = comm->rank();
            distributed = true;
            // Threads per rank: --num_threads / the recipe's, else the cores shared by this machine's ranks.
            const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
            if (r.num_threads == 0) r.num_threads = train::default_threads_per_rank(*comm);
            if (r.num_threads * comm->local_size() > cores)
                std::fprintf(stderr, "warning: rank %d: %d threads x %d ranks on this machine > %d cores (oversubscribed)\n", rank,
                             r.num_threads, comm->local_size(), cores);
            if (rank == 0)
                std::fprintf(stderr, "distributed: %d ranks (%d on this machine), %d threads per rank\n", comm->size(),
                             comm->local_size(), r.num_threads);
        }
#else
        CONVNEXTV2_CHECK(!r.distribute, "--distribute true needs a build with CONVNEXTV2_WITH_MPI=ON (MPI data parallel)");
#endif
        if (rank == 0)
            for (auto& note : recipe_notes(r)) std::fprintf(stderr, "note: %s\n", note.c_str());

        thread_limit limit(r.num_threads);
        train::train_options o;
        o.comm = comm;
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
    } catch (const train::collective_error& e) {
        // Every rank raised it together: rank 0 reports, all exit normally with status 1.
        if (rank == 0) std::fprintf(stderr, "train: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "train: error%s: %s\n", distributed ? (" (rank " + std::to_string(rank) + ")").c_str() : "", e.what());
#ifdef CONVNEXTV2_WITH_MPI
        if (distributed) train::mpi_session::abort(1);  // the other ranks would wait in a collective
#endif
        return 1;
    }
}
