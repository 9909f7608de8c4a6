// SPDX-License-Identifier: MIT
// The one place that includes xtensor (Debian's 0.24 flat header layout). xtensor is used only
// at the API boundary: our tensors are exposed as xtensor adaptors without copying, xtensor
// containers are copied in once, and .npy files are read/written through xtensor/xnpy.hpp.
#pragma once
#include "tensor.hpp"

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xnpy.hpp>
#include <xtensor/xtensor.hpp>

#include <fstream>

namespace convnextv2 {

// A no-copy xtensor view of a tensor (valid while the tensor lives and is not resized).
template <class T>
auto as_xtensor(tensor<T>& t)
{
    std::vector<std::size_t> shape(t.shape().begin(), t.shape().end());
    return xt::adapt(t.data(), static_cast<std::size_t>(t.size()), xt::no_ownership(), shape);
}

// Copies any xtensor expression (row-major) into a tensor.
template <class T, class E>
tensor<T> from_xtensor(const xt::xexpression<E>& expr)
{
    const auto& e = expr.derived_cast();
    shape_t s(e.shape().begin(), e.shape().end());
    tensor<T> t(s);
    std::size_t i = 0;
    for (auto v : e) t[static_cast<index_t>(i++)] = static_cast<T>(v);
    return t;
}

// Reads a float32 .npy file (any rank); errors name the file.
inline tensor<float> load_npy_f32(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    CONVNEXTV2_CHECK(in.good(), path, ": cannot open .npy file");
    xt::xarray<float> a;
    try {
        a = xt::load_npy<float>(in);
    } catch (const std::exception& e) {
        detail::throw_error(path.c_str(), "not a float32 .npy file (", e.what(), ")");
    }
    return from_xtensor<float>(a);
}

inline void save_npy_f32(const std::string& path, tensor<float>& t)
{
    xt::xarray<float> a = as_xtensor(t);
    xt::dump_npy(path, a);
    std::ifstream check(path, std::ios::binary);
    CONVNEXTV2_CHECK(check.good(), path, ": could not write .npy file");
}

} // namespace convnextv2
