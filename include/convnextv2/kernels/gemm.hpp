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
#include "gemm_bf16.hpp"

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


// Rows of for_row_blocks's blocks: about 128 KB of N-wide rows, a multiple of 96 (the GEMM's row block).
inline index_t row_block_rows(index_t N) { return 96 * std::max<index_t>(1, (index_t{1} << 15) / (96 * std::max<index_t>(N, 1))); }

// f(m0, m1) on consecutive blocks of row_block_rows(N) rows, in parallel; each call gets one block,
// however the scheduler splits the range.
template <class F>
void for_row_blocks(index_t M, index_t N, F&& f)
{
    const index_t rows = row_block_rows(N);
    parallel_for(0, num_chunks(M, rows), 1, [&](index_t b0, index_t b1) {
        for (index_t b = b0; b < b1; ++b) f(b * rows, std::min(M, (b + 1) * rows));
    });
}

#if CONVNEXTV2_BF16_GEMM
namespace detail {
// The bf16 products of gemm_bf16.hpp, when switched on. Forward and data gradient keep the float
// path where they would pack a weight larger than the activations (the few-row shapes).
inline bool use_bf16() { return get_matmul_precision() == matmul_precision::bf16; }
inline bool use_bf16_rows(index_t M, index_t K, index_t N) { return use_bf16() && M * (K + N) >= N * K; }

// W [N, K] and b packed for the bf16 forward (pointers into the calling thread's thread_locals,
// valid until its next call; workers only read them).
struct bf16_fwd_weight {
    const std::uint32_t* w;
    const float* bias;  // padded to whole panels, or null
    index_t K, N;
};
inline bf16_fwd_weight pack_weight_for_fwd(const float* W, const float* b, index_t N, index_t K)
{
    thread_local std::vector<std::uint32_t> packed;
    thread_local std::vector<float> bias_pad;
    bf16::pack_weight(W, N, K, packed);
    bias_pad = avx512::pad_bias(b, N, false);
    return {packed.data(), bias_pad.empty() ? nullptr : bias_pad.data(), K, N};
}

// Rows [m0, m1) of y[M, N] = x[M, K] · Wᵀ + b.
inline void fwd_rows_bf16(const bf16_fwd_weight& p, index_t m0, index_t m1, const float* x, float* y)
{
    bf16::gemm_rows(m0, m1, x, p.K, p.w, (p.K + 1) / 2 * avx512::nr, avx512::nr, p.N, y, p.bias, false);
}

// y = x · Wᵀ + b, then epi(m0, m1) on each finished block of rows.
template <class Epi>
void linear_fwd_bf16(const float* x, index_t M, index_t K, const float* W, const float* b, index_t N, float* y, Epi&& epi)
{
    const bf16_fwd_weight p = pack_weight_for_fwd(W, b, N, K);
    for_row_blocks(M, N, [&](index_t m0, index_t m1) {
        fwd_rows_bf16(p, m0, m1, x, y);
        epi(m0, m1);
    });
}

// W [N, K] as the pair words of the data gradient's B(n, k) = W[n, k] (pairs along n).
// Into `packed` (a caller that holds two packed weights at once passes its own buffer), or into
// this thread's buffer, which the next call without one overwrites.
inline const std::uint32_t* pack_weight_for_data_grad(const float* W, index_t N, index_t K, std::vector<std::uint32_t>& packed)
{
    packed.resize(static_cast<std::size_t>((N + 1) / 2 * bf16::padded_cols(K)));
    bf16::interleave_rows(W, N, K, K, packed.data());
    return packed.data();
}
inline const std::uint32_t* pack_weight_for_data_grad(const float* W, index_t N, index_t K)
{
    thread_local std::vector<std::uint32_t> packed;
    return pack_weight_for_data_grad(W, N, K, packed);
}

// Rows [m0, m1) of dx[M, K] (+)= dy[M, N] · W from pack_weight_for_data_grad's words.
inline void data_grad_rows_bf16(index_t m0, index_t m1, const float* dy, index_t N, const std::uint32_t* wp, index_t K,
                                float* dx, bool accumulate)
{
    bf16::gemm_rows(m0, m1, dy, N, wp, avx512::nr, bf16::padded_cols(K), K, dx, nullptr, accumulate);
}

// out[R, C] (+)= a[rows, R]ᵀ · b[rows, C], output rows [r0, r1) split over the threads when `parallel`.
// aw: a already in interleave_rows's words (then a is not read), e.g. kept by the forward.
inline void tn_bf16(const float* a, const std::uint32_t* aw, index_t R, const float* b, index_t C, index_t rows, float* out,
                    bool accumulate, bool parallel)
{
    thread_local std::vector<std::uint32_t> pa, pb;
    const index_t pairs = (rows + 1) / 2;
    if (!aw) {
        pa.resize(static_cast<std::size_t>(pairs * bf16::padded_cols(R)));
        bf16::interleave_rows(a, rows, R, R, pa.data());
    }
    pb.resize(static_cast<std::size_t>(pairs * bf16::padded_cols(C)));
    bf16::interleave_rows(b, rows, C, C, pb.data());
    const std::uint32_t *A = aw ? aw : pa.data(), *B = pb.data();  // the caller's thread_locals, not the workers'
    if (!parallel) { bf16::tn_rows(pairs, A, R, B, C, 0, R, out, accumulate); return; }
    parallel_for(0, (R + avx512::mr - 1) / avx512::mr, 1, [&](index_t t0, index_t t1) {
        bf16::tn_rows(pairs, A, R, B, C, t0 * avx512::mr, std::min(R, t1 * avx512::mr), out, accumulate);
    });
}
} // namespace detail
#endif

template <class T>
void linear_fwd(const T* x, index_t M, index_t K, const T* W, const T* b, index_t N, T* y)
{
#if CONVNEXTV2_BF16_GEMM
    if constexpr (std::is_same_v<T, float>)
        if (detail::use_bf16_rows(M, K, N)) { detail::linear_fwd_bf16(x, M, K, W, b, N, y, [](index_t, index_t) {}); return; }
#endif
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
#if CONVNEXTV2_BF16_GEMM
    if constexpr (std::is_same_v<T, float>)
        if (detail::use_bf16_rows(M, N, K)) {
            const std::uint32_t* wp = detail::pack_weight_for_data_grad(W, N, K);
            for_row_blocks(M, K, [&](index_t m0, index_t m1) { detail::data_grad_rows_bf16(m0, m1, dy, N, wp, K, dx, accumulate); });
            return;
        }
#endif
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

namespace detail {
// One reduction chunk's share of the weight gradient: out (+)= dy[rows, N]ᵀ · x[rows, K] and
// bias (+)= Σ_rows dy; the first call of a chunk assigns (acc = false), later calls on the chunk's
// following rows add, in row order. On AVX-512 the register tile runs faster with the longer side
// (4C) along its 32 columns, so when N < K `out` holds dWᵀ [K, N] (measured in bench_limits);
// add_weight_partials undoes that.
template <class T>
inline bool weight_partial_swapped(index_t N, index_t K)
{
#if CONVNEXTV2_AVX512_GEMM
    if constexpr (std::is_same_v<T, float>) return N < K;
#endif
    (void)N, (void)K;
    return false;
}

// xw (bf16 products, N < K only): x's rows already as interleave_rows words, x itself unread.
template <class T>
void weight_partial(const T* dy, const T* x, index_t rows, index_t K, index_t N, T* out, T* bias, bool acc,
                    const std::uint32_t* xw = nullptr)
{
    if (bias) {
        if (!acc) std::fill(bias, bias + N, T(0));
        for (index_t m = 0; m < rows; ++m)
            for (index_t n = 0; n < N; ++n) bias[n] += dy[m * N + n];
    }
#if CONVNEXTV2_BF16_GEMM
    if constexpr (std::is_same_v<T, float>)
        if (use_bf16()) {
            if (N < K) tn_bf16(x, xw, K, dy, N, rows, out, acc, false);
            else tn_bf16(dy, nullptr, N, x, K, rows, out, acc, false);
            return;
        }
#endif
#if CONVNEXTV2_AVX512_GEMM
    if constexpr (std::is_same_v<T, float>) {
        if (N < K) avx512::weight_grad_rows(x, dy, 0, rows, N, K, 0, K, out, acc);
        else avx512::weight_grad_rows(dy, x, 0, rows, K, N, 0, N, out, acc);
        return;
    }
#endif
    mmap<T> o(out, N, K);
    if (acc) o.noalias() += cmap<T>(dy, rows, N).transpose() * cmap<T>(x, rows, K);
    else o.noalias() = cmap<T>(dy, rows, N).transpose() * cmap<T>(x, rows, K);
}

// dW += the partials in chunk order (deterministic for any thread count); db likewise.
template <class T>
void add_weight_partials(const std::vector<std::vector<T>>& pw, const std::vector<std::vector<T>>& pb, index_t N, index_t K,
                         T* dW, T* db)
{
    const bool swap = weight_partial_swapped<T>(N, K);
    for (const auto& p : pw) {
        if (!swap)
            for (index_t i = 0; i < N * K; ++i) dW[i] += p[static_cast<std::size_t>(i)];
        else
            for (index_t n = 0; n < N; ++n)
                for (index_t k = 0; k < K; ++k) dW[n * K + k] += p[static_cast<std::size_t>(k * N + n)];
    }
    if (db)
        for (const auto& b : pb)
            for (index_t n = 0; n < N; ++n) db[n] += b[static_cast<std::size_t>(n)];
}
} // namespace detail

// xw: see weight_partial (x as bf16 pair words [ceil(M/2)][padded_cols(K)]; needs even chunks).
template <class T>
void linear_bwd_weight(const T* dy, const T* x, index_t M, index_t K, index_t N, T* dW, T* db, const std::uint32_t* xw = nullptr)
{
    const index_t chunk = gemm_reduce_chunk(M);
    const index_t nc = num_chunks(M, chunk);
#if CONVNEXTV2_AVX512_GEMM
    if constexpr (std::is_same_v<T, float>) {
        if (nc <= 1) {  // one reduction chunk: split the output rows over the threads instead
            const bool swap = N < K;
            const index_t rows = swap ? K : N;
            std::vector<T> p(swap ? static_cast<std::size_t>(N * K) : 0);
            T* out = swap ? p.data() : dW;
#if CONVNEXTV2_BF16_GEMM
            if (detail::use_bf16()) {
                if (swap) detail::tn_bf16(x, xw, K, dy, N, M, out, false, true);
                else detail::tn_bf16(dy, nullptr, N, x, K, M, out, true, true);
            } else
#endif
            parallel_for(0, (rows + avx512::mr - 1) / avx512::mr, 1, [&](index_t t0, index_t t1) {
                const index_t r0 = t0 * avx512::mr, r1 = std::min(rows, t1 * avx512::mr);
                if (swap) avx512::weight_grad_rows(x, dy, 0, M, N, K, r0, r1, out, false);
                else avx512::weight_grad_rows(dy, x, 0, M, K, N, r0, r1, out, true);
            });
            if (db)
                for (index_t m = 0; m < M; ++m)
                    for (index_t n = 0; n < N; ++n) db[n] += dy[m * N + n];
            if (swap) detail::add_weight_partials<T>({std::move(p)}, {}, N, K, dW, nullptr);
            return;
        }
    }
#endif
    if (nc <= 1) {
        mmap<T>(dW, N, K).noalias() += cmap<T>(dy, M, N).transpose() * cmap<T>(x, M, K);
        if (db) Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(db, N) += cmap<T>(dy, M, N).colwise().sum();
        return;
    }
    std::vector<std::vector<T>> pw(static_cast<std::size_t>(nc)), pb(static_cast<std::size_t>(db ? nc : 0));
    parallel_chunks(M, chunk, [&](index_t c, index_t m0, index_t m1) {
        auto& w = pw[static_cast<std::size_t>(c)];
        w.resize(static_cast<std::size_t>(N * K));
        T* bias = nullptr;
        if (db) { pb[static_cast<std::size_t>(c)].resize(static_cast<std::size_t>(N)); bias = pb[static_cast<std::size_t>(c)].data(); }
        const std::uint32_t* xwc = nullptr;
#if CONVNEXTV2_BF16_GEMM
        if (xw) xwc = xw + m0 / 2 * bf16::padded_cols(K);
#endif
        detail::weight_partial(dy + m0 * N, xw ? nullptr : x + m0 * K, m1 - m0, K, N, w.data(), bias, false, xwc);
    });
    detail::add_weight_partials(pw, pb, N, K, dW, db);
}

// ---- a linear fused with its elementwise neighbour (pwconv1 + GELU) ----
// Each works on blocks of whole rows, so the elementwise pass reads what the GEMM just wrote (or
// writes what it is about to read) while it is still in L2, instead of another pass over memory.
// Numbers equal the unfused calls: the tiles and the reduction order are the same.

// linear_fwd, then epi(m0, m1) on each finished block of whole rows of y.
template <class T, class Epi>
void linear_fwd_then(const T* x, index_t M, index_t K, const T* W, const T* b, index_t N, T* y, Epi&& epi)
{
#if CONVNEXTV2_BF16_GEMM
    if constexpr (std::is_same_v<T, float>)
        if (detail::use_bf16_rows(M, K, N)) { detail::linear_fwd_bf16(x, M, K, W, b, N, y, epi); return; }
#endif
#if CONVNEXTV2_AVX512_GEMM
    if constexpr (std::is_same_v<T, float>) {
        if (M * (K + N) < N * K) {  // few rows: the transposed product, then the epilogue
            avx512::linear_fwd(x, M, K, W, b, N, y);
            for_row_blocks(M, N, epi);
            return;
        }
        thread_local std::vector<float> packed;
        avx512::pack_panels(W, K, N, 1, K, packed);  // B(k, n) = W[n, k]
        const std::vector<float> bias_pad = avx512::pad_bias(b, N, false);
        const float* bpad = bias_pad.empty() ? nullptr : bias_pad.data();
        const index_t panels = (N + avx512::nr - 1) / avx512::nr;
        const float* bp = packed.data();  // the caller's thread_local, not the workers'
        for_row_blocks(M, N, [&](index_t m0, index_t m1) {
            avx512::gemm_rows(m0, m1, 0, panels, N, K, x, K, 1, bp, y, N, bpad, false);
            epi(m0, m1);
        });
        return;
    }
#endif
    cmap<T> w(W, N, K);
    parallel_for(0, M, gemm_tile_rows(M, K, N), [&](index_t m0, index_t m1) {
        mmap<T> ys(y + m0 * N, m1 - m0, N);
        ys.noalias() = cmap<T>(x + m0 * K, m1 - m0, K) * w.transpose();
        if (b) ys.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(b, N);
        epi(m0, m1);
    });
}

// Rows of linear_bwd_from's blocks inside a reduction chunk: about 256 KB of N-wide rows, a
// multiple of 128 (the bf16 weight gradient's pass).
inline index_t bwd_from_block_rows(index_t N) { return 128 * std::max<index_t>(1, (index_t{1} << 16) / (128 * std::max<index_t>(N, 1))); }

// linear_bwd_weight + linear_bwd_data for a dy that exists only block by block: make_dy(m0, m1, g)
// writes rows [m0, m1) of dL/dy into g ([m1 - m0, N]) right before the two products read them.
// Blocks are 128-row multiples inside each reduction chunk, so the weight gradient sums in the
// order linear_bwd_weight uses.
template <class T, class MakeDy>
void linear_bwd_from(MakeDy&& make_dy, const T* x, index_t M, index_t K, index_t N, const T* W, T* dW, T* db, T* dx,
                     bool accumulate)
{
    const index_t chunk = gemm_reduce_chunk(M);
    const index_t nc = num_chunks(M, chunk);
    thread_local std::vector<T> whole;
    if (nc <= 1) {  // one reduction chunk: make all of dy, then the plain products
        whole.resize(static_cast<std::size_t>(M * N));
        T* g = whole.data();  // the caller's thread_local, not the workers'
        for_row_blocks(M, N, [&](index_t m0, index_t m1) { make_dy(m0, m1, g + m0 * N); });
        linear_bwd_weight(g, x, M, K, N, dW, db);
        if (dx) linear_bwd_data(g, M, N, W, K, dx, accumulate);
        return;
    }
    const index_t block = bwd_from_block_rows(N);
    std::vector<std::vector<T>> pw(static_cast<std::size_t>(nc)), pb(static_cast<std::size_t>(db ? nc : 0));
#if CONVNEXTV2_BF16_GEMM
    [[maybe_unused]] const std::uint32_t* wp = nullptr;  // the bf16 data gradient's packed weight, when on
    if constexpr (std::is_same_v<T, float>)
        if (dx && detail::use_bf16()) wp = detail::pack_weight_for_data_grad(W, N, K);
#endif
#if CONVNEXTV2_AVX512_GEMM
    thread_local std::vector<float> packed;
    if constexpr (std::is_same_v<T, float>) avx512::pack_panels(W, N, K, K, 1, packed);  // B(n, k) = W[n, k]
    const float* bp = packed.data();  // the caller's thread_local, not the workers'
#endif
    parallel_chunks(M, chunk, [&](index_t c, index_t m0, index_t m1) {
        thread_local std::vector<T> g;
        g.resize(static_cast<std::size_t>(block * N));
        auto& w = pw[static_cast<std::size_t>(c)];
        w.resize(static_cast<std::size_t>(N * K));
        T* bias = nullptr;
        if (db) { pb[static_cast<std::size_t>(c)].resize(static_cast<std::size_t>(N)); bias = pb[static_cast<std::size_t>(c)].data(); }
        for (index_t s0 = m0; s0 < m1; s0 += block) {
            const index_t rows = std::min(block, m1 - s0);
            make_dy(s0, s0 + rows, g.data());
            detail::weight_partial(g.data(), x + s0 * K, rows, K, N, w.data(), bias, s0 > m0);
            if (!dx) continue;
#if CONVNEXTV2_BF16_GEMM
            if constexpr (std::is_same_v<T, float>)
                if (wp) { detail::data_grad_rows_bf16(0, rows, g.data(), N, wp, K, dx + s0 * K, accumulate); continue; }
#endif
#if CONVNEXTV2_AVX512_GEMM
            if constexpr (std::is_same_v<T, float>) {
                avx512::gemm_rows(0, rows, 0, (K + avx512::nr - 1) / avx512::nr, K, N, g.data(), N, 1, bp, dx + s0 * K, K,
                                  nullptr, accumulate);
                continue;
            }
#endif
            mmap<T> d(dx + s0 * K, rows, K);
            if (accumulate) d.noalias() += cmap<T>(g.data(), rows, N) * cmap<T>(W, N, K);
            else d.noalias() = cmap<T>(g.data(), rows, N) * cmap<T>(W, N, K);
        }
    });
    detail::add_weight_partials(pw, pb, N, K, dW, db);
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
