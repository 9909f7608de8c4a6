// Shared test helpers: deterministic random tensors and element-wise comparison.
#pragma once
#include <catch2/catch.hpp>
#include <convnextv2/core/rng.hpp>
#include <convnextv2/core/tensor.hpp>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <unistd.h>

namespace test {

using namespace convnextv2;

template <class T = float>
tensor<T> random_tensor(const shape_t& s, std::uint64_t seed, double lo = -1, double hi = 1)
{
    tensor<T> t(s);
    counter_rng rng(seed, 5);
    for (auto& v : t) v = static_cast<T>(rng.uniform(lo, hi));
    return t;
}

// Max |a-b| over elements; shapes must agree.
template <class A, class B>
double max_abs_diff(const A* a, const B* b, index_t n)
{
    double m = 0;
    for (index_t i = 0; i < n; ++i) {
        double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
        if (!(d <= m)) m = d;  // NaN propagates as a failure
    }
    return m;
}

template <class T, class U>
double max_abs_diff(const tensor<T>& a, const tensor<U>& b)
{
    REQUIRE(a.shape() == b.shape());
    return max_abs_diff(a.data(), b.data(), a.size());
}

// Relative error ||a-b||_2 / max(||b||_2, tiny).
template <class T, class U>
double rel_l2(const tensor<T>& a, const tensor<U>& b)
{
    REQUIRE(a.size() == b.size());
    double num = 0, den = 0;
    for (index_t i = 0; i < a.size(); ++i) {
        double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
        num += d * d;
        den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
    }
    return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// A fresh scratch directory, removed again when the object goes out of scope.
struct temp_dir {
    std::filesystem::path path;
    explicit temp_dir(const std::string& prefix = "convnextv2_test")
    {
        path = std::filesystem::temp_directory_path() / (prefix + "_" + std::to_string(::getpid()));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~temp_dir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

} // namespace test

#define REQUIRE_GRADCHECK(result)            \
    do {                                     \
        auto r_ = (result);                  \
        INFO(r_.report());                   \
        REQUIRE(r_.ok);                      \
        REQUIRE(r_.checked > 0);             \
    } while (0)
