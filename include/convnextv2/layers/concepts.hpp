// SPDX-License-Identifier: MIT
// The layer contract. A layer is a plain, default-constructible, movable struct with:
//
//   shape_t setup(const shape_t& in)
//       requires: `in` is the input shape (NHWC for maps, [N, C] for vectors).
//       ensures:  parameters are allocated (weights zero, norms 1/0: the model initialiser
//                 fills random weights afterwards) and the output shape is returned. Throws
//                 convnextv2::error naming the layer when `in` is unsupported.
//   void forward(const tensor<T>& x, tensor<T>& y)
//       requires: setup() was called with x.shape(). x stays alive and unchanged until the
//                 matching backward() (layers may keep a pointer to it).
//       ensures:  y is resized and holds the output; whatever backward needs is cached.
//   void backward(const tensor<T>& dy, tensor<T>* dx)
//       requires: forward() ran on the current input; dy has the output shape.
//       ensures:  *dx += dL/dx when dx is not null (accumulation makes fan-out and residuals
//                 correct without special cases); every parameter gradient += its dL/dp.
//   void collect_params(param_list<T>& out, const std::string& prefix)
//       ensures:  appends one param_ref per parameter, named prefix + "." + local name.
//
// Optional members, found by detection: visit(f) on composites (calls f on every child),
// set_training(bool) (drop path), zero_grad(), and a third backward argument:
//   void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
//       accumulate = false: *dx = dL/dx, its old contents never read. The composites then hand
//       the layer a borrowed buffer without zero-filling it first (run_backward below).
#pragma once
#include "../core/grad_pool.hpp"
#include "../core/profile.hpp"
#include "param.hpp"

#include <type_traits>
#include <utility>

namespace convnextv2 {

namespace detail {
template <class L, class = void>
struct has_setup : std::false_type {};
template <class L>
struct has_setup<L, std::void_t<decltype(std::declval<L&>().setup(std::declval<const shape_t&>()))>> : std::true_type {};

template <class L, class = void>
struct has_forward : std::false_type {};
template <class L>
struct has_forward<L, std::void_t<typename L::scalar_type,
                                  decltype(std::declval<L&>().forward(std::declval<const tensor<typename L::scalar_type>&>(),
                                                                      std::declval<tensor<typename L::scalar_type>&>()))>>
    : std::true_type {};

template <class L, class = void>
struct has_backward : std::false_type {};
template <class L>
struct has_backward<L, std::void_t<typename L::scalar_type,
                                   decltype(std::declval<L&>().backward(std::declval<const tensor<typename L::scalar_type>&>(),
                                                                        std::declval<tensor<typename L::scalar_type>*>()))>>
    : std::true_type {};

template <class L, class = void>
struct has_backward_overwrite : std::false_type {};
template <class L>
struct has_backward_overwrite<L, std::void_t<typename L::scalar_type,
                                             decltype(std::declval<L&>().backward(std::declval<const tensor<typename L::scalar_type>&>(),
                                                                                  std::declval<tensor<typename L::scalar_type>*>(),
                                                                                  false))>>
    : std::true_type {};

template <class L, class = void>
struct has_collect_params : std::false_type {};
template <class L>
struct has_collect_params<L, std::void_t<typename L::scalar_type,
                                         decltype(std::declval<L&>().collect_params(
                                             std::declval<param_list<typename L::scalar_type>&>(), std::declval<const std::string&>()))>>
    : std::true_type {};

template <class L, class = void>
struct has_scalar_type : std::false_type {};
template <class L>
struct has_scalar_type<L, std::void_t<typename L::scalar_type>> : std::true_type {};

template <class L, class F, class = void>
struct has_visit : std::false_type {};
template <class L, class F>
struct has_visit<L, F, std::void_t<decltype(std::declval<L&>().visit(std::declval<F&>()))>> : std::true_type {};

template <class L, class = void>
struct has_set_training : std::false_type {};
template <class L>
struct has_set_training<L, std::void_t<decltype(std::declval<L&>().set_training(true))>> : std::true_type {};
} // namespace detail

template <class L>
inline constexpr bool is_layer_v = detail::has_scalar_type<L>::value && detail::has_setup<L>::value &&
                                   detail::has_forward<L>::value && detail::has_backward<L>::value &&
                                   detail::has_collect_params<L>::value;

// One readable message per missing member; used once at each combinator boundary.
template <class L>
constexpr bool check_layer()
{
    static_assert(detail::has_scalar_type<L>::value, "not a layer: missing `using scalar_type = T;`");
    static_assert(detail::has_setup<L>::value, "not a layer: missing `shape_t setup(const shape_t&)`");
    static_assert(detail::has_forward<L>::value, "not a layer: missing `void forward(const tensor<T>& x, tensor<T>& y)`");
    static_assert(detail::has_backward<L>::value, "not a layer: missing `void backward(const tensor<T>& dy, tensor<T>* dx)`");
    static_assert(detail::has_collect_params<L>::value,
                  "not a layer: missing `void collect_params(param_list<T>&, const std::string&)`");
    return true;
}

// Applies f to a layer and, for composites, to every descendant (pre-order).
template <class L, class F>
void visit_all(L& layer, F&& f)
{
    f(layer);
    if constexpr (detail::has_visit<L, F>::value) layer.visit(f);
}

// layer.backward with *dx = dL/dx (accumulate = false: dx's contents are garbage on entry) or
// *dx += dL/dx. A layer without the optional flag gets its buffer zero-filled first.
template <class L>
void run_backward(L& layer, const tensor<typename L::scalar_type>& dy, tensor<typename L::scalar_type>* dx, bool accumulate)
{
    if constexpr (detail::has_backward_overwrite<L>::value) {
        layer.backward(dy, dx, accumulate);
    } else {
        if (dx && !accumulate) {
            profile::scope prof_(profile::kind::grad_zero, profile::pass::bwd);
            parallel_zero(dx->data(), dx->size());
        }
        layer.backward(dy, dx);
    }
}

// The backward of `first` then `second` (y = second(first(x))): the gradient between them, of shape
// `mid`, is borrowed from the thread's grad_pool for the moment it is live. The fused layers'
// fallback to their parts in turn.
template <class First, class Second>
void backward_in_turn(First& first, Second& second, const shape_t& mid, const tensor<typename First::scalar_type>& dy,
                      tensor<typename First::scalar_type>* dx, bool accumulate)
{
    using T = typename First::scalar_type;
    tensor<T> g = grad_pool<T>::local().acquire(mid, false);
    run_backward(second, dy, &g, false);
    run_backward(first, g, dx, accumulate);
    grad_pool<T>::local().release(g);
}

template <class L>
void set_training(L& layer, bool training)
{
    visit_all(layer, [training](auto& l) {
        if constexpr (detail::has_set_training<std::decay_t<decltype(l)>>::value) l.set_training(training);
    });
}

} // namespace convnextv2
