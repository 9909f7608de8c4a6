// SPDX-License-Identifier: MIT
// residual<Body, Branch>: y = x + branch(body(x)). Branch is applied to the body's output only
// (ConvNeXt's drop path); the default identity branch costs nothing. Gradients fan out by
// accumulation: dx += dy (skip path) and the body's backward adds its own part.
#pragma once
#include "../core/grad_pool.hpp"
#include "../core/grad_write.hpp"
#include "../core/profile.hpp"
#include "../layers/concepts.hpp"

#include <type_traits>
#include <utility>

namespace convnextv2 {

// The do-nothing branch.
template <class T>
struct identity {
    using scalar_type = T;
    shape_t setup(const shape_t& in) { return in; }
    void forward(const tensor<T>& x, tensor<T>& y) { y = x; }
    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        if (dx) pass_grad(dy.data(), dy.size(), dx->data(), accumulate);
    }
    void collect_params(param_list<T>&, const std::string&) {}
};

// Whether a branch offers forward_add(x, skip, y): y = skip + forward(x) in one pass.
template <class B, class = void>
struct has_forward_add : std::false_type {};
template <class B>
struct has_forward_add<B, std::void_t<decltype(std::declval<B&>().forward_add(
                              std::declval<const tensor<typename B::scalar_type>&>(),
                              std::declval<const tensor<typename B::scalar_type>&>(),
                              std::declval<tensor<typename B::scalar_type>&>()))>> : std::true_type {};

template <class Body, class Branch = identity<typename Body::scalar_type>>
struct residual {
    static_assert(check_layer<Body>(), "residual<Body>: Body must be a layer (see layers/concepts.hpp)");
    static_assert(check_layer<Branch>(), "residual<Body, Branch>: Branch must be a layer");
    using scalar_type = typename Body::scalar_type;
    using T = scalar_type;
    static constexpr bool plain = std::is_same_v<Branch, identity<T>>;

    Body body;
    Branch branch;

    shape_t setup(const shape_t& in)
    {
        shape_t s = branch.setup(body.setup(in));
        CONVNEXTV2_CHECK(s == in, "residual: body output ", to_string(s), " must equal its input ", to_string(in));
        return s;
    }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        body.forward(x, t_);
        if constexpr (has_forward_add<Branch>::value) {  // drop path: branch and add in one pass
            branch.forward_add(t_, x, y);
            return;
        }
        const tensor<T>* u = &t_;
        if constexpr (!plain) { branch.forward(t_, u_); u = &u_; }
        profile::scope prof_(profile::kind::residual, profile::pass::fwd);
        y.resize_like(x);
        const T* xp = x.data();
        const T* up = u->data();
        T* yp = y.data();
        parallel_for(0, x.size(), add_grain, [=](index_t lo, index_t hi) {
            for (index_t i = lo; i < hi; ++i) yp[i] = xp[i] + up[i];
        });
    }

    // The skip path writes (or adds) dy into dx first; the body then accumulates onto it.
    void backward(const tensor<T>& dy, tensor<T>* dx, bool accumulate = true)
    {
        if (dx) {
            profile::scope prof_(profile::kind::residual, profile::pass::bwd);
            pass_grad(dy.data(), dy.size(), dx->data(), accumulate);
        }
        if constexpr (plain) {
            run_backward(body, dy, dx, true);
        } else {
            gt_ = grad_pool<T>::local().acquire(t_.shape(), false);
            run_backward(branch, dy, &gt_, false);
            run_backward(body, gt_, dx, true);
            grad_pool<T>::local().release(gt_);
        }
    }

    void collect_params(param_list<T>& out, const std::string& prefix)
    {
        body.collect_params(out, prefix);
        branch.collect_params(out, prefix);
    }

    template <class F>
    void visit(F& f)
    {
        visit_all(body, f);
        visit_all(branch, f);
    }

private:
    static constexpr index_t add_grain = index_t{1} << 15;
    tensor<T> t_, u_, gt_;
};

} // namespace convnextv2
