// SPDX-License-Identifier: MIT
// Pieces shared by the supervised trainer and the FCMAE pretrainer: output folder checks, the
// fused gradient buffer used by gradient accumulation and data parallelism, weight broadcast,
// the start-up agreement check between ranks, and picking the checkpoint to resume from.
#pragma once
#include "checkpoint.hpp"
#include "communicator.hpp"

#include <convnextv2/data/dataset.hpp>
#include <convnextv2/io/recipe.hpp>
#include <convnextv2/kernels/gemm_bf16.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

namespace convnextv2::train {

// The recipe's matmul_precision ("auto": bf16 where this build has the AVX512-BF16 kernels, else
// fp32); an explicit bf16 without them is an error naming the key.
inline matmul_precision recipe_matmul_precision(const recipe& r)
{
    CONVNEXTV2_CHECK(r.matmul_precision != "bf16" || bf16_matmul_available(),
                     "recipe key 'matmul_precision' is 'bf16', but this build has no AVX512-BF16 kernels (build with "
                     "-march=native on a CPU that has them, or use 'auto' or 'fp32')");
    const bool bf16 = r.matmul_precision == "bf16" || (r.matmul_precision == "auto" && bf16_matmul_available());
    return bf16 ? matmul_precision::bf16 : matmul_precision::fp32;
}

// Creates `dir` and checks that a file can be written there (an error names the folder).
inline void prepare_output_dir(const std::string& dir)
{
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    CONVNEXTV2_CHECK(!ec && std::filesystem::is_directory(dir), dir, ": cannot create the output directory (", ec.message(), ")");
    std::string probe = (std::filesystem::path(dir) / ".write_test").string();
    std::FILE* f = std::fopen(probe.c_str(), "wb");
    CONVNEXTV2_CHECK(f != nullptr, dir, ": output directory is not writable");
    std::fclose(f);
    std::remove(probe.c_str());
}

// acc += the parameter gradients, in parameter order (acc.size() >= total parameters).
template <class T>
void accumulate_grads(param_list<T>& params, std::vector<float>& acc)
{
    float* a = acc.data();
    for (auto& p : params) {
        const T* g = p.grad->data();
        const index_t n = p.grad->size();
        for (index_t i = 0; i < n; ++i) a[i] += static_cast<float>(g[i]);
        a += n;
    }
}

template <class T>
void grads_from_acc(param_list<T>& params, const std::vector<float>& acc)
{
    const float* a = acc.data();
    for (auto& p : params) {
        std::copy(a, a + p.grad->size(), p.grad->begin());
        a += p.grad->size();
    }
}

// Every rank gets rank 0's parameter values.
template <class T>
void broadcast_params(param_list<T>& params, communicator& comm)
{
    std::vector<float> buf;
    for (auto& p : params) buf.insert(buf.end(), p.value->begin(), p.value->end());
    comm.broadcast(buf.data(), static_cast<index_t>(buf.size()), 0);
    const float* a = buf.data();
    for (auto& p : params) {
        std::copy(a, a + p.value->size(), p.value->begin());
        a += p.value->size();
    }
}

// Start-up check: ranks must agree on the recipe (minus rank-local keys), the model and the
// dataset sizes; otherwise every rank throws the same collective_error (no hang).
template <class T>
void check_same_config(communicator& comm, const recipe& r, const param_list<T>& params, const dataset& train_set,
                       const dataset* val_set)
{
    nlohmann::json rj = to_json(r);
    for (const char* k : {"num_threads", "ckpt_save_dir", "data_dir", "log_interval"}) rj.erase(k);
    nlohmann::json mj = nlohmann::json::array();
    for (auto& p : params) mj.push_back({p.name, to_string(p.value->shape())});
    nlohmann::json dj = {train_set.size(), train_set.num_classes(), to_string(train_set.sample_shape()),
                         val_set ? val_set->size() : index_t{-1}};
    const char* what[3] = {"recipe", "model", "dataset"};
    std::string parts[3] = {rj.dump(), mj.dump(), dj.dump()};
    std::int64_t mine[3], root[3];
    for (int i = 0; i < 3; ++i) {
        std::uint64_t h = 1469598103934665603ULL;  // FNV-1a
        for (unsigned char c : parts[i]) h = (h ^ c) * 1099511628211ULL;
        mine[i] = root[i] = static_cast<std::int64_t>(h >> 1);
    }
    comm.broadcast(reinterpret_cast<char*>(root), sizeof root, 0);
    std::int64_t differ[3];
    for (int i = 0; i < 3; ++i) differ[i] = mine[i] != root[i];
    comm.allreduce_sum(differ, 3);
    std::string msg;
    for (int i = 0; i < 3; ++i)
        if (differ[i] > 0)
            msg += std::string(msg.empty() ? "" : "; ") + what[i] + " hash differs between ranks (" +
                   std::to_string(static_cast<long>(differ[i])) + " of " + std::to_string(comm.size()) + " ranks differ from rank 0)";
    if (!msg.empty())
        throw collective_error("configuration mismatch: " + msg +
                               "; every rank must run the same recipe, model and dataset (only num_threads, data_dir, "
                               "ckpt_save_dir and log_interval may differ)");
}

// This rank's batches of an epoch in the order the step loop takes them (micro-batch j of step s
// is global batch s·u·W + j·W + rank), prepared in the background; null when k = 0.
inline std::unique_ptr<batch_prefetcher> epoch_prefetcher(const batch_loader& loader, index_t steps_per_epoch, int update_freq,
                                                          int world, int rank, int k)
{
    if (k <= 0) return nullptr;
    const index_t micro_per_step = static_cast<index_t>(update_freq) * world;
    std::vector<index_t> mine;
    for (index_t s = 0; s < steps_per_epoch; ++s)
        for (int u = 0; u < update_freq; ++u) mine.push_back(s * micro_per_step + static_cast<index_t>(u) * world + rank);
    return std::make_unique<batch_prefetcher>(loader, std::move(mine), k);
}

// The checkpoint to resume from: `what` is a path, or "auto" for the latest `model` checkpoint in
// `dir` as rank 0 sees it (every rank loads that file; "" when there is none).
inline std::string resume_path(const std::string& what, const std::string& dir, const std::string& model, communicator& comm)
{
    if (what != "auto") return what;
    std::string latest;
    if (comm.rank() == 0) {
        auto all = list_checkpoints(dir, model);
        if (!all.empty()) latest = all.back().second;
    }
    comm.broadcast(latest, 0);
    return latest;
}

} // namespace convnextv2::train
