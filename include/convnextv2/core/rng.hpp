// SPDX-License-Identifier: MIT
// Counter-based random numbers: every draw is a pure function of (seed, stream, counter), so
// initialisation, drop-path decisions, masks and augmentation are reproducible and independent
// of thread count and evaluation order.
#pragma once
#include <cmath>
#include <cstdint>

namespace convnextv2 {

// splitmix64 finaliser: a strong 64-bit mixer.
inline std::uint64_t mix64(std::uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

inline std::uint64_t hash_combine(std::uint64_t a, std::uint64_t b) { return mix64(a ^ mix64(b)); }

// A tiny stream generator seeded from a key; draws are sequential within one stream.
class counter_rng {
public:
    counter_rng() = default;
    explicit counter_rng(std::uint64_t key) : key_(mix64(key)) {}
    counter_rng(std::uint64_t seed, std::uint64_t stream) : key_(hash_combine(seed, stream)) {}

    std::uint64_t next_u64() { return mix64(key_ ^ mix64(++ctr_)); }
    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    // Uniform integer in [0, n).
    std::uint64_t below(std::uint64_t n) { return n ? next_u64() % n : 0; }
    // Standard normal (Box-Muller; one value per call for simplicity).
    double normal()
    {
        double u1 = uniform(), u2 = uniform();
        if (u1 < 1e-300) u1 = 1e-300;
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
    // Normal(0, std) resampled until |x| <= bound (absolute units, like timm's trunc_normal_).
    double trunc_normal(double std, double bound)
    {
        for (;;) {
            double v = normal() * std;
            if (std::fabs(v) <= bound) return v;
        }
    }
    std::uint64_t counter() const { return ctr_; }
    void set_counter(std::uint64_t c) { ctr_ = c; }
    std::uint64_t key() const { return key_; }

private:
    std::uint64_t key_ = 0x243f6a8885a308d3ULL;
    std::uint64_t ctr_ = 0;
};

} // namespace convnextv2
