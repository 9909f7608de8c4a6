// SPDX-License-Identifier: MIT
// Finite-difference gradient checker for any layer (public, so users can check their own layers).
// Loss L = Σ y·g for a fixed random g; the analytic gradients come from backward(g, &dx); the
// numeric ones from central differences (L(p+eps) − L(p−eps)) / 2eps on the inputs and on every
// parameter. A layer with the optional backward(dy, dx, accumulate) is also checked to give the
// same gradients with accumulate = false into a buffer of NaNs. Run it on layer<double>: kernels
// are templates on the scalar type.
#pragma once
#include "../core/rng.hpp"
#include "../layers/concepts.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace convnextv2::testing {

struct gradcheck_options {
    double eps = 1e-6;
    double rtol = 1e-5;                 // |a−n| <= atol + rtol·max(|a|,|n|)
    double atol = 1e-8;
    index_t max_checks_per_tensor = 64; // elements probed per tensor (spread evenly)
    std::uint64_t seed = 1;
    bool randomize_params = true;       // fill every parameter with U(−1,1)·param_scale
    double param_scale = 0.5;
    bool check_input = true;
};

struct gradcheck_result {
    bool ok = true;
    double worst_error = 0;      // worst |a−n| / (atol + rtol·max(|a|,|n|)); <= 1 passes
    std::string worst_where;
    index_t checked = 0;
    std::string report() const
    {
        std::ostringstream os;
        os << (ok ? "gradcheck passed" : "gradcheck FAILED") << ": " << checked << " elements, worst ratio " << worst_error
           << " at " << worst_where;
        return os.str();
    }
};

namespace detail {
template <class L>
double loss_of(L& layer, const tensor<double>& x, const tensor<double>& g, tensor<double>& y)
{
    layer.forward(x, y);
    double s = 0;
    for (index_t i = 0; i < y.size(); ++i) s += y[i] * g[i];
    return s;
}
inline void note(gradcheck_result& r, const gradcheck_options& o, double a, double n, const std::string& where)
{
    double tol = o.atol + o.rtol * std::max(std::fabs(a), std::fabs(n));
    double ratio = std::fabs(a - n) / tol;
    if (!std::isfinite(a) || !std::isfinite(n)) ratio = std::numeric_limits<double>::infinity();
    ++r.checked;
    if (r.worst_where.empty() || !(ratio <= r.worst_error)) {
        r.worst_error = ratio;
        std::ostringstream os;
        os << where << " analytic " << a << " numeric " << n;
        r.worst_where = os.str();
    }
    if (!(ratio <= 1.0)) r.ok = false;
}
} // namespace detail

// Checks a layer already set up for x.shape().
template <class L>
gradcheck_result check_gradients(L& layer, tensor<double> x, const gradcheck_options& o = {})
{
    static_assert(std::is_same_v<typename L::scalar_type, double>, "gradcheck runs on layer<double>");
    counter_rng rng(o.seed, 77);
    param_list<double> params;
    layer.collect_params(params, "");
    if (o.randomize_params)
        for (auto& p : params)
            for (auto& v : *p.value) v = rng.uniform(-1, 1) * o.param_scale;

    tensor<double> y;
    layer.forward(x, y);
    tensor<double> g(y.shape());
    for (auto& v : g) v = rng.uniform(-1, 1);

    for (auto& p : params) p.grad->zero();
    tensor<double> dx(x.shape(), 0.0);
    layer.forward(x, y);
    layer.backward(g, &dx);

    gradcheck_result r;
    auto probe = [&](tensor<double>& t, const tensor<double>& analytic, const std::string& name, tensor<double>& input) {
        index_t n = t.size();
        index_t step = std::max<index_t>(1, n / std::max<index_t>(o.max_checks_per_tensor, 1));
        tensor<double> tmp;
        for (index_t i = 0; i < n; i += step) {
            double saved = t[i];
            t[i] = saved + o.eps;
            double lp = detail::loss_of(layer, input, g, tmp);
            t[i] = saved - o.eps;
            double lm = detail::loss_of(layer, input, g, tmp);
            t[i] = saved;
            detail::note(r, o, analytic[i], (lp - lm) / (2 * o.eps), name + "[" + std::to_string(i) + "]");
        }
    };
    if (o.check_input) probe(x, dx, "input", x);
    for (auto& p : params) {
        tensor<double> analytic = *p.grad;
        probe(*p.value, analytic, p.name.empty() ? "param" : p.name, x);
    }
    if constexpr (convnextv2::detail::has_backward_overwrite<L>::value) {
        // backward(g, &dx, false) must give the same gradients into a buffer it may not read
        // (filled with NaN here) as the accumulating call into zeros did above.
        std::vector<tensor<double>> first;
        for (auto& p : params) { first.push_back(*p.grad); p.grad->zero(); }
        tensor<double> dx2(x.shape(), std::numeric_limits<double>::quiet_NaN());
        layer.forward(x, y);
        layer.backward(g, &dx2, false);
        for (index_t i = 0; i < dx.size(); ++i) detail::note(r, o, dx[i], dx2[i], "input (accumulate = false)[" + std::to_string(i) + "]");
        for (std::size_t k = 0; k < params.size(); ++k)
            for (index_t i = 0; i < first[k].size(); ++i)
                detail::note(r, o, first[k][i], (*params[k].grad)[i], params[k].name + " (accumulate = false)[" + std::to_string(i) + "]");
    }
    return r;
}

// Sets the layer up for `in_shape`, draws a random input in U(−1,1) and checks it.
template <class L>
gradcheck_result check_layer(L& layer, const shape_t& in_shape, const gradcheck_options& o = {})
{
    layer.setup(in_shape);
    counter_rng rng(o.seed, 11);
    tensor<double> x(in_shape);
    for (auto& v : x) v = rng.uniform(-1, 1);
    return check_gradients(layer, std::move(x), o);
}

} // namespace convnextv2::testing
