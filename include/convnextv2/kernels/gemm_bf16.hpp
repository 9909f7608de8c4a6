// SPDX-License-Identifier: MIT
// Optional bfloat16 forward GEMM for inference (issue 7): y = x · Wᵀ + b with x and W rounded to
// bf16 (round to nearest even) and products summed in float by AVX512-BF16's VDPBF16PS, which does
// 32 multiply-adds per instruction where the float FMA does 16 (measured 1.8-1.9x the FMA rate on
// the AMD EPYC (Zen 5) project machine). Off by default: set_matmul_precision(matmul_precision::bf16)
// turns it on for the float forward products (linear, pwconv1 + GELU, patch convs); the backward
// products stay float. Like torch.set_float32_matmul_precision("medium"), it trades about three
// significant digits of each product's inputs for speed.
//
// Layout: VDPBF16PS multiplies pairs, lane j: acc[j] += a.lo·b[j].lo + a.hi·b[j].hi. A row of x is
// converted to bf16 in place order, so each 32-bit word holds the pair (x[k], x[k+1]); W is packed
// into 32-column panels of [K/2][32] words, word (p, j) = (B(2p, j), B(2p+1, j)). An odd K is padded
// with a zero.
#pragma once
#include "../core/config.hpp"
#include "gemm_avx512.hpp"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

namespace convnextv2 {

// Which arithmetic the float forward products use (process-wide; default fp32).
enum class matmul_precision { fp32, bf16 };

namespace detail {
inline std::atomic<matmul_precision>& matmul_precision_flag()
{
    static std::atomic<matmul_precision> p{matmul_precision::fp32};
    return p;
}
} // namespace detail

// Whether this build can run the bf16 path (compiled for a CPU with AVX512-BF16).
constexpr bool bf16_matmul_available()
{
#if CONVNEXTV2_AVX512_GEMM && defined(__AVX512BF16__)
    return true;
#else
    return false;
#endif
}

// Sets the precision of the float forward products; bf16 without bf16_matmul_available() is an error.
inline void set_matmul_precision(matmul_precision p)
{
    CONVNEXTV2_CHECK(p == matmul_precision::fp32 || bf16_matmul_available(),
                     "set_matmul_precision: bf16 needs a build for a CPU with AVX512-BF16 (-march=native on one)");
    detail::matmul_precision_flag().store(p, std::memory_order_relaxed);
}

inline matmul_precision get_matmul_precision() { return detail::matmul_precision_flag().load(std::memory_order_relaxed); }

// float -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN. Same result as the vector
// conversion below, element for element.
inline std::uint16_t to_bf16(float f)
{
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<std::uint16_t>(u >> 16);
}

inline float from_bf16(std::uint16_t h)
{
    const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

} // namespace convnextv2

#if CONVNEXTV2_AVX512_GEMM && defined(__AVX512BF16__)
#define CONVNEXTV2_BF16_GEMM 1
namespace convnextv2::kernels::bf16 {

using avx512::mr;
using avx512::nr;

// n floats -> n bf16 (to_bf16 per element, 16 at a time), plus one zero when pad is set.
inline void convert_row(const float* src, index_t n, std::uint16_t* dst, bool pad)
{
    index_t i = 0;
    const __m512i round = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), qnan = _mm512_set1_epi32(0x7fc0);
    for (; i + 16 <= n; i += 16) {
        const __m512 f = _mm512_loadu_ps(src + i);
        const __m512i u = _mm512_castps_si512(f);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(round, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
        r = _mm512_srli_epi32(r, 16);
        r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q), qnan);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < n; ++i) dst[i] = to_bf16(src[i]);
    if (pad) dst[n] = 0;
}

// B(k, n) = W[n, k] (W [N, K] row-major) into ceil(N/32) panels of [ceil(K/2)][32] pair words.
inline void pack_weight(const float* W, index_t N, index_t K, std::vector<std::uint32_t>& out)
{
    const index_t panels = (N + nr - 1) / nr, kp = (K + 1) / 2;
    out.assign(static_cast<std::size_t>(panels * kp * nr), 0u);
    std::uint32_t* o = out.data();
    parallel_for(0, panels, 1, [&](index_t p0, index_t p1) {
        for (index_t p = p0; p < p1; ++p)
            for (index_t j = 0; j < std::min<index_t>(nr, N - p * nr); ++j) {
                const float* w = W + (p * nr + j) * K;
                for (index_t q = 0; q < kp; ++q) {
                    const std::uint32_t lo = to_bf16(w[2 * q]), hi = 2 * q + 1 < K ? to_bf16(w[2 * q + 1]) : 0u;
                    o[(p * kp + q) * nr + j] = lo | (hi << 16);
                }
            }
    });
}

// c[i, 0:16*NV] = bias + Σ_q pair(a[i], q) · panel(q) for i < MR (lanes outside the masks untouched).
template <int MR, int NV>
inline void tile(index_t pairs, const std::uint32_t* a, index_t lda, const std::uint32_t* b, __mmask16 m0, __mmask16 m1,
                 float* c, index_t ldc, const float* bias)
{
    const __mmask16 m[2] = {m0, m1};
    __m512 acc[NV][MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v) acc[v][i] = _mm512_setzero_ps();
    for (index_t q = 0; q < pairs; ++q) {
        __m512bh bv[NV];
        for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + q * nr + 16 * v);
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i * lda + q]));
            for (int v = 0; v < NV; ++v) acc[v][i] = _mm512_dpbf16_ps(acc[v][i], ai, bv[v]);
        }
    }
    __m512 base[NV];
    for (int v = 0; v < NV; ++v) base[v] = bias ? _mm512_maskz_loadu_ps(m[v], bias + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, m[v], _mm512_add_ps(base[v], acc[v][i]));
}

template <int... R>
inline void tile_any(int rows, index_t cols, std::integer_sequence<int, R...>, index_t pairs, const std::uint32_t* a,
                     index_t lda, const std::uint32_t* b, float* c, index_t ldc, const float* bias)
{
    const __mmask16 m0 = avx512::tail_mask(cols), m1 = avx512::tail_mask(cols - 16);
    if (cols > 16) ((rows == R + 1 ? tile<R + 1, 2>(pairs, a, lda, b, m0, m1, c, ldc, bias) : void()), ...);
    else ((rows == R + 1 ? tile<R + 1, 1>(pairs, a, lda, b, m0, m1, c, ldc, bias) : void()), ...);
}

// Rows [m0, m1) of y [M, N] = x · Wᵀ + b from the packed weight `bp`; converts those rows of x into
// a per-thread scratch first (a block of rows is a few tens of KB).
inline void gemm_rows(index_t m0, index_t m1, const float* x, index_t K, const std::uint32_t* bp, index_t N, float* y,
                      const float* bpad)
{
    const index_t kp = (K + 1) / 2, panels = (N + nr - 1) / nr;
    thread_local std::vector<std::uint32_t> a;  // this worker's own scratch
    a.resize(static_cast<std::size_t>((m1 - m0) * kp));
    for (index_t m = m0; m < m1; ++m)
        convert_row(x + m * K, K, reinterpret_cast<std::uint16_t*>(a.data() + (m - m0) * kp), (K & 1) != 0);
    for (index_t p = 0; p < panels; ++p) {
        const index_t cols = std::min<index_t>(nr, N - p * nr);
        for (index_t i = m0; i < m1; i += mr) {
            const int rows = static_cast<int>(std::min<index_t>(mr, m1 - i));
            tile_any(rows, cols, std::make_integer_sequence<int, mr>{}, kp, a.data() + (i - m0) * kp, kp, bp + p * kp * nr,
                     y + i * N + p * nr, N, bpad ? bpad + p * nr : nullptr);
        }
    }
}

} // namespace convnextv2::kernels::bf16
#else
#define CONVNEXTV2_BF16_GEMM 0
#endif
