// SPDX-License-Identifier: MIT
// Single-precision GEMM for the pointwise layers with an AVX-512 register tile (12 rows x 32
// columns = 24 accumulators). Eigen's blocking reaches only a third of this machine's FMA peak
// at ConvNeXt's small K (40, 80), so the float path of kernels/gemm.hpp comes here when the
// compiler targets AVX-512; other scalar types and targets keep Eigen (as does defining
// CONVNEXTV2_NO_AVX512_GEMM, for comparisons).
//
// One micro-kernel serves all three products by taking A through strides: A(i, r) is
// a[i * rs + r * cs]. Forward and data-gradient read A = activations row-major and B = the
// weight packed into zero-padded 32-column panels; the weight gradient reads A = dyᵀ (column
// access, contiguous across the tile's 12 rows) and B = x rows in place, masked at the edge.
#pragma once
#if defined(__AVX512F__) && !defined(CONVNEXTV2_NO_AVX512_GEMM)
#define CONVNEXTV2_AVX512_GEMM 1
#else
#define CONVNEXTV2_AVX512_GEMM 0
#endif
#if CONVNEXTV2_AVX512_GEMM
#include "../core/parallel.hpp"

#include <immintrin.h>

#include <algorithm>
#include <vector>

namespace convnextv2::kernels::avx512 {

inline constexpr int mr = 12;        // rows per register tile
inline constexpr int nr = 32;        // columns per register tile (two vectors)
inline constexpr index_t kc = 256;   // reduction depth per pass: a 12 x 256 A slice stays in L1

inline __mmask16 tail_mask(index_t cols) // first `cols` lanes (cols may exceed 16)
{
    return cols >= 16 ? __mmask16(0xFFFF) : cols <= 0 ? __mmask16(0) : __mmask16((1u << cols) - 1u);
}

// c[i, 0:16*NV] = (accumulate ? c : bias) + sum_r A(i, r) B(r, 0:16*NV) for i < MR; lanes
// outside the masks (m0: columns 0-15, m1: 16-31) are neither read from B nor written to C.
template <int MR, int NV>
inline void tile(index_t depth, const float* a, index_t rs, index_t cs, const float* b, index_t ldb,
                 __mmask16 m0, __mmask16 m1, float* c, index_t ldc, const float* bias, bool accumulate)
{
    static_assert(NV == 1 || NV == 2, "a register tile is one or two vectors wide");
    const __mmask16 m[2] = {m0, m1};
    __m512 acc[NV][MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v) acc[v][i] = _mm512_setzero_ps();
    for (index_t r = 0; r < depth; ++r) {
        __m512 bv[NV];
        for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(m[v], b + r * ldb + 16 * v);
        const float* ar = a + r * cs;
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
            const __m512 ai = _mm512_set1_ps(ar[i * rs]);
            for (int v = 0; v < NV; ++v) acc[v][i] = _mm512_fmadd_ps(ai, bv[v], acc[v][i]);
        }
    }
    __m512 base[NV];
    for (int v = 0; v < NV; ++v)
        base[v] = (!accumulate && bias) ? _mm512_maskz_loadu_ps(m[v], bias + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v) {
            float* ci = c + i * ldc + 16 * v;
            const __m512 o = accumulate ? _mm512_maskz_loadu_ps(m[v], ci) : base[v];
            _mm512_mask_storeu_ps(ci, m[v], _mm512_add_ps(o, acc[v][i]));
        }
}

template <int... R>
inline void tile_rows(int rows, int cols, std::integer_sequence<int, R...>, index_t depth, const float* a, index_t rs,
                      index_t cs, const float* b, index_t ldb, __mmask16 m0, __mmask16 m1, float* c, index_t ldc,
                      const float* bias, bool accumulate)
{
    if (cols > 16)
        ((rows == R + 1 ? tile<R + 1, 2>(depth, a, rs, cs, b, ldb, m0, m1, c, ldc, bias, accumulate) : void()), ...);
    else
        ((rows == R + 1 ? tile<R + 1, 1>(depth, a, rs, cs, b, ldb, m0, m1, c, ldc, bias, accumulate) : void()), ...);
}

// Any 1..12 rows; `cols` (1..32) picks a one- or two-vector tile so a 16-column remainder (e.g.
// 40 = 32 + 8) does not pay for 32.
inline void tile_any(int rows, index_t cols, index_t depth, const float* a, index_t rs, index_t cs, const float* b,
                     index_t ldb, float* c, index_t ldc, const float* bias, bool accumulate)
{
    tile_rows(rows, static_cast<int>(cols), std::make_integer_sequence<int, mr>{}, depth, a, rs, cs, b, ldb, tail_mask(cols),
              tail_mask(cols - 16), c, ldc, bias, accumulate);
}

// Packs the R x N matrix B(r, n) = src[r * r_stride + n * n_stride] into ceil(N/32) panels of
// R x 32 floats, zero padded on the right.
inline void pack_panels(const float* src, index_t R, index_t N, index_t r_stride, index_t n_stride, std::vector<float>& out)
{
    const index_t panels = (N + nr - 1) / nr;
    out.assign(static_cast<std::size_t>(panels * R * nr), 0.0f);
    float* o = out.data();
    parallel_for(0, panels, 1, [&](index_t p0, index_t p1) {
        for (index_t p = p0; p < p1; ++p) {
            const index_t n0 = p * nr, cols = std::min<index_t>(nr, N - n0);
            float* dst = o + p * R * nr;
            for (index_t r = 0; r < R; ++r)
                for (index_t j = 0; j < cols; ++j) dst[r * nr + j] = src[r * r_stride + (n0 + j) * n_stride];
        }
    });
}

// Padded bias for gemm_rows (empty when there is none or the product accumulates), so the edge
// panel can load a full 32 lanes.
inline std::vector<float> pad_bias(const float* bias, index_t N, bool accumulate)
{
    std::vector<float> out;
    if (bias && !accumulate) {
        out.assign(static_cast<std::size_t>((N + nr - 1) / nr * nr), 0.0f);
        std::copy(bias, bias + N, out.begin());
    }
    return out;
}

// Serial part of gemm_packed: rows [m0, m1) and panels [p0, p1) of C[M, N] (+)= A · Bpacked + bias,
// A(i, r) = a[i * lda + r * a_cs] (row-major for a_cs = 1, a transposed view for lda = 1). The
// first reduction pass assigns (adds the padded bias `bpad`) unless `accumulate`; later passes add.
inline void gemm_rows(index_t m0, index_t m1, index_t p0, index_t p1, index_t N, index_t R, const float* a, index_t lda,
                      index_t a_cs, const float* bp, float* c, index_t ldc, const float* bpad, bool accumulate)
{
    for (index_t r0 = 0; r0 < R; r0 += kc) {
        const index_t depth = std::min(kc, R - r0);
        const bool acc = accumulate || r0 > 0;
        for (index_t p = p0; p < p1; ++p) {
            const index_t cols = std::min<index_t>(nr, N - p * nr);
            const float* bpanel = bp + p * R * nr + r0 * nr;
            for (index_t i = m0; i < m1; i += mr) {
                const int rows = static_cast<int>(std::min<index_t>(mr, m1 - i));
                tile_any(rows, cols, depth, a + i * lda + r0 * a_cs, lda, a_cs, bpanel, nr, c + i * ldc + p * nr, ldc,
                         bpad ? bpad + p * nr : nullptr, acc);
            }
        }
    }
}

// Rows per block of gemm_packed: 8 tiles reuse each B panel from L1.
inline constexpr index_t block_rows = 96;

// C[M, N] (+)= A[M, R] · Bpacked + bias in parallel blocks of gemm_rows.
inline void gemm_packed(index_t M, index_t N, index_t R, const float* a, index_t lda, const float* bp, float* c,
                        index_t ldc, const float* bias, bool accumulate, index_t a_cs = 1)
{
    const index_t panels = (N + nr - 1) / nr;
    const index_t threads = max_threads();
    // Split the panels too when there are too few row blocks to keep every thread busy (batch-1
    // inference, stage 3).
    const index_t row_blocks = (M + block_rows - 1) / block_rows;
    const index_t want = 4 * threads;
    const index_t groups = std::min<index_t>(panels, std::max<index_t>(1, (want + row_blocks - 1) / row_blocks));
    const index_t per_group = (panels + groups - 1) / groups;
    const std::vector<float> bias_pad = pad_bias(bias, N, accumulate);
    const float* bpad = bias_pad.empty() ? nullptr : bias_pad.data();
    parallel_for(0, row_blocks * groups, 1, [&](index_t t0, index_t t1) {
        for (index_t t = t0; t < t1; ++t) {
            const index_t rb = t / groups, g = t % groups;
            const index_t p0 = g * per_group;
            gemm_rows(rb * block_rows, std::min(M, (rb + 1) * block_rows), p0, std::min(panels, p0 + per_group), N, R, a, lda,
                      a_cs, bp, c, ldc, bpad, accumulate);
        }
    });
}

// y[M, N] (= | +=) t[N, M]ᵀ + bias: the last step of the few-row paths, which compute the
// transposed product.
inline void add_transposed(const float* t, index_t M, index_t N, const float* bias, float* y, bool accumulate)
{
    parallel_for(0, M, 1, [&](index_t m0, index_t m1) {
        for (index_t m = m0; m < m1; ++m)
            for (index_t n = 0; n < N; ++n) {
                const float v = t[n * M + m] + (bias ? bias[n] : 0.0f);
                y[m * N + n] = accumulate ? y[m * N + n] + v : v;
            }
    });
}

// y[M, N] = x[M, K] · Wᵀ + b,  W [N, K].
inline void linear_fwd(const float* x, index_t M, index_t K, const float* W, const float* b, index_t N, float* y)
{
    thread_local std::vector<float> packed;
    if (M * (K + N) >= N * K) {
        pack_panels(W, K, N, 1, K, packed);  // B(k, n) = W[n, k]
        gemm_packed(M, N, K, x, K, packed.data(), y, N, b, false);
        return;
    }
    // Few rows (batch-1 inference at the late stages): packing the weight would cost more than
    // the product, so compute yᵀ[N, M] = W · xᵀ (packing the small x instead) and transpose.
    thread_local std::vector<float> yt;
    pack_panels(x, K, M, 1, K, packed);  // B(k, m) = x[m, k]
    yt.resize(static_cast<std::size_t>(N * M));
    gemm_packed(N, M, K, W, K, packed.data(), yt.data(), M, nullptr, false);
    add_transposed(yt.data(), M, N, b, y, false);
}

// dx[M, K] (+)= dy[M, N] · W.
inline void linear_bwd_data(const float* dy, index_t M, index_t N, const float* W, index_t K, float* dx, bool accumulate)
{
    thread_local std::vector<float> packed;
    if (M * (N + K) >= N * K) {
        pack_panels(W, N, K, K, 1, packed);  // B(n, k) = W[n, k]
        gemm_packed(M, K, N, dy, N, packed.data(), dx, K, nullptr, accumulate);
        return;
    }
    // Few rows (stage 3 and the head at small images, batch-1 inference), as in linear_fwd:
    // dxᵀ[K, M] = Wᵀ · dyᵀ packs the small dy instead of the weight (at M = 128, K = 320,
    // N = 1280 packing W made two threads slower than one), then adds the transpose.
    thread_local std::vector<float> t;
    pack_panels(dy, N, M, 1, N, packed);  // B(n, m) = dy[m, n]
    t.resize(static_cast<std::size_t>(K * M));
    gemm_packed(K, M, N, W, 1, packed.data(), t.data(), M, nullptr, false, K);  // A(k, n) = W[n, k]
    add_transposed(t.data(), M, K, nullptr, dx, accumulate);
}

// C[N, K] (+)= dy[m0:m1, :]ᵀ · x[m0:m1, :] for output rows [n0, n1): reduction in 128-row
// passes so the dy and x slices of a pass stay in L2 while every tile visits them.
inline void weight_grad_rows(const float* dy, const float* x, index_t m0, index_t m1, index_t K, index_t N, index_t n0,
                             index_t n1, float* C, bool accumulate)
{
    const index_t pass = 128;
    for (index_t s0 = m0; s0 < m1; s0 += pass) {
        const index_t depth = std::min(pass, m1 - s0);
        const bool acc = accumulate || s0 > m0;
        for (index_t k0 = 0; k0 < K; k0 += nr) {
            const index_t cols = std::min<index_t>(nr, K - k0);
            for (index_t n = n0; n < n1; n += mr) {
                const int rows = static_cast<int>(std::min<index_t>(mr, n1 - n));
                tile_any(rows, cols, depth, dy + s0 * N + n, 1, N, x + s0 * K + k0, K, C + n * K + k0, K, nullptr, acc);
            }
        }
    }
}

} // namespace convnextv2::kernels::avx512
#endif
