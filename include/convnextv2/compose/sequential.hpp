// SPDX-License-Identifier: MIT
// sequential<Parts...>: runs its parts in order, x -> p0 -> p1 -> ... -> y, and backward in
// reverse. Holds the intermediate activations (they are the inputs the parts cached); their
// gradients are borrowed from the thread's grad_pool only while backward passes between parts. Child names default to "0", "1", ...; a named
// composite (e.g. the ConvNeXt block) sets them to the official names in its constructor.
#pragma once
#include "../core/grad_pool.hpp"
#include "../core/profile.hpp"
#include "../layers/concepts.hpp"

#include <array>
#include <string>
#include <tuple>

namespace convnextv2 {

template <class... Parts>
struct sequential {
    static_assert(sizeof...(Parts) >= 1, "sequential<> needs at least one part");
    static_assert((check_layer<Parts>() && ...), "sequential<...>: every part must be a layer (see layers/concepts.hpp)");
    using first_type = std::tuple_element_t<0, std::tuple<Parts...>>;
    using scalar_type = typename first_type::scalar_type;
    static_assert((std::is_same_v<scalar_type, typename Parts::scalar_type> && ...),
                  "sequential<...>: all parts must use the same scalar type");
    static constexpr std::size_t size = sizeof...(Parts);

    std::tuple<Parts...> parts;
    std::array<std::string, size> names = default_names();

    template <std::size_t I>
    auto& get() { return std::get<I>(parts); }
    template <std::size_t I>
    const auto& get() const { return std::get<I>(parts); }

    shape_t setup(const shape_t& in)
    {
        shape_t s = in;
        for_each_index([&](auto i) { s = std::get<i>(parts).setup(s); });
        return s;
    }

    void forward(const tensor<scalar_type>& x, tensor<scalar_type>& y)
    {
        for_each_index([&](auto i) {
            constexpr std::size_t k = decltype(i)::value;
            const tensor<scalar_type>& in = (k == 0) ? x : acts_[k == 0 ? 0 : k - 1];
            tensor<scalar_type>& out = (k + 1 == size) ? y : acts_[k];
            std::get<k>(parts).forward(in, out);
        });
    }

    // Part k > 0 writes its input gradient into a borrowed, unfilled buffer (run_backward
    // zero-fills it only for parts that can only accumulate); part 0 into dx as asked.
    void backward(const tensor<scalar_type>& dy, tensor<scalar_type>* dx, bool accumulate = true)
    {
        for_each_index_reverse([&](auto i) {
            constexpr std::size_t k = decltype(i)::value;
            const tensor<scalar_type>& g_out = (k + 1 == size) ? dy : grads_[k];
            if constexpr (k > 0) {
                grads_[k - 1] = grad_pool<scalar_type>::local().acquire(acts_[k - 1].shape(), false);
                run_backward(std::get<k>(parts), g_out, &grads_[k - 1], false);
            } else {
                run_backward(std::get<k>(parts), g_out, dx, accumulate);
            }
            if constexpr (k + 1 < size) grad_pool<scalar_type>::local().release(grads_[k]);
        });
    }

    void collect_params(param_list<scalar_type>& out, const std::string& prefix)
    {
        for_each_index([&](auto i) { std::get<i>(parts).collect_params(out, join_name(prefix, names[i])); });
    }

    template <class F>
    void visit(F& f)
    {
        for_each_index([&](auto i) { visit_all(std::get<i>(parts), f); });
    }

    // f(part) on each direct part, in order.
    template <class F>
    void visit_parts(F&& f)
    {
        for_each_index([&](auto i) { f(std::get<i>(parts)); });
    }

    // Output of part k (k < size-1) from the last forward: feature maps for backbone use.
    const tensor<scalar_type>& activation(std::size_t k) const { return acts_[k]; }

private:
    static constexpr std::size_t n_acts = size > 1 ? size - 1 : 1;
    std::array<tensor<scalar_type>, n_acts> acts_;
    std::array<tensor<scalar_type>, n_acts> grads_;

    static std::array<std::string, size> default_names()
    {
        std::array<std::string, size> n;
        for (std::size_t i = 0; i < size; ++i) n[i] = std::to_string(i);
        return n;
    }
    template <class F, std::size_t... I>
    static void for_each_impl(F&& f, std::index_sequence<I...>) { (f(std::integral_constant<std::size_t, I>{}), ...); }
    template <class F, std::size_t... I>
    static void for_each_rev_impl(F&& f, std::index_sequence<I...>)
    {
        (f(std::integral_constant<std::size_t, size - 1 - I>{}), ...);
    }
    template <class F>
    static void for_each_index(F&& f) { for_each_impl(f, std::index_sequence_for<Parts...>{}); }
    template <class F>
    static void for_each_index_reverse(F&& f) { for_each_rev_impl(f, std::index_sequence_for<Parts...>{}); }
};

} // namespace convnextv2
