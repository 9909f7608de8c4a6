// SPDX-License-Identifier: MIT
// Scratch buffers for the gradients that flow between the parts of a composite during backward.
// Each such gradient lives only from the backward of the part that produces it to the backward
// of the part that consumes it, so the composites borrow them here and hand them back at once:
// a whole model's backward then holds a handful of buffers (the largest stage's) instead of one
// per intermediate activation, and the steady state allocates nothing. One pool per thread that
// runs a backward (kernels called from inside do not use it).
#pragma once
#include "parallel.hpp"
#include "tensor.hpp"

#include <cstring>
#include <vector>

namespace convnextv2 {

// Zero-fills n elements on the worker threads (a serial memset of a 50 MB buffer does not use
// the second core).
template <class T>
void parallel_zero(T* p, index_t n)
{
    parallel_for(0, n, index_t{1} << 16, [p](index_t lo, index_t hi) {
        std::memset(static_cast<void*>(p + lo), 0, sizeof(T) * static_cast<std::size_t>(hi - lo));
    });
}

template <class T>
class grad_pool {
public:
    static grad_pool& local()
    {
        thread_local grad_pool pool;
        return pool;
    }

    // A tensor of shape s, zero-filled unless `zero` is false (then its contents are whatever the
    // buffer held): the smallest free buffer that holds it, else the largest free one grown to fit
    // (so the pool stays at the most buffers ever in use at once).
    tensor<T> acquire(const shape_t& s, bool zero = true)
    {
        const index_t n = numel(s);
        std::size_t best = free_.size(), largest = free_.size();
        for (std::size_t i = 0; i < free_.size(); ++i) {
            const index_t c = free_[i].capacity();
            if (c >= n && (best == free_.size() || c < free_[best].capacity())) best = i;
            if (largest == free_.size() || c > free_[largest].capacity()) largest = i;
        }
        if (best == free_.size()) best = largest;
        tensor<T> t;
        if (best != free_.size()) {
            t = std::move(free_[best]);
            free_[best] = std::move(free_.back());
            free_.pop_back();
        }
        t.resize(s);
        if (zero) parallel_zero(t.data(), t.size());
        return t;
    }

    // Takes t's buffer back; t is left empty.
    void release(tensor<T>& t)
    {
        if (t.capacity() > 0) free_.push_back(std::move(t));
        t = tensor<T>();
    }

    // Bytes held by free buffers (for memory reports and tests).
    std::size_t bytes_free() const
    {
        std::size_t b = 0;
        for (const auto& t : free_) b += sizeof(T) * static_cast<std::size_t>(t.capacity());
        return b;
    }
    std::size_t buffers_free() const { return free_.size(); }

    // Returns every free buffer to the allocator.
    void clear() { free_.clear(); }

private:
    std::vector<tensor<T>> free_;
};

} // namespace convnextv2
