// SPDX-License-Identifier: MIT
// tensor<T>: an owning, 64-byte-aligned, contiguous row-major array (NHWC for activations).
// tensor_view<T>: a non-owning pointer + shape over the same layout (cheap sub-batch views).
// resize() keeps the buffer when the element count does not grow, so activation buffers are
// reused across steps without allocation.
#pragma once
#include "shape.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

namespace convnextv2 {

namespace detail {
struct aligned_free {
    void operator()(void* p) const noexcept { std::free(p); }
};
inline void* aligned_alloc_bytes(std::size_t bytes)
{
    std::size_t rounded = (bytes + tensor_alignment - 1) / tensor_alignment * tensor_alignment;
    void* p = std::aligned_alloc(tensor_alignment, std::max<std::size_t>(rounded, tensor_alignment));
    if (!p) throw std::bad_alloc();
    return p;
}
} // namespace detail

template <class T>
struct tensor_view {
    T* data = nullptr;
    shape_t shape;

    index_t size() const { return numel(shape); }
    index_t dim(int i) const { return shape[static_cast<std::size_t>(i < 0 ? i + static_cast<int>(shape.size()) : i)]; }
    int rank() const { return static_cast<int>(shape.size()); }
    T& operator[](index_t i) const { return data[i]; }
    T* begin() const { return data; }
    T* end() const { return data + size(); }
};

template <class T>
class tensor {
public:
    using value_type = T;

    tensor() = default;
    explicit tensor(shape_t s) { resize(std::move(s)); }
    tensor(shape_t s, T fill) { resize(std::move(s)); this->fill(fill); }

    tensor(const tensor& o) : tensor(o.shape_) { std::copy(o.begin(), o.end(), begin()); }
    tensor& operator=(const tensor& o)
    {
        if (this != &o) { resize(o.shape_); std::copy(o.begin(), o.end(), begin()); }
        return *this;
    }
    // A moved-from tensor is empty (shape {}, no buffer), not a shape without storage.
    tensor(tensor&& o) noexcept
        : buf_(std::move(o.buf_)), shape_(std::move(o.shape_)), size_(o.size_), capacity_(o.capacity_)
    {
        o.shape_.clear();
        o.size_ = o.capacity_ = 0;
    }
    tensor& operator=(tensor&& o) noexcept
    {
        if (this != &o) {
            buf_ = std::move(o.buf_);
            shape_ = std::move(o.shape_);
            size_ = o.size_;
            capacity_ = o.capacity_;
            o.shape_.clear();
            o.size_ = o.capacity_ = 0;
        }
        return *this;
    }

    // Sets the shape; reallocates only when the element count exceeds the capacity.
    // Contents are unspecified after a resize that changes the shape.
    void resize(shape_t s)
    {
        index_t n = numel(s);
        CONVNEXTV2_CHECK(n >= 0, "tensor: negative extent in ", to_string(s));
        if (n > capacity_) {
            buf_.reset(static_cast<T*>(detail::aligned_alloc_bytes(sizeof(T) * static_cast<std::size_t>(n))));
            capacity_ = n;
        }
        shape_ = std::move(s);
        size_ = n;
    }
    void resize_like(const tensor& o) { if (shape_ != o.shape_) resize(o.shape_); }
    // Same element count, new shape (no data movement).
    void reshape(shape_t s)
    {
        CONVNEXTV2_CHECK(numel(s) == size_, "tensor: cannot reshape ", to_string(shape_), " to ", to_string(s));
        shape_ = std::move(s);
    }

    void fill(T v) { std::fill(begin(), end(), v); }
    void zero() { if (size_) std::memset(static_cast<void*>(data()), 0, sizeof(T) * static_cast<std::size_t>(size_)); }

    T* data() { return buf_.get(); }
    const T* data() const { return buf_.get(); }
    T* begin() { return data(); }
    T* end() { return data() + size_; }
    const T* begin() const { return data(); }
    const T* end() const { return data() + size_; }
    T& operator[](index_t i) { return data()[i]; }
    const T& operator[](index_t i) const { return data()[i]; }

    const shape_t& shape() const { return shape_; }
    index_t size() const { return size_; }
    // Elements the buffer can hold without reallocating.
    index_t capacity() const { return capacity_; }
    int rank() const { return static_cast<int>(shape_.size()); }
    index_t dim(int i) const { return shape_[static_cast<std::size_t>(i < 0 ? i + rank() : i)]; }
    bool empty() const { return size_ == 0; }

    tensor_view<T> view() { return {data(), shape_}; }
    tensor_view<const T> view() const { return {data(), shape_}; }
    // Samples [n0, n0+count) along axis 0, without copying.
    tensor_view<T> batch_slice(index_t n0, index_t count)
    {
        shape_t s = shape_;
        index_t per = size_ / std::max<index_t>(shape_[0], 1);
        s[0] = count;
        return {data() + n0 * per, s};
    }

private:
    std::unique_ptr<T, detail::aligned_free> buf_;
    shape_t shape_;
    index_t size_ = 0;
    index_t capacity_ = 0;
};

// Converts between scalar types (e.g. float weights into a double model for gradient checks).
template <class To, class From>
tensor<To> tensor_cast(const tensor<From>& src)
{
    tensor<To> r(src.shape());
    std::transform(src.begin(), src.end(), r.begin(), [](From v) { return static_cast<To>(v); });
    return r;
}

} // namespace convnextv2
