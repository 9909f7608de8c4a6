// SPDX-License-Identifier: MIT
// Depthwise 7x7 convolution, padding 3, stride 1, with bias, over NHWC x[N,H,W,C]; mirrors the
// block's nn.Conv2d(C, C, 7, padding=3, groups=C) (facebookresearch/ConvNeXt-V2:
// models/convnextv2.py; SPEC §1.3):
//   fwd:         y[n,h,w,c]  = b[c] + Σ_{kh,kw} w[kh,kw,c] · x[n, h+kh−3, w+kw−3, c]
//   bwd_data:    dx[n,h,w,c] += Σ_{kh,kw} w[kh,kw,c] · dy[n, h−kh+3, w−kw+3, c]
//   bwd_weight:  dw[kh,kw,c] += Σ_{n,h,w} dy[n,h,w,c] · x[n, h+kh−3, w+kw−3, c],  db[c] += Σ dy
// Weights are stored [7][7][C] (c fastest) so every inner loop runs over contiguous channels.
// Rows (n,h) run in parallel; bwd_weight reduces fixed row chunks combined in index order
// (deterministic for any thread count).
#pragma once
#include "../core/parallel.hpp"
#include "../sparse/active_sites.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

namespace convnextv2::kernels {

namespace detail {

inline constexpr index_t dw_k = 7;
inline constexpr index_t dw_pad = 3;

// Channels per register block: the accumulators of one block stay in vector registers.
template <class T>
inline constexpr index_t dw_block = 128 / static_cast<index_t>(sizeof(T));

// Rows per task of the forward/data-gradient sweep, which walks a task's rows once per channel
// block: enough rows that a block's seven input rows are reused from L1 (8 and 16 measured
// alike at the 224 shapes), and at least a few hundred thousand flops per task.
inline index_t dw_task_rows(index_t W, index_t C) { return std::max<index_t>(8, 4096 / std::max<index_t>(W * C, 1)); }

// Valid tap range [k0, k1) for output coordinate `o` along an axis of extent `n`.
inline index_t dw_tap_lo(index_t o) { return std::max<index_t>(0, dw_pad - o); }
inline index_t dw_tap_hi(index_t o, index_t n) { return std::min<index_t>(dw_k, n + dw_pad - o); }

// The per-site math every path shares (dense, border, quad and sparse): acc[0, width) += x·w.
template <class T>
inline void dw_fma(T* __restrict acc, const T* __restrict x, const T* __restrict w, index_t width)
{
    for (index_t j = 0; j < width; ++j) acc[j] += x[j] * w[j];
}

// One output site, channels [c0, c0+width): out = init + Σ_taps in · w. Flip reads the kernel
// rotated by 180 degrees (bwd_data is the correlation of dy with the flipped kernel).
template <bool Flip, bool Accumulate, class T>
inline void dw_site(const T* __restrict in_img, index_t W, index_t C, index_t h, index_t wo, index_t kh0, index_t kh1,
                    index_t kw0, index_t kw1, const T* __restrict w, const T* __restrict b, T* __restrict out, index_t c0,
                    index_t width)
{
    alignas(64) T acc[dw_block<T>];  // width <= dw_block
    if constexpr (Accumulate) {
        for (index_t j = 0; j < width; ++j) acc[j] = out[j];
    } else {
        if (b)
            for (index_t j = 0; j < width; ++j) acc[j] = b[c0 + j];
        else
            for (index_t j = 0; j < width; ++j) acc[j] = T(0);
    }
    for (index_t kh = kh0; kh < kh1; ++kh) {
        const T* xr = in_img + (h + kh - dw_pad) * W * C + c0;
        const T* wr = w + (Flip ? dw_k - 1 - kh : kh) * dw_k * C + c0;
        for (index_t kw = kw0; kw < kw1; ++kw) {
            const T* __restrict xp = xr + (wo + kw - dw_pad) * C;
            const T* __restrict wp = wr + (Flip ? dw_k - 1 - kw : kw) * C;
            dw_fma(acc, xp, wp, width);
        }
    }
    for (index_t j = 0; j < width; ++j) out[j] = acc[j];
}

// Q adjacent output columns whose taps are all in range horizontally (wo >= 3, wo + Q <= W − 3),
// one channel block of B lanes held in registers (GCC/Clang vector types). Per kernel row the 7
// weight vectors are loaded once and each of the Q + 6 input vectors once, then feeds every output
// column it touches: 13 + Q loads per 7·Q multiply-adds (a load per multiply-add when each tap
// reloaded its input).
template <class T, std::size_t Bytes>
struct dw_vec_of;  // (an attribute on a dependent type is ignored, hence one specialisation each)
template <>
struct dw_vec_of<float, 64> { typedef float type __attribute__((vector_size(64))); };
template <>
struct dw_vec_of<float, 32> { typedef float type __attribute__((vector_size(32))); };
template <>
struct dw_vec_of<double, 64> { typedef double type __attribute__((vector_size(64))); };
template <>
struct dw_vec_of<double, 32> { typedef double type __attribute__((vector_size(32))); };
template <class T, index_t B>
using dw_vec = typename dw_vec_of<T, static_cast<std::size_t>(B) * sizeof(T)>::type;

template <class V, class T>
inline V dw_load(const T* p)
{
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <class T>
inline constexpr index_t dw_quad_block = 64 / static_cast<index_t>(sizeof(T));

// Whether column j of a Q-wide window (input column wo − 3 + j) is read: a side clipped at the
// map's edge skips the columns beyond it (j < 3 on the left, j >= Q + 3 on the right).
template <int Q, bool ClipL, bool ClipR>
constexpr bool dw_col_inside(int j)
{
    return !(ClipL && j < dw_pad) && !(ClipR && j >= Q + dw_pad);
}

// ClipL / ClipR: the window touches the map's left edge (wo = 0) or right edge (wo + Q = W); the
// input columns outside [0, W) are then skipped at compile time instead of read, so border
// columns and narrow maps (7x7, 4x4, 2x2) get the same register window as the interior.
template <bool Flip, bool Accumulate, int Q, class T, index_t B = dw_quad_block<T>, bool ClipL = false, bool ClipR = false>
inline void dw_window(const T* __restrict in_img, index_t W, index_t C, index_t h, index_t wo, index_t kh0, index_t kh1,
                      const T* __restrict w, const T* __restrict b, T* __restrict out, index_t c0, index_t next_row)
{
    using V = dw_vec<T, B>;
    V acc[Q];
    // The output the next row's window will update (its data gradient reads it first): fetched
    // now, a row ahead, it arrives from DRAM in time (0 = this row, already in cache).
    for (int q = 0; q < Q; ++q) __builtin_prefetch(out + next_row + q * C, 1);
    for (int q = 0; q < Q; ++q) {
        if constexpr (Accumulate) acc[q] = dw_load<V>(out + q * C);
        else acc[q] = b ? dw_load<V>(b + c0) : V{};
    }
    for (index_t kh = kh0; kh < kh1; ++kh) {
        const T* xrow = in_img + (h + kh - dw_pad) * W * C + c0;
        const T* wr = w + (Flip ? dw_k - 1 - kh : kh) * dw_k * C + c0;
        V wv[dw_k];
#pragma GCC unroll 7
        for (int kw = 0; kw < dw_k; ++kw) wv[kw] = dw_load<V>(wr + (Flip ? dw_k - 1 - kw : kw) * C);
#pragma GCC unroll 16
        for (int j = 0; j < Q + dw_k - 1; ++j) {
            if (!dw_col_inside<Q, ClipL, ClipR>(j)) continue;
            const V xv = dw_load<V>(xrow + (wo - dw_pad + j) * C);
#pragma GCC unroll 7
            for (int kw = 0; kw < dw_k; ++kw) {
                const int q = j - kw;
                if (q >= 0 && q < Q) acc[q] += xv * wv[kw];
            }
        }
    }
    for (int q = 0; q < Q; ++q) std::memcpy(out + q * C, &acc[q], sizeof(V));
}

// Calls f(std::integral_constant<int, W>) for a map width 1 <= W <= dw_narrow.
inline constexpr index_t dw_narrow = 8;
template <class F>
inline void dw_with_width(index_t W, F&& f)
{
    switch (W) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    default: f(std::integral_constant<int, 8>{}); break;
    }
}

// Splits a row of W output columns into register windows, calling
// f(integral_constant<int, Q>, clip_left, clip_right, wo) for each: a narrow row (W <= 8) is one
// window clipped on both sides; a wider one gets a left window clipped at column 0, unclipped
// windows of 8 (and one shorter) in the middle, and a right window clipped at column W. The
// left window ends at a <= W − 3 so that its right taps stay inside the map, and the right one
// starts at b >= 3 for its left taps. The forward, data-gradient and weight-gradient loops all
// walk a row this way.
template <class F>
inline void dw_row_windows(index_t W, F&& f)
{
    using clip = std::true_type;
    using open = std::false_type;
    if (W <= dw_narrow) {
        dw_with_width(W, [&](auto q) { f(q, clip{}, clip{}, index_t{0}); });
        return;
    }
    const index_t a = std::min<index_t>(dw_narrow, W - dw_pad), b = std::max<index_t>(a, W - dw_narrow);
    dw_with_width(a, [&](auto q) { f(q, clip{}, open{}, index_t{0}); });
    index_t wo = a;
    for (; wo + dw_narrow <= b; wo += dw_narrow) f(std::integral_constant<int, dw_narrow>{}, open{}, open{}, wo);
    if (wo < b) dw_with_width(b - wo, [&](auto q) { f(q, open{}, open{}, wo); });
    dw_with_width(W - b, [&](auto q) { f(q, open{}, clip{}, b); });
}

// out[n,h,w,:] (= init | +=) 7x7 depthwise correlation of `in` with w (or its flip).
template <bool Flip, bool Accumulate, class T>
void dw_correlate(const T* in, index_t N, index_t H, index_t W, index_t C, const T* w, const T* b, T* out)
{
    constexpr index_t BQ = dw_quad_block<T>;
    parallel_for(0, N * H, dw_task_rows(W, C), [&](index_t r0, index_t r1) {
        struct row_at {
            index_t h, kh0, kh1;
            const T* img;  // the row's image
            T* out;        // the output row
        };
        auto row = [&](index_t r) { return row_at{r % H, dw_tap_lo(r % H), dw_tap_hi(r % H, H), in + r / H * H * W * C, out + r * W * C}; };
        // One channel block at a time over the task's rows, so the seven input rows a block reads
        // stay in L1 from one output row to the next.
        auto block_rows = [&](auto bw, index_t c0) {
            constexpr index_t BW = decltype(bw)::value;
            for (index_t r = r0; r < r1; ++r) {
                const row_at o = row(r);
                const index_t next = r + 1 < r1 ? W * C : 0;
                dw_row_windows(W, [&](auto q_const, auto clip_l, auto clip_r, index_t wo) {
                    dw_window<Flip, Accumulate, decltype(q_const)::value, T, BW, decltype(clip_l)::value, decltype(clip_r)::value>(
                        o.img, W, C, o.h, wo, o.kh0, o.kh1, w, b, o.out + wo * C + c0, c0, next);
                });
            }
        };
        // Full blocks, a half block (atto's C = 40 = 2 x 16 + 8), then the remaining channels
        // (all of them when C < 8) site by site.
        index_t c0 = 0;
        for (; c0 + BQ <= C; c0 += BQ) block_rows(std::integral_constant<index_t, BQ>{}, c0);
        if (C - c0 >= BQ / 2) {
            block_rows(std::integral_constant<index_t, BQ / 2>{}, c0);
            c0 += BQ / 2;
        }
        if (c0 < C)
            for (index_t r = r0; r < r1; ++r) {
                const row_at o = row(r);
                for (index_t wo = 0; wo < W; ++wo)
                    dw_site<Flip, Accumulate>(o.img, W, C, o.h, wo, o.kh0, o.kh1, dw_tap_lo(wo), dw_tap_hi(wo, W), w, b,
                                              o.out + wo * C + c0, c0, C - c0);
            }
    });
}

// Weight gradient of one register window (Q output columns from wo, one channel block; dyr and
// xr point at the block's first channel): a[kw] += Σ_q dy[wo+q] · x[wo+q+kw−3]. The Q dy vectors
// are loaded once and each input vector once for the up to seven taps it serves; clipped sides
// skip the input columns outside the map, as in dw_window.
template <int Q, bool ClipL, bool ClipR, class V, class T>
inline void dw_wgrad_window(const T* __restrict dyr, const T* __restrict xr, index_t C, index_t wo, V (&a)[dw_k])
{
    V g[Q];
#pragma GCC unroll 8
    for (int q = 0; q < Q; ++q) g[q] = dw_load<V>(dyr + (wo + q) * C);
#pragma GCC unroll 14
    for (int j = 0; j < Q + dw_k - 1; ++j) {
        if (!dw_col_inside<Q, ClipL, ClipR>(j)) continue;
        const V xv = dw_load<V>(xr + (wo - dw_pad + j) * C);
#pragma GCC unroll 7
        for (int kw = 0; kw < dw_k; ++kw) {
            const int q = j - kw;
            if (q >= 0 && q < Q) a[kw] += g[q] * xv;
        }
    }
}

// Weight gradient of one output row against one input row (fixed kh), channel block [c0, c0+B):
// pt[kw*C + c] += Σ_wo dy[wo,c] · x[wo+kw−3, c], the seven sums in registers across the row.
template <class T, index_t B, int NarrowW = 0>
inline void dw_wgrad_row(const T* __restrict dyr, const T* __restrict xr, index_t W, index_t C, T* __restrict pt, index_t c0)
{
    using V = dw_vec<T, B>;
    V a[dw_k] = {};
    if constexpr (NarrowW > 0)  // the caller dispatched on the width once for all channel blocks
        dw_wgrad_window<NarrowW, true, true>(dyr + c0, xr + c0, C, 0, a);
    else
        dw_row_windows(W, [&](auto q_const, auto clip_l, auto clip_r, index_t wo) {
            dw_wgrad_window<decltype(q_const)::value, decltype(clip_l)::value, decltype(clip_r)::value>(dyr + c0, xr + c0, C, wo, a);
        });
    for (int kw = 0; kw < dw_k; ++kw) {
        V p = dw_load<V>(pt + kw * C + c0);
        p += a[kw];
        std::memcpy(pt + kw * C + c0, &p, sizeof(V));
    }
}

// The channels [c0, C) left after the register blocks (fewer than half a block), site by site.
template <class T>
inline void dw_wgrad_tail(const T* __restrict dyr, const T* __restrict xr, index_t W, index_t C, T* __restrict pt, index_t c0)
{
    for (index_t wo = 0; wo < W; ++wo)
        for (index_t kw = dw_tap_lo(wo); kw < dw_tap_hi(wo, W); ++kw)
            dw_fma(pt + kw * C + c0, dyr + wo * C + c0, xr + (wo + kw - dw_pad) * C + c0, C - c0);
}

// Rows per weight-gradient chunk: depends on sizes only (determinism), at most 32 partials.
inline index_t dw_reduce_chunk(index_t rows, index_t W, index_t C)
{
    return std::max<index_t>({index_t{1}, (rows + 31) / 32, 16384 / std::max<index_t>(W * C, 1)});
}

} // namespace detail

template <class T>
void dwconv7x7_fwd(const T* x, index_t N, index_t H, index_t W, index_t C, const T* w, const T* b, T* y)
{
    detail::dw_correlate<false, false>(x, N, H, W, C, w, b, y);
}

template <class T>
void dwconv7x7_bwd_data(const T* dy, index_t N, index_t H, index_t W, index_t C, const T* w, T* dx)
{
    detail::dw_correlate<true, true>(dy, N, H, W, C, w, static_cast<const T*>(nullptr), dx);
}

template <class T>
void dwconv7x7_bwd_weight(const T* dy, const T* x, index_t N, index_t H, index_t W, index_t C, T* dw, T* db)
{
    using namespace detail;
    constexpr index_t B = dw_quad_block<T>;
    const index_t rows = N * H, psize = (dw_k * dw_k + 1) * C;
    const index_t chunk = dw_reduce_chunk(rows, W, C);
    const index_t nc = num_chunks(rows, chunk);
    if (nc == 0) return;
    std::vector<T> partial(static_cast<std::size_t>(nc * psize), T(0));
    parallel_chunks(rows, chunk, [&](index_t ci, index_t r0, index_t r1) {
        T* p = partial.data() + ci * psize;
        T* pb = p + dw_k * dw_k * C;
        for (index_t r = r0; r < r1; ++r) {
            const index_t n = r / H, h = r % H;
            const T* dyr = dy + r * W * C;
            for (index_t wo = 0; wo < W; ++wo) {
                const T* __restrict g = dyr + wo * C;
                for (index_t c = 0; c < C; ++c) pb[c] += g[c];
            }
            for (index_t kh = dw_tap_lo(h); kh < dw_tap_hi(h, H); ++kh) {
                const T* xr = x + (n * H + h + kh - dw_pad) * W * C;
                T* pt = p + kh * dw_k * C;
                index_t c0 = 0;
                auto blocks = [&](auto narrow_w) {
                    constexpr int NW = decltype(narrow_w)::value;
                    for (; c0 + B <= C; c0 += B) dw_wgrad_row<T, B, NW>(dyr, xr, W, C, pt, c0);
                    if (C - c0 >= B / 2) {  // half block, as in dw_correlate
                        dw_wgrad_row<T, B / 2, NW>(dyr, xr, W, C, pt, c0);
                        c0 += B / 2;
                    }
                };
                if (W <= dw_narrow) dw_with_width(W, blocks);
                else blocks(std::integral_constant<int, 0>{});
                if (c0 < C) dw_wgrad_tail(dyr, xr, W, C, pt, c0);
            }
        }
    });
    for (index_t ci = 0; ci < nc; ++ci) {
        const T* p = partial.data() + ci * psize;
        for (index_t i = 0; i < dw_k * dw_k * C; ++i) dw[i] += p[i];
        if (db)
            for (index_t c = 0; c < C; ++c) db[c] += p[dw_k * dw_k * C + c];
    }
}

// ---- sparse (submanifold) twins over active_sites rows: x, y, dy are [rows, C] ----
// y[r] = b + Σ_t w[t]·x[nbr[r,t]] over active neighbours only (SPEC §3.4). The data gradient
// uses the symmetry nbr[r,t] = q ⇔ nbr[q,48−t] = r, so it is the same gather with the flipped
// kernel (no scatter, no atomics); the weight gradient reduces fixed row chunks in order.

namespace detail {
template <bool Flip, bool Accumulate, class T>
void dw_sparse_correlate(const T* in, const active_sites& s, index_t C, const T* w, const T* b, T* out)
{
    constexpr index_t B = dw_block<T>;
    parallel_for(0, s.rows(), std::max<index_t>(1, 2048 / std::max<index_t>(C, 1)), [&](index_t r0, index_t r1) {
        alignas(64) T acc[B];
        for (index_t r = r0; r < r1; ++r) {
            const std::int32_t* nb = s.nbr.data() + r * 49;
            for (index_t c0 = 0; c0 < C; c0 += B) {
                const index_t width = std::min(B, C - c0);
                T* o = out + r * C + c0;
                for (index_t j = 0; j < width; ++j) acc[j] = Accumulate ? o[j] : (b ? b[c0 + j] : T(0));
                for (index_t t = 0; t < 49; ++t) {
                    if (nb[t] < 0) continue;
                    const T* wp = w + (Flip ? 48 - t : t) * C + c0;
                    if (width == B)
                        dw_fma(acc, in + nb[t] * C + c0, wp, B);
                    else
                        dw_fma(acc, in + nb[t] * C + c0, wp, width);
                }
                for (index_t j = 0; j < width; ++j) o[j] = acc[j];
            }
        }
    });
}
} // namespace detail

template <class T>
void dwconv7x7_sparse_fwd(const T* x, const active_sites& s, index_t C, const T* w, const T* b, T* y)
{
    detail::dw_sparse_correlate<false, false>(x, s, C, w, b, y);
}

template <class T>
void dwconv7x7_sparse_bwd_data(const T* dy, const active_sites& s, index_t C, const T* w, T* dx)
{
    detail::dw_sparse_correlate<true, true>(dy, s, C, w, static_cast<const T*>(nullptr), dx);
}

template <class T>
void dwconv7x7_sparse_bwd_weight(const T* dy, const T* x, const active_sites& s, index_t C, T* dw, T* db)
{
    const index_t rows = s.rows(), psize = 50 * C;
    const index_t chunk = std::max<index_t>({index_t{1}, (rows + 31) / 32, 4096 / std::max<index_t>(C, 1)});
    const index_t nc = num_chunks(rows, chunk);
    if (nc == 0) return;
    std::vector<T> partial(static_cast<std::size_t>(nc * psize), T(0));
    parallel_chunks(rows, chunk, [&](index_t ci, index_t r0, index_t r1) {
        T* p = partial.data() + ci * psize;
        T* pb = p + 49 * C;
        for (index_t r = r0; r < r1; ++r) {
            const T* g = dy + r * C;
            for (index_t c = 0; c < C; ++c) pb[c] += g[c];
            const std::int32_t* nb = s.nbr.data() + r * 49;
            for (index_t t = 0; t < 49; ++t)
                if (nb[t] >= 0) detail::dw_fma(p + t * C, g, x + nb[t] * C, C);
        }
    });
    for (index_t ci = 0; ci < nc; ++ci) {
        const T* p = partial.data() + ci * psize;
        for (index_t i = 0; i < 49 * C; ++i) dw[i] += p[i];
        if (db)
            for (index_t c = 0; c < C; ++c) db[c] += p[49 * C + c];
    }
}

// ---- naive twins, used only by tests ----

template <class T>
void dwconv7x7_fwd_ref(const T* x, index_t N, index_t H, index_t W, index_t C, const T* w, const T* b, T* y)
{
    for (index_t n = 0; n < N; ++n)
        for (index_t h = 0; h < H; ++h)
            for (index_t wo = 0; wo < W; ++wo)
                for (index_t c = 0; c < C; ++c) {
                    double s = b ? static_cast<double>(b[c]) : 0.0;
                    for (index_t kh = 0; kh < 7; ++kh)
                        for (index_t kw = 0; kw < 7; ++kw) {
                            index_t ih = h + kh - 3, iw = wo + kw - 3;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            s += static_cast<double>(w[(kh * 7 + kw) * C + c]) * x[((n * H + ih) * W + iw) * C + c];
                        }
                    y[((n * H + h) * W + wo) * C + c] = static_cast<T>(s);
                }
}

template <class T>
void dwconv7x7_bwd_data_ref(const T* dy, index_t N, index_t H, index_t W, index_t C, const T* w, T* dx)
{
    for (index_t n = 0; n < N; ++n)
        for (index_t ih = 0; ih < H; ++ih)
            for (index_t iw = 0; iw < W; ++iw)
                for (index_t c = 0; c < C; ++c) {
                    double s = 0;
                    for (index_t kh = 0; kh < 7; ++kh)
                        for (index_t kw = 0; kw < 7; ++kw) {
                            index_t h = ih - kh + 3, wo = iw - kw + 3;
                            if (h < 0 || h >= H || wo < 0 || wo >= W) continue;
                            s += static_cast<double>(w[(kh * 7 + kw) * C + c]) * dy[((n * H + h) * W + wo) * C + c];
                        }
                    dx[((n * H + ih) * W + iw) * C + c] += static_cast<T>(s);
                }
}

template <class T>
void dwconv7x7_bwd_weight_ref(const T* dy, const T* x, index_t N, index_t H, index_t W, index_t C, T* dw, T* db)
{
    for (index_t c = 0; c < C; ++c) {
        for (index_t kh = 0; kh < 7; ++kh)
            for (index_t kw = 0; kw < 7; ++kw) {
                double s = 0;
                for (index_t n = 0; n < N; ++n)
                    for (index_t h = 0; h < H; ++h)
                        for (index_t wo = 0; wo < W; ++wo) {
                            index_t ih = h + kh - 3, iw = wo + kw - 3;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            s += static_cast<double>(dy[((n * H + h) * W + wo) * C + c]) * x[((n * H + ih) * W + iw) * C + c];
                        }
                dw[(kh * 7 + kw) * C + c] += static_cast<T>(s);
            }
        if (db) {
            double s = 0;
            for (index_t i = 0; i < N * H * W; ++i) s += dy[i * C + c];
            db[c] += static_cast<T>(s);
        }
    }
}

} // namespace convnextv2::kernels
