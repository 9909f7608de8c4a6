// SPDX-License-Identifier: MIT
// Differentiable ops on var<T>, each one tape node whose forward and backward call the library's
// kernels (kernels/*.hpp; no kernel math is repeated here): elementwise add/sub/mul/scale,
// sum/mean, linear (x·Wᵀ + b), layer_norm, gelu, grn, dwconv7x7, patch_conv, global_avg_pool,
// softmax_cross_entropy (soft targets), mse, reshape; and apply_layer, which makes any layer (or
// the whole model) one node whose backward is the layer's own fused backward. Parameter layouts
// are the layers' ([N,K] linear, [7,7,1,C] depthwise, [O,k,k,I] patch conv) so their tensors can
// be shared by reference with autograd::param. Shapes are checked when the op is recorded.
#pragma once
#include "../kernels/cross_entropy.hpp"
#include "../kernels/dwconv7x7.hpp"
#include "../kernels/gelu.hpp"
#include "../kernels/gemm.hpp"
#include "../kernels/grn.hpp"
#include "../kernels/layer_norm.hpp"
#include "../kernels/patch_conv.hpp"
#include "../kernels/pooling.hpp"
#include "../layers/concepts.hpp"
#include "variable.hpp"

#include <initializer_list>

namespace convnextv2::autograd {

namespace detail {

// Records y with its backward on the tape of the inputs, or returns y as a constant when grad
// mode is off or (unless `force`: a layer has parameters) no input requires grad.
template <class T>
var<T> record(tape<T>* t, std::initializer_list<const var<T>*> in, tensor<T> y, backward_fn<T> fn, bool force = false)
{
    for (const var<T>* v : in)
        if (!t) t = v->owner();
    bool needs = force;
    for (const var<T>* v : in) needs = needs || v->requires_grad();
    if (!t || !needs || !grad_enabled()) return var<T>(std::move(y));
    std::vector<std::size_t> ids;
    for (const var<T>* v : in) ids.push_back(t->intern(*v));
    return var<T>(*t, t->push_op(std::make_shared<tensor<T>>(std::move(y)), std::move(ids), std::move(fn)));
}

template <class T>
void check_same_shape(const char* op, const var<T>& a, const var<T>& b)
{
    CONVNEXTV2_CHECK(a.shape() == b.shape(), "autograd::", op, ": shapes ", to_string(a.shape()), " and ", to_string(b.shape()),
                     " differ");
}

template <class T>
void check_vector(const char* op, const char* what, const var<T>& v, index_t n)
{
    CONVNEXTV2_CHECK(v.value().size() == n, "autograd::", op, ": ", what, " needs ", n, " elements, got ", to_string(v.shape()));
}

// d += s·g
template <class T>
void axpy(tensor<T>& d, const tensor<T>& g, T s)
{
    for (index_t i = 0; i < d.size(); ++i) d[i] += s * g[i];
}

// Some weight-gradient kernels always write dW: a throwaway buffer when the weight needs none.
template <class T>
T* grad_or_scratch(tensor<T>* g, tensor<T>& scratch, const tensor<T>& like)
{
    if (g) return g->data();
    scratch.resize(like.shape());
    scratch.zero();
    return scratch.data();
}

template <class T>
T* data_or_null(tensor<T>* t) { return t ? t->data() : nullptr; }

} // namespace detail

// ---- elementwise, same shape ----

template <class T>
var<T> add(const var<T>& a, const var<T>& b)
{
    detail::check_same_shape("add", a, b);
    tensor<T> y(a.shape());
    for (index_t i = 0; i < y.size(); ++i) y[i] = a.value()[i] + b.value()[i];
    return detail::record<T>(nullptr, {&a, &b}, std::move(y), [](const grad_context<T>& c) {
        for (std::size_t k = 0; k < 2; ++k)
            if (tensor<T>* d = c.dx(k)) detail::axpy(*d, c.dy, T(1));
    });
}

template <class T>
var<T> sub(const var<T>& a, const var<T>& b)
{
    detail::check_same_shape("sub", a, b);
    tensor<T> y(a.shape());
    for (index_t i = 0; i < y.size(); ++i) y[i] = a.value()[i] - b.value()[i];
    return detail::record<T>(nullptr, {&a, &b}, std::move(y), [](const grad_context<T>& c) {
        if (tensor<T>* d = c.dx(0)) detail::axpy(*d, c.dy, T(1));
        if (tensor<T>* d = c.dx(1)) detail::axpy(*d, c.dy, T(-1));
    });
}

template <class T>
var<T> mul(const var<T>& a, const var<T>& b)
{
    detail::check_same_shape("mul", a, b);
    tensor<T> y(a.shape());
    for (index_t i = 0; i < y.size(); ++i) y[i] = a.value()[i] * b.value()[i];
    return detail::record<T>(nullptr, {&a, &b}, std::move(y), [](const grad_context<T>& c) {
        for (std::size_t k = 0; k < 2; ++k)
            if (tensor<T>* d = c.dx(k)) {
                const tensor<T>& other = c.x(1 - k);
                for (index_t i = 0; i < d->size(); ++i) (*d)[i] += c.dy[i] * other[i];
            }
    });
}

template <class T>
var<T> scale(const var<T>& a, T s)
{
    tensor<T> y(a.shape());
    for (index_t i = 0; i < y.size(); ++i) y[i] = s * a.value()[i];
    return detail::record<T>(nullptr, {&a}, std::move(y), [s](const grad_context<T>& c) {
        if (tensor<T>* d = c.dx(0)) detail::axpy(*d, c.dy, s);
    });
}

template <class T>
var<T> operator+(const var<T>& a, const var<T>& b) { return add(a, b); }
template <class T>
var<T> operator-(const var<T>& a, const var<T>& b) { return sub(a, b); }
template <class T>
var<T> operator*(const var<T>& a, const var<T>& b) { return mul(a, b); }
template <class T>
var<T> operator*(T s, const var<T>& a) { return scale(a, s); }

// Same elements, new shape (a copy: values are owned per node).
template <class T>
var<T> reshape(const var<T>& a, shape_t s)
{
    tensor<T> y = a.value();
    y.reshape(std::move(s));
    return detail::record<T>(nullptr, {&a}, std::move(y), [](const grad_context<T>& c) {
        if (tensor<T>* d = c.dx(0)) detail::axpy(*d, c.dy, T(1));
    });
}

// ---- reductions to a scalar (shape {1}) ----

template <class T>
var<T> sum(const var<T>& a)
{
    double s = 0;
    for (T v : a.value()) s += static_cast<double>(v);
    return detail::record<T>(nullptr, {&a}, tensor<T>({1}, static_cast<T>(s)), [](const grad_context<T>& c) {
        if (tensor<T>* d = c.dx(0))
            for (T& v : *d) v += c.dy[0];
    });
}

template <class T>
var<T> mean(const var<T>& a)
{
    return scale(sum(a), static_cast<T>(1.0 / static_cast<double>(std::max<index_t>(a.value().size(), 1))));
}

// mean((a − b)²) over all elements.
template <class T>
var<T> mse(const var<T>& a, const var<T>& b)
{
    detail::check_same_shape("mse", a, b);
    const index_t n = a.value().size();
    double s = 0;
    for (index_t i = 0; i < n; ++i) {
        const double e = static_cast<double>(a.value()[i]) - static_cast<double>(b.value()[i]);
        s += e * e;
    }
    const T k = static_cast<T>(2.0 / static_cast<double>(std::max<index_t>(n, 1)));
    return detail::record<T>(nullptr, {&a, &b}, tensor<T>({1}, static_cast<T>(s / std::max<index_t>(n, 1))),
                             [k](const grad_context<T>& c) {
                                 const tensor<T>&x = c.x(0), &t = c.x(1);
                                 const T g = k * c.dy[0];
                                 tensor<T>* da = c.dx(0);
                                 tensor<T>* db = c.dx(1);
                                 for (index_t i = 0; i < x.size(); ++i) {
                                     const T e = g * (x[i] - t[i]);
                                     if (da) (*da)[i] += e;
                                     if (db) (*db)[i] -= e;
                                 }
                             });
}

// Mean over N of −Σ_k t·log_softmax(z) for logits [N, K] and soft targets [N, K] (constants).
template <class T>
var<T> softmax_cross_entropy(const var<T>& logits, const tensor<T>& targets)
{
    const tensor<T>& z = logits.value();
    CONVNEXTV2_CHECK(z.rank() == 2 && targets.shape() == z.shape(), "autograd::softmax_cross_entropy: logits ",
                     to_string(z.shape()), " and targets ", to_string(targets.shape()), " must both be [N, K]");
    tensor<T> dz(z.shape());
    const double loss = kernels::softmax_cross_entropy(z.data(), z.dim(0), z.dim(1), targets.data(), dz.data());
    return detail::record<T>(nullptr, {&logits}, tensor<T>({1}, static_cast<T>(loss)), [dz](const grad_context<T>& c) {
        if (tensor<T>* d = c.dx(0)) detail::axpy(*d, dz, c.dy[0]);
    });
}

// ---- layers' math as ops ----

// y = x·wᵀ (+ b) over the last axis: x [..., K], w [N, K], b [N].
template <class T>
var<T> linear(const var<T>& x, const var<T>& w, const var<T>* b)
{
    const tensor<T>& xv = x.value();
    const tensor<T>& wv = w.value();
    CONVNEXTV2_CHECK(xv.rank() >= 1 && wv.rank() == 2 && wv.dim(1) == xv.dim(-1), "autograd::linear: x ", to_string(xv.shape()),
                     " and w ", to_string(wv.shape()), " do not fit ([..., K] and [N, K])");
    const index_t K = wv.dim(1), N = wv.dim(0), M = xv.size() / K;
    if (b) detail::check_vector("linear", "bias", *b, N);
    shape_t s = xv.shape();
    s.back() = N;
    tensor<T> y(s);
    kernels::linear_fwd(xv.data(), M, K, wv.data(), b ? b->value().data() : nullptr, N, y.data());
    auto fn = [M, K, N](const grad_context<T>& c) {
        tensor<T>* dx = c.dx(0);
        tensor<T>* dw = c.dx(1);
        tensor<T>* db = c.inputs.size() > 2 ? c.dx(2) : nullptr;
        if (dx) kernels::linear_bwd_data(c.dy.data(), M, N, c.x(1).data(), K, dx->data());
        tensor<T> scratch;
        if (dw || db)
            kernels::linear_bwd_weight(c.dy.data(), c.x(0).data(), M, K, N, detail::grad_or_scratch(dw, scratch, c.x(1)),
                                       detail::data_or_null(db));
    };
    if (b) return detail::record<T>(nullptr, {&x, &w, b}, std::move(y), fn);
    return detail::record<T>(nullptr, {&x, &w}, std::move(y), fn);
}
template <class T>
var<T> linear(const var<T>& x, const var<T>& w) { return linear(x, w, static_cast<const var<T>*>(nullptr)); }
template <class T>
var<T> linear(const var<T>& x, const var<T>& w, const var<T>& b) { return linear(x, w, &b); }

// LayerNorm over the last axis with weight w [C] and bias b [C].
template <class T>
var<T> layer_norm(const var<T>& x, const var<T>& w, const var<T>& b, double eps = 1e-6)
{
    const tensor<T>& xv = x.value();
    CONVNEXTV2_CHECK(xv.rank() >= 1 && xv.dim(-1) > 0, "autograd::layer_norm: bad input ", to_string(xv.shape()));
    const index_t C = xv.dim(-1), M = xv.size() / C;
    detail::check_vector("layer_norm", "weight", w, C);
    detail::check_vector("layer_norm", "bias", b, C);
    std::vector<double> mean(static_cast<std::size_t>(M)), rstd(static_cast<std::size_t>(M));
    tensor<T> y(xv.shape());
    kernels::layer_norm_fwd(xv.data(), M, C, w.value().data(), b.value().data(), eps, y.data(), mean.data(), rstd.data());
    return detail::record<T>(nullptr, {&x, &w, &b}, std::move(y),
                             [M, C, mean = std::move(mean), rstd = std::move(rstd)](const grad_context<T>& c) {
                                 kernels::layer_norm_bwd(c.dy.data(), c.x(0).data(), M, C, c.x(1).data(), mean.data(), rstd.data(),
                                                         detail::data_or_null(c.dx(0)), detail::data_or_null(c.dx(1)),
                                                         detail::data_or_null(c.dx(2)));
                             });
}

// Exact (erf) GELU.
template <class T>
var<T> gelu(const var<T>& x)
{
    tensor<T> y(x.shape());
    kernels::gelu_fwd(x.value().data(), y.size(), y.data());
    return detail::record<T>(nullptr, {&x}, std::move(y), [](const grad_context<T>& c) {
        if (tensor<T>* d = c.dx(0)) kernels::gelu_bwd(c.x(0).data(), c.dy.data(), c.dy.size(), d->data());
    });
}

// GRN on NHWC x [N, H, W, D] with gamma, beta [D].
template <class T>
var<T> grn(const var<T>& x, const var<T>& gamma, const var<T>& beta)
{
    const tensor<T>& xv = x.value();
    CONVNEXTV2_CHECK(xv.rank() == 4, "autograd::grn: expected NHWC input, got ", to_string(xv.shape()));
    const index_t N = xv.dim(0), S = xv.dim(1) * xv.dim(2), D = xv.dim(3);
    detail::check_vector("grn", "gamma", gamma, D);
    detail::check_vector("grn", "beta", beta, D);
    kernels::grn_stats st;
    tensor<T> y(xv.shape());
    kernels::grn_fwd(xv.data(), N, S, D, gamma.value().data(), beta.value().data(), y.data(), st);
    return detail::record<T>(nullptr, {&x, &gamma, &beta}, std::move(y), [N, S, D, st = std::move(st)](const grad_context<T>& c) {
        kernels::grn_bwd(c.dy.data(), c.x(0).data(), N, S, D, c.x(1).data(), st, detail::data_or_null(c.dx(0)),
                         detail::data_or_null(c.dx(1)), detail::data_or_null(c.dx(2)));
    });
}

// Depthwise 7x7 conv, padding 3, on NHWC x [N, H, W, C]; w holds 49·C values laid out [7, 7, (1,) C].
template <class T>
var<T> dwconv7x7(const var<T>& x, const var<T>& w, const var<T>& b)
{
    const tensor<T>& xv = x.value();
    CONVNEXTV2_CHECK(xv.rank() == 4, "autograd::dwconv7x7: expected NHWC input, got ", to_string(xv.shape()));
    const index_t N = xv.dim(0), H = xv.dim(1), W = xv.dim(2), C = xv.dim(3);
    detail::check_vector("dwconv7x7", "weight", w, 49 * C);
    detail::check_vector("dwconv7x7", "bias", b, C);
    tensor<T> y(xv.shape());
    kernels::dwconv7x7_fwd(xv.data(), N, H, W, C, w.value().data(), b.value().data(), y.data());
    return detail::record<T>(nullptr, {&x, &w, &b}, std::move(y), [N, H, W, C](const grad_context<T>& c) {
        tensor<T>* dw = c.dx(1);
        tensor<T>* db = c.dx(2);
        tensor<T> scratch;
        if (dw || db)
            kernels::dwconv7x7_bwd_weight(c.dy.data(), c.x(0).data(), N, H, W, C, detail::grad_or_scratch(dw, scratch, c.x(1)),
                                          detail::data_or_null(db));
        if (tensor<T>* dx = c.dx(0)) kernels::dwconv7x7_bwd_data(c.dy.data(), N, H, W, C, c.x(1).data(), dx->data());
    });
}

// Non-overlapping k x k, stride k conv on NHWC x [N, H, W, I]; w [O, k, k, I], b [O]; output
// [N, H/k, W/k, O] rounded down, as nn.Conv2d (rows and columns past the last window get no gradient).
template <class T>
var<T> patch_conv(const var<T>& x, const var<T>& w, const var<T>& b)
{
    const tensor<T>& xv = x.value();
    const tensor<T>& wv = w.value();
    CONVNEXTV2_CHECK(xv.rank() == 4 && wv.rank() == 4 && wv.dim(1) == wv.dim(2) && wv.dim(1) > 0 && wv.dim(3) == xv.dim(3) &&
                         xv.dim(1) >= wv.dim(1) && xv.dim(2) >= wv.dim(1),
                     "autograd::patch_conv: x ", to_string(xv.shape()), " and w ", to_string(wv.shape()),
                     " do not fit (NHWC with H, W at least k, and [O, k, k, I])");
    const index_t N = xv.dim(0), H = xv.dim(1), W = xv.dim(2), I = xv.dim(3), O = wv.dim(0), k = wv.dim(1);
    detail::check_vector("patch_conv", "bias", b, O);
    tensor<T> y({N, H / k, W / k, O});
    tensor<T> patches({N * (H / k) * (W / k), k * k * I});
    kernels::patch_conv_fwd(xv.data(), N, H, W, I, k, wv.data(), b.value().data(), O, y.data(), patches.data());
    return detail::record<T>(nullptr, {&x, &w, &b}, std::move(y),
                             [N, H, W, I, O, k, patches = std::move(patches)](const grad_context<T>& c) {
                                 tensor<T>* dw = c.dx(1);
                                 tensor<T>* db = c.dx(2);
                                 tensor<T> scratch;
                                 if (dw || db)
                                     kernels::patch_conv_bwd_weight(c.dy.data(), patches.data(), N, H, W, I, k, O,
                                                                    detail::grad_or_scratch(dw, scratch, c.x(1)),
                                                                    detail::data_or_null(db));
                                 if (tensor<T>* dx = c.dx(0)) {
                                     scratch.resize(patches.shape());  // the kernel zeroes it
                                     kernels::patch_conv_bwd_data(c.dy.data(), N, H, W, I, k, c.x(1).data(), O, dx->data(),
                                                                  scratch.data());
                                 }
                             });
}

// Mean over H, W of NHWC x [N, H, W, C] -> [N, C].
template <class T>
var<T> global_avg_pool(const var<T>& x)
{
    const tensor<T>& xv = x.value();
    CONVNEXTV2_CHECK(xv.rank() == 4, "autograd::global_avg_pool: expected NHWC input, got ", to_string(xv.shape()));
    const index_t N = xv.dim(0), S = xv.dim(1) * xv.dim(2), C = xv.dim(3);
    tensor<T> y({N, C});
    kernels::global_avg_pool_fwd(xv.data(), N, S, C, y.data());
    return detail::record<T>(nullptr, {&x}, std::move(y), [N, S, C](const grad_context<T>& c) {
        if (tensor<T>* d = c.dx(0)) kernels::global_avg_pool_bwd(c.dy.data(), N, S, C, d->data());
    });
}

// ---- whole layers ----

// Runs layer.forward(x) now and records one node whose backward is layer.backward(dy, &dx): the
// layer's parameter gradients accumulate into its own grad tensors (recorded even when x is a
// constant). Works for any layer of the contract (layers/concepts.hpp) and for convnextv2_model.
// The layer must be set up for x, outlive the backward, and appear once per graph (its forward
// caches the state its backward uses).
template <class T, class L>
var<T> apply_layer(tape<T>& t, L& layer, const var<T>& x)
{
    static_assert(convnextv2::detail::has_forward<L>::value && convnextv2::detail::has_backward<L>::value,
                  "apply_layer: L needs scalar_type, forward(const tensor<T>&, tensor<T>&) and backward(const tensor<T>&, tensor<T>*)");
    static_assert(std::is_same_v<typename L::scalar_type, T>, "apply_layer: the layer's scalar type differs from the tape's");
    tensor<T> y;
    layer.forward(x.value(), y);
    return detail::record<T>(&t, {&x}, std::move(y), [&layer](const grad_context<T>& c) { layer.backward(c.dy, c.dx(0)); },
                             /*force=*/true);
}

} // namespace convnextv2::autograd
