// SPDX-License-Identifier: MIT
// Soft-target softmax cross entropy, label smoothing and top-k counting (SPEC §4.5; timm
// SoftTargetCrossEntropy / LabelSmoothingCrossEntropy):
//   loss = (1/N) Σ_n −Σ_k t[n,k]·log_softmax(z[n])_k
//   dz[n,k] = (softmax(z[n])_k·Σ_j t[n,j] − t[n,k]) / N      (= (softmax − t)/N for rows summing to 1)
// Max-subtracted log-sum-exp in double; per-sample losses are summed in index order
// (deterministic for any thread count).
#pragma once
#include "../core/parallel.hpp"

#include <cmath>
#include <vector>

namespace convnextv2::kernels {

// Returns the mean loss; writes (does not accumulate) dlogits [N,K] when not null.
template <class T>
double softmax_cross_entropy(const T* logits, index_t N, index_t K, const T* targets, T* dlogits)
{
    if (N <= 0) return 0.0;
    std::vector<double> loss(static_cast<std::size_t>(N));
    const double invN = 1.0 / static_cast<double>(N);
    parallel_for(0, N, std::max<index_t>(1, (index_t{1} << 13) / std::max<index_t>(K, 1)), [&](index_t n0, index_t n1) {
        for (index_t n = n0; n < n1; ++n) {
            const T* z = logits + n * K;
            const T* t = targets + n * K;
            double mx = static_cast<double>(z[0]);
            for (index_t k = 1; k < K; ++k) mx = std::max(mx, static_cast<double>(z[k]));
            double se = 0;
            for (index_t k = 0; k < K; ++k) se += std::exp(static_cast<double>(z[k]) - mx);
            const double lse = mx + std::log(se);
            double l = 0, st = 0;
            for (index_t k = 0; k < K; ++k) {
                const double tk = static_cast<double>(t[k]);
                l += tk * (lse - static_cast<double>(z[k]));
                st += tk;
            }
            loss[static_cast<std::size_t>(n)] = l;
            if (dlogits) {
                T* dz = dlogits + n * K;
                for (index_t k = 0; k < K; ++k)
                    dz[k] = static_cast<T>((std::exp(static_cast<double>(z[k]) - lse) * st - static_cast<double>(t[k])) * invN);
            }
        }
    });
    double s = 0;
    for (double l : loss) s += l;
    return s * invN;
}

// Smoothed one-hot targets [N,K]: on = 1 − ε + ε/K, off = ε/K.
template <class T>
void smooth_targets(const int* labels, index_t N, index_t K, double smoothing, T* targets)
{
    const double off = smoothing / static_cast<double>(K);
    const double on = 1.0 - smoothing + off;
    for (index_t n = 0; n < N; ++n) {
        for (index_t k = 0; k < K; ++k) targets[n * K + k] = static_cast<T>(off);
        targets[n * K + labels[n]] = static_cast<T>(on);
    }
}

// Number of samples whose label is among the top k logits: rank = #classes with a strictly
// greater logit than the label's; a hit when rank < k (ties favour the label).
template <class T>
index_t top_k_correct(const T* logits, index_t N, index_t K, const int* labels, index_t k)
{
    index_t hits = 0;
    for (index_t n = 0; n < N; ++n) {
        const T* z = logits + n * K;
        const T v = z[labels[n]];
        index_t rank = 0;
        for (index_t j = 0; j < K; ++j) rank += z[j] > v ? 1 : 0;
        hits += rank < k ? 1 : 0;
    }
    return hits;
}

// ---- naive twin, used only by tests: log_softmax and softmax spelled out separately ----

template <class T>
double softmax_cross_entropy_ref(const T* logits, index_t N, index_t K, const T* targets, T* dlogits)
{
    double total = 0;
    std::vector<double> p(static_cast<std::size_t>(K));
    for (index_t n = 0; n < N; ++n) {
        double mx = -INFINITY;
        for (index_t k = 0; k < K; ++k) mx = std::max(mx, static_cast<double>(logits[n * K + k]));
        double z = 0;
        for (index_t k = 0; k < K; ++k) z += std::exp(logits[n * K + k] - mx);
        for (index_t k = 0; k < K; ++k) {
            p[static_cast<std::size_t>(k)] = std::exp(logits[n * K + k] - mx) / z;
            total -= static_cast<double>(targets[n * K + k]) * std::log(p[static_cast<std::size_t>(k)]);
        }
        double st = 0;
        for (index_t k = 0; k < K; ++k) st += targets[n * K + k];
        if (dlogits)
            for (index_t k = 0; k < K; ++k)
                dlogits[n * K + k] = static_cast<T>((p[static_cast<std::size_t>(k)] * st - targets[n * K + k]) / static_cast<double>(N));
    }
    return total / static_cast<double>(N);
}

} // namespace convnextv2::kernels
