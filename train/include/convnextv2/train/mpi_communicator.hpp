// SPDX-License-Identifier: MIT
// communicator on MPI (Open MPI, MPICH). mpi_session initialises MPI (singleton init works, so one
// binary runs with and without mpirun) and finalises it; errors come back as return codes
// (MPI_ERRORS_RETURN) and are thrown as convnextv2::error naming the call. Only compiled where
// CONVNEXTV2_WITH_MPI is defined (targets linking MPI::MPI_CXX).
#pragma once
#include "communicator.hpp"

#include <mpi.h>

#include <cstdlib>
#include <limits>

namespace convnextv2::train {

inline void mpi_check(int rc, const char* call)
{
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    detail::throw_error("", call, " failed: ", std::string(msg, static_cast<std::size_t>(len)));
}

class mpi_session {
public:
    mpi_session(int* argc, char*** argv)
    {
        int inited = 0;
        MPI_Initialized(&inited);
        if (!inited) {
            int provided = 0;
            // Collectives come from the main thread only; TBB workers never call MPI.
            mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
            owned_ = true;
        }
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    }
    ~mpi_session()
    {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (owned_ && !finalized) MPI_Finalize();
    }
    mpi_session(const mpi_session&) = delete;
    mpi_session& operator=(const mpi_session&) = delete;
    // Ends every rank of the job (for an error only this rank knows about).
    [[noreturn]] static void abort(int code)
    {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::exit(code);
    }

private:
    bool owned_ = false;
};

class mpi_communicator : public communicator {
public:
    explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD)
    {
        mpi_check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
        MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
        mpi_check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
        mpi_check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
        MPI_Comm local;
        mpi_check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
        mpi_check(MPI_Comm_size(local, &local_size_), "MPI_Comm_size");
        MPI_Comm_free(&local);
    }
    ~mpi_communicator() override
    {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Comm_free(&comm_);
    }
    mpi_communicator(const mpi_communicator&) = delete;
    mpi_communicator& operator=(const mpi_communicator&) = delete;

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    int local_size() const override { return local_size_; }
    void allreduce_sum(float* d, index_t n) override { allreduce(d, n, MPI_FLOAT); }
    void allreduce_sum(double* d, index_t n) override { allreduce(d, n, MPI_DOUBLE); }
    void allreduce_sum(std::int64_t* d, index_t n) override { allreduce(d, n, MPI_INT64_T); }
    void broadcast(float* d, index_t n, int root) override { bcast(d, n, MPI_FLOAT, root); }
    void broadcast(char* d, index_t n, int root) override { bcast(d, n, MPI_CHAR, root); }
    void barrier() override { mpi_check(MPI_Barrier(comm_), "MPI_Barrier"); }
    std::string name() const override { return "MPI"; }

private:
    // MPI counts are int: large buffers go in chunks.
    static constexpr index_t chunk = std::numeric_limits<int>::max() / 2;

    void allreduce(void* d, index_t n, MPI_Datatype t)
    {
        int es = 0;
        MPI_Type_size(t, &es);
        for (index_t off = 0; off < n; off += chunk)
            mpi_check(MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(d) + off * es, static_cast<int>(std::min(chunk, n - off)), t,
                                    MPI_SUM, comm_),
                      "MPI_Allreduce");
    }
    void bcast(void* d, index_t n, MPI_Datatype t, int root)
    {
        int es = 0;
        MPI_Type_size(t, &es);
        for (index_t off = 0; off < n; off += chunk)
            mpi_check(MPI_Bcast(static_cast<char*>(d) + off * es, static_cast<int>(std::min(chunk, n - off)), t, root, comm_),
                      "MPI_Bcast");
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0, size_ = 1, local_size_ = 1;
};

} // namespace convnextv2::train
