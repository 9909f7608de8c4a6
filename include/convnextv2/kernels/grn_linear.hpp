// SPDX-License-Identifier: MIT
// GRN followed by a linear (a ConvNeXt V2 block's grn → pwconv2) on the bf16 products, sample by
// sample, so the 4C-wide tensor z between them goes through memory fewer times:
//   forward:  each sample's z = grn(h) is written to a cache-sized block, multiplied by pwconv2
//             there, and kept for the weight gradient only as the bf16 pair words that gradient
//             reads (half the bytes of float z, and no conversion pass in the backward);
//   backward: each sample's dL/dz = dy · W is made into a cache-sized block right before GRN's
//             backward sums and data pass read it (unfused, it was written whole and read twice).
// The same kernels run in the same order per output element as the unfused layers (GRN's
// per-group path; GEMM rows do not depend on the row blocking; the weight gradient's chunks start
// on even rows, so its pair words are the ones it would make itself), so results are bit-identical
// to grn<T> followed by linear<T> (tests/layers/inverted_bottleneck.test.cpp).
#pragma once
#include "gelu.hpp"
#include "gemm.hpp"
#include "grn.hpp"

#include <algorithm>

namespace convnextv2::kernels {

// Whether the fused path applies: bf16 products on (as linear_fwd / linear_bwd_data would choose
// for these shapes), a GRN with a task per sample, samples of an even number of rows (S) and
// weight-gradient chunks that start on even rows. Otherwise the caller runs the two layers.
inline bool grn_linear_fusable(index_t M, index_t S, index_t D, index_t N, index_t groups)
{
#if CONVNEXTV2_BF16_GEMM
    const bool even_chunks = num_chunks(M, gemm_reduce_chunk(M)) <= 1 || gemm_reduce_chunk(M) % 2 == 0;
    return groups >= grn_per_group_min && S % 2 == 0 && even_chunks && N < D && detail::use_bf16_rows(M, D, N) &&
           detail::use_bf16_rows(M, N, D);
#else
    (void)M, (void)S, (void)D, (void)N, (void)groups;
    return false;
#endif
}

// Whether bottleneck_bwd applies on top of grn_linear's fused path: every block of rows that
// linear_bwd_from hands its make_dy for pwconv1 (K -> D) holds whole samples of S rows.
inline bool bottleneck_fusable(index_t M, index_t S, index_t D)
{
    const index_t chunk = gemm_reduce_chunk(M);
    if (num_chunks(M, chunk) <= 1) return row_block_rows(D) % S == 0;
    return chunk % S == 0 && bwd_from_block_rows(D) % S == 0;
}

#if CONVNEXTV2_BF16_GEMM
// Length of grn_linear_fwd's zw: z [M, D] as interleave_rows's pair words.
inline index_t grn_linear_words(index_t M, index_t D) { return (M + 1) / 2 * bf16::padded_cols(D); }

// y = grn(h) · Wᵀ + b [M, N]; zw = z = grn(h) as the weight gradient's pair words.
inline void grn_linear_fwd(const float* h, const index_t* off, index_t G, index_t D, const float* gamma, const float* beta,
                           std::uint32_t* zw, grn_stats& st, const float* W, const float* b, index_t N, float* y)
{
    const detail::bf16_fwd_weight p = detail::pack_weight_for_fwd(W, b, N, D);
    auto z_block = [D](index_t r0, index_t r1) {
        thread_local std::vector<float> z;  // this worker's block
        z.resize(static_cast<std::size_t>((r1 - r0) * D));
        return z.data();
    };
    grn_fwd_per_group(h, off, G, D, gamma, beta, st, z_block, [&](index_t r0, index_t r1, const float* z) {
        detail::fwd_rows_bf16(p, 0, r1 - r0, z, y + r0 * N);
        bf16::interleave_rows(z, r1 - r0, D, D, zw + r0 / 2 * bf16::padded_cols(D));
    });
}

// pwconv2's weight and bias gradients (from the kept pair words), and its weight packed for the data
// gradient: the first part of both backwards below.
inline const std::uint32_t* grn_linear_bwd_weight(const float* dy, const std::uint32_t* zw, index_t M, index_t D, const float* W,
                                                 index_t N, float* dW, float* db)
{
    CONVNEXTV2_CHECK(detail::use_bf16(), "grn_linear: the matmul precision changed between forward and backward");
    linear_bwd_weight<float>(dy, nullptr, M, D, N, dW, db, zw);
    thread_local std::vector<std::uint32_t> packed;  // its own: bottleneck_bwd packs pwconv1's too
    return detail::pack_weight_for_data_grad(W, N, D, packed);
}

// Rows [r0, r1) of dL/dz = dy · W into this worker's block.
inline const float* grn_linear_dz_block(const float* dy, const std::uint32_t* wp, index_t N, index_t D, index_t r0, index_t r1)
{
    thread_local std::vector<float> dz;
    dz.resize(static_cast<std::size_t>((r1 - r0) * D));
    detail::data_grad_rows_bf16(0, r1 - r0, dy + r0 * N, N, wp, D, dz.data(), false);
    return dz.data();
}

// From dy [M, N]: dW, db += pwconv2's gradients (from zw), dgamma, dbeta += GRN's, and dh (+)= dL/dh
// (skipped when null).
inline void grn_linear_bwd(const float* dy, const float* h, const std::uint32_t* zw, const index_t* off, index_t G, index_t D,
                           const float* gamma, const grn_stats& st, const float* W, index_t N, float* dW, float* db,
                           float* dgamma, float* dbeta, float* dh, bool accumulate)
{
    const std::uint32_t* wp = grn_linear_bwd_weight(dy, zw, off[G] - off[0], D, W, N, dW, db);
    auto dz_of = [=](index_t r0, index_t r1) { return grn_linear_dz_block(dy, wp, N, D, r0, r1); };
    grn_bwd_per_group(dz_of, h, off, G, D, gamma, st, dh, dgamma, dbeta, accumulate);
}

// The backward of pwconv1 → GELU → GRN → pwconv2 in one pass over the samples: for each block of
// whole samples that pwconv1's backward asks for (linear_bwd_from), dL/dz, GRN's backward and
// GELU's make that block of pwconv1's incoming gradient in cache; dL/dh is never written whole.
// x [M, K] pwconv1's input, u its pre-activation, h = gelu(u); W1 [D, K]; other arguments as
// grn_linear_bwd. dx (+)= dL/dx (skipped when null).
inline void bottleneck_bwd(const float* dy, const float* x, index_t K, const float* u, const float* h, const std::uint32_t* zw,
                           const index_t* off, index_t G, index_t D, const float* gamma, const grn_stats& st, const float* W2,
                           index_t N, float* dW2, float* db2, float* dgamma, float* dbeta, const float* W1, float* dW1,
                           float* db1, float* dx, bool accumulate)
{
    const index_t M = off[G] - off[0];
    const std::uint32_t* wp = grn_linear_bwd_weight(dy, zw, M, D, W2, N, dW2, db2);
    std::vector<double> sgx(static_cast<std::size_t>(G * D), 0.0), sg(static_cast<std::size_t>(G * D), 0.0);
    auto make_g = [&](index_t m0, index_t m1, float* g) {
        thread_local std::vector<float> scale;
        thread_local std::vector<double> coef;
        scale.resize(static_cast<std::size_t>(D));
        coef.resize(static_cast<std::size_t>(D));
        for (index_t k = static_cast<index_t>(std::upper_bound(off, off + G + 1, m0) - off) - 1; k < G && off[k] < m1; ++k) {
            const index_t r0 = off[k], r1 = off[k + 1];
            grn_bwd_group(grn_linear_dz_block(dy, wp, N, D, r0, r1), h + r0 * D, r1 - r0, D, gamma, st, k, sgx.data() + k * D,
                          sg.data() + k * D, g + (r0 - m0) * D, false, scale.data(), coef.data());
        }
        gelu_bwd_range(u + m0 * D, g, (m1 - m0) * D, g, false);
    };
    linear_bwd_from(make_g, x, M, K, D, W1, dW1, db1, dx, accumulate);
    detail::grn_param_grads(st, sgx, sg, G, D, dgamma, dbeta);
}
#endif

} // namespace convnextv2::kernels
