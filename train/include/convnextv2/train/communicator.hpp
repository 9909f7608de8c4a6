// SPDX-License-Identifier: MIT
// The collectives the data-parallel trainer needs, behind a small interface: the default is a
// single process (every call a no-op); mpi_communicator.hpp implements it on MPI. Collectives are
// called from the main thread only, in the same order on every rank.
#pragma once
#include <convnextv2/core/config.hpp>
#include <convnextv2/core/tensor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

namespace convnextv2::train {

struct communicator {
    virtual ~communicator() = default;
    virtual int rank() const { return 0; }
    virtual int size() const { return 1; }
    // Ranks on this machine (for the per-rank thread count).
    virtual int local_size() const { return 1; }
    virtual void allreduce_sum(float*, index_t) {}
    virtual void allreduce_sum(double*, index_t) {}
    virtual void allreduce_sum(std::int64_t*, index_t) {}
    virtual void broadcast(float*, index_t, int /*root*/) {}
    virtual void broadcast(char*, index_t, int /*root*/) {}
    virtual void barrier() {}
    virtual std::string name() const { return "single process"; }

    bool is_root() const { return rank() == 0; }
    void broadcast(std::string& s, int root)
    {
        std::int64_t n = static_cast<std::int64_t>(s.size());
        if (rank() != root) n = 0;
        // Sizes travel as a sum (only the root contributes), so no extra broadcast overload is needed.
        allreduce_sum(&n, 1);
        s.resize(static_cast<std::size_t>(n));
        if (n > 0) broadcast(s.data(), n, root);
    }
};

// An error every rank raised together (after a collective agreed on it): printing it once, on
// rank 0, is enough, and the ranks can exit normally instead of aborting the job.
struct collective_error : error {
    using error::error;
};

inline std::shared_ptr<communicator> local_communicator() { return std::make_shared<communicator>(); }

// Threads per rank when the user gave none: the machine's cores shared by the ranks on it.
inline int default_threads_per_rank(const communicator& c)
{
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return std::max(1, cores / std::max(1, c.local_size()));
}

} // namespace convnextv2::train
