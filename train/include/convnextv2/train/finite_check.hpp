// SPDX-License-Identifier: MIT
// Naming where a NaN/Inf comes from. When the training loss is not finite, the trainer re-runs
// the forward pass of the same batch layer by layer (probe_forward) and reports the first layer
// whose output is not finite under its official name (e.g. "stages.2.1.grn",
// "downsample_layers.0.1"), or the input batch, plus the parameters that hold non-finite values.
// The probe walks the composed net (sequential / repeat / residual, and the fused layers'
// parts) generically, so it follows the model's structure without a hand-written list of layers. It costs nothing until a loss
// is non-finite. After a probe the layers' cached inputs point at the probe's temporaries: run
// forward() again before any backward().
#pragma once
#include <convnextv2/compose/repeat.hpp>
#include <convnextv2/compose/residual.hpp>
#include <convnextv2/compose/sequential.hpp>
#include <convnextv2/models/convnextv2.hpp>

#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace convnextv2::train {

namespace finite_detail {
template <class... P>
std::true_type is_sequential(const sequential<P...>*);
std::false_type is_sequential(...);
template <class B>
std::true_type is_repeat(const repeat<B>*);
std::false_type is_repeat(...);
template <class B, class R>
std::true_type is_residual(const residual<B, R>*);
std::false_type is_residual(...);
template <class T>
std::true_type is_bottleneck(const inverted_bottleneck<T>*);
std::false_type is_bottleneck(...);
template <class T>
std::true_type is_grn_linear(const grn_linear<T>*);
std::false_type is_grn_linear(...);
// f(0) && f(1) && ... && f(N-1), stopping at the first false.
template <class F, std::size_t... I>
bool all_indices(F& f, std::index_sequence<I...>)
{
    return (f(std::integral_constant<std::size_t, I>{}) && ...);
}
} // namespace finite_detail

template <class T>
bool all_finite(const tensor<T>& t)
{
    const T* p = t.data();
    for (index_t i = 0, n = t.size(); i < n; ++i)
        if (!std::isfinite(p[i])) return false;
    return true;
}

// Runs `layer` on x into y, descending into composites; returns false and sets `bad` to the
// name of the first (innermost, earliest) layer whose output is not finite.
template <class L, class T>
bool probe_forward(L& layer, const tensor<T>& x, tensor<T>& y, const std::string& name, std::string& bad)
{
    if constexpr (decltype(finite_detail::is_sequential(&layer))::value) {
        constexpr std::size_t n = std::tuple_size_v<std::decay_t<decltype(layer.parts)>>;
        std::vector<tensor<T>> acts(n > 1 ? n - 1 : 1);
        const tensor<T>* in = &x;
        auto step = [&](auto i) {
            constexpr std::size_t k = decltype(i)::value;
            tensor<T>& out = (k + 1 == n) ? y : acts[k];
            if (!probe_forward(layer.template get<k>(), *in, out, join_name(name, layer.names[k]), bad)) return false;
            in = &out;
            return true;
        };
        return finite_detail::all_indices(step, std::make_index_sequence<n>{});
    } else if constexpr (decltype(finite_detail::is_repeat(&layer))::value) {
        if (layer.blocks.empty()) { y = x; return true; }
        tensor<T> a, b;
        const tensor<T>* in = &x;
        for (std::size_t k = 0; k < layer.blocks.size(); ++k) {
            tensor<T>& out = k + 1 == layer.blocks.size() ? y : (k % 2 ? b : a);
            if (!probe_forward(layer.blocks[k], *in, out, join_name(name, std::to_string(k)), bad)) return false;
            in = &out;
        }
        return true;
    } else if constexpr (decltype(finite_detail::is_residual(&layer))::value) {
        tensor<T> t, u;
        if (!probe_forward(layer.body, x, t, name, bad)) return false;
        if (!probe_forward(layer.branch, t, u, join_name(name, "drop_path"), bad)) return false;
        y.resize_like(x);
        for (index_t i = 0, m = x.size(); i < m; ++i) y[i] = x[i] + u[i];
        if (!all_finite(y)) { bad = name + " (residual sum)"; return false; }
        return true;
    } else if constexpr (decltype(finite_detail::is_bottleneck(&layer))::value) {  // fused layers: their parts in turn
        tensor<T> h;
        return probe_forward(layer.expand, x, h, join_name(name, "pwconv1"), bad) && probe_forward(layer.project, h, y, name, bad);
    } else if constexpr (decltype(finite_detail::is_grn_linear(&layer))::value) {
        tensor<T> z;
        return probe_forward(layer.norm, x, z, join_name(name, "grn"), bad) &&
               probe_forward(layer.proj, z, y, join_name(name, "pwconv2"), bad);
    } else {
        layer.forward(x, y);
        if (!all_finite(y)) { bad = name; return false; }
        return true;
    }
}

struct finite_report {
    bool input_finite = true;
    std::string first_bad_layer;                 // "" when every activation is finite
    std::vector<std::string> bad_params;         // parameters holding NaN/Inf

    // "; the input batch has non-finite values" / "; first non-finite activation: output of ..."
    std::string text() const
    {
        std::string s;
        if (!input_finite) s += "; the input batch has non-finite values";
        else if (!first_bad_layer.empty()) s += "; first non-finite activation: output of '" + first_bad_layer + "'";
        else s += "; every activation is finite on a re-run (the loss itself overflowed?)";
        if (!bad_params.empty()) {
            s += "; non-finite parameters: ";
            for (std::size_t i = 0; i < bad_params.size() && i < 8; ++i) s += (i ? ", " : "") + bad_params[i];
            if (bad_params.size() > 8) s += ", ... (" + std::to_string(bad_params.size()) + " in all)";
        }
        return s;
    }
};

// Re-runs the model's forward on x layer by layer (same training mode and drop-path step).
template <class T>
finite_report locate_non_finite(convnextv2_model<T>& model, const tensor<T>& x)
{
    finite_report r;
    for (auto& p : model.params())
        if (!all_finite(*p.value)) r.bad_params.push_back(p.name);
    r.input_finite = all_finite(x);
    if (!r.input_finite) return r;
    model.check_input(x.shape());
    tensor<T> logits;
    probe_forward(model.net(), x, logits, "", r.first_bad_layer);
    return r;
}

} // namespace convnextv2::train
