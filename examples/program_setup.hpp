// SPDX-License-Identifier: MIT
// Start-up shared by `train` and `pretrain`: load the recipe, apply `--key value` overrides (the
// named flags last), start MPI when the recipe asks for it and pick the threads per rank; and
// the matching error report (a collective error is printed once, by rank 0).
#pragma once
#include <convnextv2/io/recipe.hpp>
#include <convnextv2/train/run_support.hpp>
#include <convnextv2/train/communicator.hpp>
#ifdef CONVNEXTV2_WITH_MPI
#include <convnextv2/train/mpi_communicator.hpp>
#endif

#include <cstdio>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

namespace convnextv2::programs {

struct program_env {
    recipe r;
    std::shared_ptr<train::communicator> comm;  // null: single process
    int rank = 0;
    bool distributed = false;
#ifdef CONVNEXTV2_WITH_MPI
    std::unique_ptr<train::mpi_session> mpi;
#endif
};

// Sets the process-wide precision of the pointwise products from the recipe key matmul_precision
// (the trainers set it again for their run); returns the one chosen.
inline const char* apply_matmul_precision(const recipe& r)
{
    const matmul_precision p = train::recipe_matmul_precision(r);
    set_matmul_precision(p);
    return p == matmul_precision::bf16 ? "bf16" : "fp32";
}

// extra: the unparsed "--key value" / "--key=value" arguments; flags: (key, value) pairs of the
// program's named options, applied after them ("" = not given).
inline void setup_program(program_env& env, const std::string& config, const std::vector<std::string>& extra,
                          const std::vector<std::pair<std::string, std::string>>& flags, int* argc, char*** argv)
{
    env.r = load_recipe(config);
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
        apply_override(env.r, k, v);
    }
    for (const auto& [k, v] : flags)
        if (!v.empty()) apply_override(env.r, k, v);
#ifdef CONVNEXTV2_WITH_MPI
    if (env.r.distribute) {
        env.mpi = std::make_unique<train::mpi_session>(argc, argv);
        env.comm = std::make_shared<train::mpi_communicator>();
        env.rank = env.comm->rank();
        env.distributed = true;
        // Threads per rank: --num_threads / the recipe's, else the cores shared by this machine's ranks.
        const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        if (env.r.num_threads == 0) env.r.num_threads = train::default_threads_per_rank(*env.comm);
        if (env.r.num_threads * env.comm->local_size() > cores)
            std::fprintf(stderr, "warning: rank %d: %d threads x %d ranks on this machine > %d cores (oversubscribed)\n", env.rank,
                         env.r.num_threads, env.comm->local_size(), cores);
        if (env.rank == 0)
            std::fprintf(stderr, "distributed: %d ranks (%d on this machine), %d threads per rank\n", env.comm->size(),
                         env.comm->local_size(), env.r.num_threads);
    }
#else
    (void)argc;
    (void)argv;
    CONVNEXTV2_CHECK(!env.r.distribute, "--distribute true needs a build with CONVNEXTV2_WITH_MPI=ON (MPI data parallel)");
#endif
    const char* precision = apply_matmul_precision(env.r);
    if (env.rank == 0) {
        for (auto& note : recipe_notes(env.r)) std::fprintf(stderr, "note: %s\n", note.c_str());
        if (env.r.matmul_precision != "fp32")
            std::fprintf(stderr, "matmul_precision %s: the pointwise products run in %s\n", env.r.matmul_precision.c_str(), precision);
    }
}

// Prints the error and returns the exit status; a non-collective error in a distributed run
// aborts the other ranks, which would otherwise wait in a collective forever.
inline int report_failure(const program_env& env, const char* program, const std::exception& e)
{
    if (dynamic_cast<const train::collective_error*>(&e)) {
        if (env.rank == 0) std::fprintf(stderr, "%s: error: %s\n", program, e.what());
        return 1;
    }
    std::fprintf(stderr, "%s: error%s: %s\n", program, env.distributed ? (" (rank " + std::to_string(env.rank) + ")").c_str() : "", e.what());
#ifdef CONVNEXTV2_WITH_MPI
    if (env.distributed) train::mpi_session::abort(1);
#endif
    return 1;
}

} // namespace convnextv2::programs
