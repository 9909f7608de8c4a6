// SPDX-License-Identifier: MIT
// The one wrapper over oneTBB. No global state: callers limit threads with
// tbb::global_control / tbb::task_arena (see thread_limit below) in their own code.
// Reductions split the range into chunks whose boundaries depend only on the range and the
// chunk size (never on the thread count) and combine the partials in index order, so results
// are bit-identical for any number of threads.
#pragma once
#include "config.hpp"

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#define CONVNEXTV2_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CONVNEXTV2_TSAN 1
#endif
#endif
#ifndef CONVNEXTV2_TSAN
#define CONVNEXTV2_TSAN 0
#endif

namespace convnextv2 {

// f(lo, hi) over [begin, end) in pieces of at least `grain` items.
template <class F>
void parallel_for(index_t begin, index_t end, index_t grain, F&& f)
{
    if (end <= begin) return;
    grain = std::max<index_t>(grain, 1);
    if (end - begin <= grain) { f(begin, end); return; }
#if CONVNEXTV2_TSAN
    // Debian's libtbb is not built with ThreadSanitizer, so the fork/join edges inside its
    // scheduler are invisible to it: spell them out with atomics (ThreadSanitizer builds only).
    std::atomic<int> forked{0}, joined{0};
    forked.store(1, std::memory_order_release);
    tbb::parallel_for(tbb::blocked_range<index_t>(begin, end, grain), [&](const tbb::blocked_range<index_t>& r) {
        (void)forked.load(std::memory_order_acquire);
        f(r.begin(), r.end());
        joined.fetch_add(1, std::memory_order_release);
    });
    (void)joined.load(std::memory_order_acquire);
#else
    tbb::parallel_for(tbb::blocked_range<index_t>(begin, end, grain),
                      [&](const tbb::blocked_range<index_t>& r) { f(r.begin(), r.end()); });
#endif
}

// Number of fixed-size chunks used by deterministic reductions over n items.
inline index_t num_chunks(index_t n, index_t chunk) { return n <= 0 ? 0 : (n + chunk - 1) / chunk; }

// Calls f(chunk_index, lo, hi) for each fixed chunk of [0, n), in parallel. The caller owns one
// partial result per chunk and combines them in order afterwards (deterministic).
template <class F>
void parallel_chunks(index_t n, index_t chunk, F&& f)
{
    index_t nc = num_chunks(n, chunk);
    parallel_for(0, nc, 1, [&](index_t c0, index_t c1) {
        for (index_t c = c0; c < c1; ++c) f(c, c * chunk, std::min(n, (c + 1) * chunk));
    });
}

// Threads kernels can use here: the current arena's size, capped by any global_control limit.
inline int max_threads()
{
    const auto cap = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
    return static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(tbb::this_task_arena::max_concurrency()), cap));
}

// RAII cap on the process's TBB parallelism (0 = leave the default). Owned by a program's main.
class thread_limit {
public:
    explicit thread_limit(int n)
    {
        if (n > 0) gc_ = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                               static_cast<std::size_t>(n));
    }

private:
    std::unique_ptr<tbb::global_control> gc_;
};

} // namespace convnextv2
