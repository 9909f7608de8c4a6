// SPDX-License-Identifier: MIT
// Linear (pointwise conv) kernels over row-major [M, K] activations, W in PyTorch layout [N, K]:
//   fwd:         y[M,N]  = x · Wᵀ + b
//   bwd_data:    dx[M,K] += dy · W
//   bwd_weight:  dW[N,K] += dyᵀ · x,  db[N] += Σ_m dy[m,:]
// float on AVX-512 targets: the register-tile kernel of gemm_avx512.hpp; otherwise Eigen does the
// matrix work, single-threaded per tile, tiles in parallel on oneTBB. bwd_weight reduces over M in
// fixed chunks combined in order (deterministic for any thread count).
#pragma once
#include "../core/parallel.hpp"
#include "gemm_avx512.hpp"

#include <type_traits>

#include <Eigen/Core>
#include <vector>

namespace convnextv2::kernels {

template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using cmap = Eigen::Map<const row_matrix<T>>;
template <class T>
using mmap = Eigen::Map<row_matrix<T>>;

// Rows per parallel tile: a few tiles per thread, so each Eigen call packs the weight matrix
// once for many rows (packing per small tile cost more than the multiply at ConvNeXt's
// small-K shapes). Results do not depend on the tiling (no reduction across tiles).
inline index_t gemm_tile_rows(index_t M, index_t K, index_t N)
{
    const index_t tiles = std::max<index_t>(1, 3 * static_cast<index_t>(max_threads()));
    index_t rows = (M + tiles - 1) / tiles;
    const index_t min_rows = std::max<index_t>(16, (index_t{1} << 16) / std::max<index_t>(K * N, 1));
    return std::max(rows, min_rows);
}


template <class T>
void linear_fwd(const T* x, index_t M, index_t K, const T* W, const T* b, index_t N, T* y)
{
#if CONVNEXTV2_AVX512_GEMM
    if constexpr (std::is_same_v<T, float>) { avx512::linear_fwd(x, M, K, W, b, N, y); return; }
#endif
    cmap<T> w(W, N, K);
    parallel_for(0, M, gemm_tile_rows(M, K, N), [&](index_t m0, index_t m1) {
        cmap<T> xs(x + m0 * K, m1 - m0, K);
        mmap<T> ys(y + m0 * N, m1 - m0, N);
        ys.noalias() = xs * w.transpose();
        if (b) ys.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(b, N);
    });
}

// dx[M, K] += dy[M, N] · W  (accumulate = false: dx = dy · W, its old contents unread).
template <class T>
void linear_bwd_data(const T* dy, index_t M, index_t N, const T* W, index_t K, T* dx, bool accumulate = true)
{
#if CONVNEXTV2_AVX512_GEMM
    if constexpr (std::is_same_v<T, float>) { avx512::linear_bwd_data(dy, M, N, W, K, dx, accumulate); return; }
#endif
    cmap<T> w(W, N, K);
    parallel_for(0, M, gemm_tile_rows(M, K, N), [&](index_t m0, index_t m1) {
        cmap<T> g(dy + m0 * N, m1 - m0, N);
        mmap<T> d(dx + m0 * K, m1 - m0, K);
        if (accumulate) d.noalias() += g * w;
        else d.noalias() = g * w;
    });
}

// Chunk length over M for the weight-gradient reduction: depends on M only (determinism),
// at most 16 partial [N,K] buffers.
inline index_t gemm_reduce_chunk(index_t M) { return std::max<index_t>(1024, (M + 15) / 16); }

template <class T>
void linear_bwd_weight(const T* dy, const T* x, index_t M, index_t K, index_t N, T* dW, T* db)
{
    const index_t chunk = gemm_reduce_chunk(M);
    const index_t nc = num_chunks(M, chunk);
#if CONVNEXTV2_AVX512_GEMM
    if constexpr (std::is_same_v<T, float>) {
        // The register tile runs faster with the longer side (4C) along its 32 columns, so when
        // N < K the kernel computes dWᵀ = xᵀ·dy [K, N] and adds it transposed (measured in bench_limits).
        const bool swap = N < K;
        const index_t rows = swap ? K : N;
        auto grad = [&](index_t m0, index_t m1, index_t r0, index_t r1, T* out, bool acc) {
            if (swap) avx512::weight_grad_rows(x, dy, m0, m1, N, K, r0, r1, out, acc);
            else avx512::weight_grad_rows(dy, x, m0, m1, K, N, r0, r1, out, acc);
        };
        auto add_into_dW = [&](const T* p) {
            if (!swap) { for (index_t i = 0; i < N * K; ++i) dW[i] += p[i]; return; }
            for (index_t n = 0; n < N; ++n)
                for (index_t k = 0; k < K; ++k) dW[n * K + k] += p[k * N + n];
        };
        auto bias_sum = [&](index_t m0, index_t m1, T* out) {
            for (index_t m = m0; m < m1; ++m)
                for (index_t n = 0; n < N; ++n) out[n] += dy[m * N + n];
        };
        if (nc <= 1) {  // one reduction chunk: split the output rows over the threads instead
            std::vector<T> p(swap ? static_cast<std::size_t>(N * K) : 0);
            T* out = swap ? p.data() : dW;
            parallel_for(0, (rows + avx512::mr - 1) / avx512::mr, 1, [&](index_t t0, index_t t1) {
                grad(0, M, t0 * avx512::mr, std::min(rows, t1 * avx512::mr), out, !swap);
            });
            if (swap) add_into_dW(p.data());
            if (db) bias_sum(0, M, db);
            return;
        }
        std::vector<std::vector<T>> pw(static_cast<std::size_t>(nc)), pb(static_cast<std::size_t>(nc));
        parallel_chunks(M, chunk, [&](index_t c, index_t m0, index_t m1) {
            auto& w = pw[static_cast<std::size_t>(c)];
            w.resize(static_cast<std::size_t>(N * K));
            grad(m0, m1, 0, rows, w.data(), false);
            if (db) { pb[static_cast<std::size_t>(c)].assign(static_cast<std::size_t>(N), T(0)); bias_sum(m0, m1, pb[static_cast<std::size_t>(c)].data()); }
        });
        for (auto& w : pw) add_into_dW(w.data());
        if (db)
            for (auto& b : pb)
                for (index_t n = 0; n < N; ++n) db[n] += b[static_cast<std::size_t>(n)];
        return;
    }
#endif
    if (nc <= 1) {
        mmap<T>(dW, N, K).noalias() += cmap<T>(dy, M, N).transpose() * cmap<T>(x, M, K);
        if (db) Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(db, N) += cmap<T>(dy, M, N).colwise().sum();
        return;
    }
    std::vector<row_matrix<T>> pw(static_cast<std::size_t>(nc));
    std::vector<Eigen::Matrix<T, 1, Eigen::Dynamic>> pb(static_cast<std::size_t>(nc));
    parallel_chunks(M, chunk, [&](index_t c, index_t m0, index_t m1) {
        cmap<T> g(dy + m0 * N, m1 - m0, N);
        pw[c].noalias() = g.transpose() * cmap<T>(x + m0 * K, m1 - m0, K);
        if (db) pb[c] = g.colwise().sum();
    });
    mmap<T> w(dW, N, K);
    for (auto& p : pw) w += p;
    if (db) {
        Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> bb(db, N);
        for (auto& p : pb) bb += p;
    }
}

// ---- naive twins, used only by tests ----

template <class T>
void linear_fwd_ref(const T* x, index_t M, index_t K, const T* W, const T* b, index_t N, T* y)
{
    for (index_t m = 0; m < M; ++m)
        for (index_t n = 0; n < N; ++n) {
            double s = b ? static_cast<double>(b[n]) : 0.0;
            for (index_t k = 0; k < K; ++k) s += static_cast<double>(x[m * K + k]) * W[n * K + k];
            y[m * N + n] = static_cast<T>(s);
        }
}

template <class T>
void linear_bwd_data_ref(const T* dy, index_t M, index_t N, const T* W, index_t K, T* dx)
{
    for (index_t m = 0; m < M; ++m)
        for (index_t k = 0; k < K; ++k) {
            double s = 0;
            for (index_t n = 0; n < N; ++n) s += static_cast<double>(dy[m * N + n]) * W[n * K + k];
            dx[m * K + k] += static_cast<T>(s);
        }
}

template <class T>
void linear_bwd_weight_ref(const T* dy, const T* x, index_t M, index_t K, index_t N, T* dW, T* db)
{
    for (index_t n = 0; n < N; ++n) {
        for (index_t k = 0; k < K; ++k) {
            double s = 0;
            for (index_t m = 0; m < M; ++m) s += static_cast<double>(dy[m * N + n]) * x[m * K + k];
            dW[n * K + k] += static_cast<T>(s);
        }
        if (db) {
            double s = 0;
            for (index_t m = 0; m < M; ++m) s += dy[m * N + n];
            db[n] += static_cast<T>(s);
        }
    }
}

} // namespace convnextv2::kernels
