// SPDX-License-Identifier: MIT
// var<T>: the user's handle on a tape node (Flashlight's Variable): value(), grad(),
// requires_grad(). Leaves come from a tensor (copied into the tape, gradient owned by the tape)
// or by reference to an existing parameter and its grad tensor, so a backward() accumulates
// straight into a layer's own parameter gradients. A var off any tape is a constant: what ops
// return under no_grad or when none of their inputs needs a gradient.
#pragma once
#include "tape.hpp"

namespace convnextv2::autograd {

template <class T>
class var {
public:
    var() = default;
    // A constant, on no tape.
    explicit var(tensor<T> value) : value_(std::make_shared<tensor<T>>(std::move(value))) {}
    // Node `id` of tape t.
    var(tape<T>& t, std::size_t id) : tape_(&t), id_(id), value_(t.at(id).value) {}

    const tensor<T>& value() const { return *value_; }
    const shape_t& shape() const { return value_->shape(); }
    // The single element of a scalar (a loss).
    T item() const
    {
        CONVNEXTV2_CHECK(value_->size() == 1, "autograd: item() needs one element, got ", to_string(shape()));
        return (*value_)[0];
    }

    bool requires_grad() const { return tape_ && tape_->at(id_).requires_grad; }
    // dL/d(this) from the last backward() (zeros when no gradient reached it).
    const tensor<T>& grad() const
    {
        CONVNEXTV2_CHECK(requires_grad(), "autograd: grad() of a variable that does not require grad");
        return *tape_->grad_for(id_);
    }

    void backward(backward_options o = {}) const
    {
        CONVNEXTV2_CHECK(tape_, "autograd: backward() of a constant");
        tape_->backward(*this, o);
    }

    tape<T>* owner() const { return tape_; }
    std::size_t id() const { return id_; }
    const std::shared_ptr<tensor<T>>& storage() const { return value_; }

private:
    tape<T>* tape_ = nullptr;
    std::size_t id_ = 0;
    std::shared_ptr<tensor<T>> value_;
};

// A leaf holding a copy of x; its gradient starts at zero and accumulates over backward() calls.
template <class T>
var<T> leaf(tape<T>& t, tensor<T> x, bool requires_grad = true)
{
    auto g = requires_grad ? std::make_shared<tensor<T>>(x.shape(), T(0)) : nullptr;
    return var<T>(t, t.push_leaf(std::make_shared<tensor<T>>(std::move(x)), std::move(g), requires_grad));
}

// A leaf that is `value` itself (not a copy) whose gradient accumulates into `grad`, e.g. a
// layer's weight and weight_grad. Both must outlive the tape's use of them; grad is resized and
// zeroed only when its shape differs from value's.
template <class T>
var<T> param(tape<T>& t, tensor<T>& value, tensor<T>& grad)
{
    if (grad.shape() != value.shape()) { grad.resize(value.shape()); grad.zero(); }
    auto borrow = [](tensor<T>& r) { return std::shared_ptr<tensor<T>>(&r, [](tensor<T>*) {}); };
    return var<T>(t, t.push_leaf(borrow(value), borrow(grad), true));
}

// A constant (no tape, no gradient): targets, masks, fixed inputs.
template <class T>
var<T> constant(tensor<T> x)
{
    return var<T>(std::move(x));
}

} // namespace convnextv2::autograd
