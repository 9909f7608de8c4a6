// SPDX-License-Identifier: MIT
// Optional bfloat16 GEMMs (issue 7): the float products of the pointwise layers with their inputs
// rounded to bf16 (round to nearest even) and the products summed in float by AVX512-BF16's
// VDPBF16PS, which does 32 multiply-adds per instruction where the float FMA does 16 (measured
// 1.8-1.9x the FMA rate on the AMD EPYC (Zen 5) project machine). Off by default:
// set_matmul_precision(matmul_precision::bf16) turns it on for all three products of linear,
// pwconv1 + GELU and the patch convs: forward, data gradient and weight gradient, as PyTorch's bf16
// autocast does (parameters, their gradients and everything outside the products stay float). Like
// torch.set_float32_matmul_precision("medium"), it trades about three significant digits of each
// product's inputs for speed.
//
// Layout: VDPBF16PS multiplies pairs along the reduction, lane j: acc[j] += a.lo·b[j].lo + a.hi·b[j].hi.
// A row-major operand reduced along its rows (x in the forward, dy in the data gradient) is converted
// in place order, so each 32-bit word holds (x[k], x[k+1]). The forward's W is packed into 32-column
// panels of [K/2][32] words; operands reduced along their columns (W in the data gradient, x and dy
// in the weight gradient) interleave two rows into one row of words. An odd length is padded with
// a zero.
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

// Sets the precision for a scope (a training run) and restores the previous one on exit.
class scoped_matmul_precision {
public:
    explicit scoped_matmul_precision(matmul_precision p) : prev_(get_matmul_precision()) { set_matmul_precision(p); }
    ~scoped_matmul_precision() { set_matmul_precision(prev_); }
    scoped_matmul_precision(const scoped_matmul_precision&) = delete;
    scoped_matmul_precision& operator=(const scoped_matmul_precision&) = delete;

private:
    matmul_precision prev_;
};

// float -> bf16 bits as AVX512-BF16's VCVTNEPS2BF16 converts: round to nearest even, a denormal
// input becomes a zero of its sign, a NaN stays a NaN (quiet, sign and top payload kept). Same
// result as the vector conversion below, element for element.
inline std::uint16_t to_bf16(float f)
{
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
    if ((u & 0x7f800000u) == 0) return static_cast<std::uint16_t>((u >> 16) & 0x8000u);
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

// Sixteen floats -> their bf16 bits (to_bf16 per lane, one VCVTNEPS2BF16), zero-extended to 32-bit lanes.
inline __m512i to_bf16_lo(__m512 f) { return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(f)); }

// n floats -> n bf16 (to_bf16 per element, 32 at a time), plus one zero when pad is set.
inline void convert_row(const float* src, index_t n, std::uint16_t* dst, bool pad)
{
    index_t i = 0;
    for (; i + 32 <= n; i += 32)
        _mm512_storeu_si512(dst + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i)));
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
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
        std::vector<std::uint32_t> row(static_cast<std::size_t>(kp));
        for (index_t p = p0; p < p1; ++p)
            for (index_t j = 0; j < std::min<index_t>(nr, N - p * nr); ++j) {
                // a converted row of W already holds the pairs (W[n, 2q], W[n, 2q+1]) as words
                convert_row(W + (p * nr + j) * K, K, reinterpret_cast<std::uint16_t*>(row.data()), (K & 1) != 0);
                for (index_t q = 0; q < kp; ++q) o[(p * kp + q) * nr + j] = row[static_cast<std::size_t>(q)];
            }
    });
}

// Columns padded to whole 32-column panels.
inline index_t padded_cols(index_t C) { return (C + nr - 1) / nr * nr; }

// Rows r0..r0+2·pairs of src [R, C] (leading dimension ld) -> out [pairs][padded_cols(C)], word (q, c)
// = (src[2q, c], src[2q+1, c]); rows past R and columns past C are zero. This is the layout of the
// reduction-over-rows operands: W for the data gradient, x and dy for the weight gradient.
inline void interleave_rows(const float* src, index_t R, index_t C, index_t ld, std::uint32_t* out)
{
    const index_t pairs = (R + 1) / 2, cp = padded_cols(C);
    for (index_t q = 0; q < pairs; ++q) {
        const float* lo = src + 2 * q * ld;
        const float* hi = 2 * q + 1 < R ? lo + ld : nullptr;
        std::uint32_t* o = out + q * cp;
        for (index_t c = 0; c < cp; c += 16) {
            const __mmask16 m = avx512::tail_mask(C - c);
            const __m512i a = to_bf16_lo(_mm512_maskz_loadu_ps(m, lo + c));
            const __m512i b = hi ? _mm512_slli_epi32(to_bf16_lo(_mm512_maskz_loadu_ps(m, hi + c)), 16) : _mm512_setzero_si512();
            _mm512_storeu_si512(o + c, _mm512_or_si512(a, b));
        }
    }
}

// c[i, 0:16*NV] (= bias | +=) Σ_q pair A(i, q) · B(q, 0:16*NV) for i < MR, A(i, q) = a[i*rs + q*cs],
// B(q, :) = b + q*ldb (zero padded to 32 lanes); lanes outside the masks are not written.
template <int MR, int NV>
inline void tile(index_t pairs, const std::uint32_t* a, index_t rs, index_t cs, const std::uint32_t* b, index_t ldb,
                 __mmask16 m0, __mmask16 m1, float* c, index_t ldc, const float* bias, bool accumulate)
{
    const __mmask16 m[2] = {m0, m1};
    __m512 acc[NV][MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v) acc[v][i] = _mm512_setzero_ps();
    for (index_t q = 0; q < pairs; ++q) {
        __m512bh bv[NV];
        for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + q * ldb + 16 * v);
        const std::uint32_t* aq = a + q * cs;
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(aq[i * rs]));
            for (int v = 0; v < NV; ++v) acc[v][i] = _mm512_dpbf16_ps(acc[v][i], ai, bv[v]);
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
inline void tile_any(int rows, index_t cols, std::integer_sequence<int, R...>, index_t pairs, const std::uint32_t* a,
                     index_t rs, index_t cs, const std::uint32_t* b, index_t ldb, float* c, index_t ldc, const float* bias,
                     bool accumulate)
{
    const __mmask16 m0 = avx512::tail_mask(cols), m1 = avx512::tail_mask(cols - 16);
    if (cols > 16) ((rows == R + 1 ? tile<R + 1, 2>(pairs, a, rs, cs, b, ldb, m0, m1, c, ldc, bias, accumulate) : void()), ...);
    else ((rows == R + 1 ? tile<R + 1, 1>(pairs, a, rs, cs, b, ldb, m0, m1, c, ldc, bias, accumulate) : void()), ...);
}

// Rows [m0, m1) of y [M, N] (= bias | +=) x[M, K] · B, B given as pair words: panel p at
// bp + p * panel_stride, pair row q of a panel at + q * ldb (the forward's packed weight:
// panel_stride = ceil(K/2)·32, ldb = 32; interleave_rows's layout: panel_stride = 32,
// ldb = padded_cols(N)). Converts those rows of x into a per-thread scratch first.
inline void gemm_rows(index_t m0, index_t m1, const float* x, index_t K, const std::uint32_t* bp, index_t panel_stride,
                      index_t ldb, index_t N, float* y, const float* bpad, bool accumulate)
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
            tile_any(rows, cols, std::make_integer_sequence<int, mr>{}, kp, a.data() + (i - m0) * kp, kp, 1,
                     bp + p * panel_stride, ldb, y + i * N + p * nr, N, bpad ? bpad + p * nr : nullptr, accumulate);
        }
    }
}

// Output rows [r0, r1) of out [R, C] (= | +=) Aᵀ · B, the reduction over `pairs` row pairs of A and
// B in interleave_rows's layout (ldA = padded_cols(R), ldB = padded_cols(C)): the weight gradient.
// The reduction runs in passes of 64 pairs (128 rows, as the float path) so a pass's A and B slices
// stay in L1/L2 for every tile, and a caller that feeds 128-row blocks sums in the same order.
inline void tn_rows(index_t pairs, const std::uint32_t* A, index_t R, const std::uint32_t* B, index_t C, index_t r0,
                    index_t r1, float* out, bool accumulate)
{
    const index_t lda = padded_cols(R), ldb = padded_cols(C), pass = 64;
    for (index_t s = 0; s < pairs; s += pass) {
        const index_t depth = std::min(pass, pairs - s);
        const bool acc = accumulate || s > 0;
        for (index_t c0 = 0; c0 < C; c0 += nr) {
            const index_t cols = std::min<index_t>(nr, C - c0);
            for (index_t r = r0; r < r1; r += mr) {
                const int rows = static_cast<int>(std::min<index_t>(mr, r1 - r));
                tile_any(rows, cols, std::make_integer_sequence<int, mr>{}, depth, A + s * lda + r, 1, lda, B + s * ldb + c0,
                         ldb, out + r * C + c0, C, nullptr, acc);
            }
        }
    }
}

} // namespace convnextv2::kernels::bf16
#else
#define CONVNEXTV2_BF16_GEMM 0
#endif
