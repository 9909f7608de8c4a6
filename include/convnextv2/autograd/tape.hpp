// SPDX-License-Identifier: MIT
// tape<T>: a small tensor-level reverse-mode tape (STYLE A5). From micrograd: a node holds its
// inputs and a backward closure, and the closures run in reverse topological order. From
// Flashlight: gradients accumulate into each input (fan-out needs no special case), the graph is
// freed as backward proceeds unless retain_graph, and no_grad records nothing. Because the forward
// order already is a topological order, the tape is a flat std::vector appended in forward order
// and backward() walks it from the root down to 0 in a plain loop (no recursion: any depth works).
// Closures read their inputs from the tape by index rather than capturing copies (Flashlight's
// without_data); they capture only what the kernels' backward needs (e.g. LayerNorm statistics).
// Node values sit behind shared_ptr so their address never moves as the vector grows; a wrapped
// layer may keep a pointer to its input, as the layer contract allows.
#pragma once
#include "../core/tensor.hpp"

#include <functional>
#include <memory>
#include <vector>

namespace convnextv2::autograd {

template <class T>
class var;
template <class T>
class tape;

// Grad mode of the calling thread (like torch.no_grad): off inside a no_grad scope.
inline bool& grad_mode_flag()
{
    thread_local bool on = true;
    return on;
}
inline bool grad_enabled() { return grad_mode_flag(); }

// RAII: while alive, ops return constants and append nothing to any tape.
class no_grad {
public:
    no_grad() : prev_(grad_mode_flag()) { grad_mode_flag() = false; }
    ~no_grad() { grad_mode_flag() = prev_; }
    no_grad(const no_grad&) = delete;
    no_grad& operator=(const no_grad&) = delete;

private:
    bool prev_;
};

// What a backward closure sees: its own value y, dL/dy, and its inputs by position.
template <class T>
struct grad_context {
    tape<T>& t;
    const std::vector<std::size_t>& inputs;
    const tensor<T>& y;
    const tensor<T>& dy;

    const tensor<T>& x(std::size_t k) const { return t.value(inputs[k]); }
    // dL/d(input k) to accumulate into (zero on first use); null when input k needs no gradient.
    tensor<T>* dx(std::size_t k) const { return t.grad_for(inputs[k]); }
};

template <class T>
using backward_fn = std::function<void(const grad_context<T>&)>;

template <class T>
struct node {
    std::shared_ptr<tensor<T>> value;
    std::shared_ptr<tensor<T>> grad;  // leaves: own or a parameter's grad tensor; ops: set by the sweep
    std::vector<std::size_t> inputs;  // indices of earlier nodes
    backward_fn<T> backward;          // empty for leaves, and for ops once the sweep freed them
    bool requires_grad = false;
    bool leaf = true;
};

struct backward_options {
    bool retain_graph = false;  // keep the closures (and what they saved) for another backward()
};

template <class T>
class tape {
public:
    tape() = default;
    tape(const tape&) = delete;  // vars point at their tape
    tape& operator=(const tape&) = delete;

    std::size_t size() const { return nodes_.size(); }
    const node<T>& at(std::size_t i) const { return nodes_.at(i); }
    const tensor<T>& value(std::size_t i) const { return *nodes_[i].value; }

    // Leaves are inputs, not operations: they are appended even under no_grad.
    std::size_t push_leaf(std::shared_ptr<tensor<T>> value, std::shared_ptr<tensor<T>> grad, bool requires_grad)
    {
        node<T> n;
        n.value = std::move(value);
        n.grad = requires_grad ? std::move(grad) : nullptr;
        n.requires_grad = requires_grad;
        nodes_.push_back(std::move(n));
        return nodes_.size() - 1;
    }

    // An operation on earlier nodes; it requires grad by construction (ops that need none are not recorded).
    std::size_t push_op(std::shared_ptr<tensor<T>> value, std::vector<std::size_t> inputs, backward_fn<T> fn)
    {
        for (std::size_t i : inputs) CONVNEXTV2_CHECK(i < nodes_.size(), "autograd: input node ", i, " is not on the tape");
        node<T> n;
        n.value = std::move(value);
        n.inputs = std::move(inputs);
        n.backward = std::move(fn);
        n.requires_grad = true;
        n.leaf = false;
        nodes_.push_back(std::move(n));
        return nodes_.size() - 1;
    }

    // The node of v on this tape; a constant (off any tape) becomes a leaf that needs no gradient.
    std::size_t intern(const var<T>& v)
    {
        if (v.owner() == this) return v.id();
        CONVNEXTV2_CHECK(v.owner() == nullptr, "autograd: a variable from another tape was used");
        return push_leaf(v.storage(), nullptr, false);
    }

    // Node i's gradient buffer, sized and zeroed on first use; null when it needs no gradient.
    tensor<T>* grad_for(std::size_t i)
    {
        node<T>& n = nodes_[i];
        if (!n.requires_grad) return nullptr;
        if (!n.grad) n.grad = std::make_shared<tensor<T>>(n.value->shape(), T(0));
        if (n.grad->shape() != n.value->shape()) { n.grad->resize(n.value->shape()); n.grad->zero(); }
        return n.grad.get();
    }

    // Seeds dL/droot = 1 (root must hold one element) and sweeps back. Leaf gradients accumulate
    // across calls (zero them with zero_grad()); intermediate gradients restart from zero.
    void backward(const var<T>& root, backward_options o = {}) { backward_from(check_root(root), nullptr, o); }
    // Same with dL/droot = seed (root's shape): the vector-Jacobian product of a non-scalar root.
    void backward(const var<T>& root, const tensor<T>& seed, backward_options o = {})
    {
        backward_from(check_root(root), &seed, o);
    }

    void zero_grad()
    {
        for (auto& n : nodes_)
            if (n.grad) n.grad->zero();
    }
    // Drops every node (values, gradients of own leaves, saved closures); parameter tensors are untouched.
    void clear() { nodes_.clear(); }

private:
    std::size_t check_root(const var<T>& root) const
    {
        CONVNEXTV2_CHECK(root.owner() == this && root.requires_grad(),
                         "autograd: backward() needs a variable of this tape that requires grad");
        return root.id();
    }

    void backward_from(std::size_t root, const tensor<T>* seed, backward_options o)
    {
        const tensor<T>& v = *nodes_[root].value;
        if (seed)
            CONVNEXTV2_CHECK(seed->shape() == v.shape(), "autograd: seed gradient ", to_string(seed->shape()),
                             " does not match the value ", to_string(v.shape()));
        else
            CONVNEXTV2_CHECK(v.size() == 1, "autograd: backward() without a seed needs a scalar, got ", to_string(v.shape()));
        for (std::size_t i = 0; i <= root; ++i)
            if (!nodes_[i].leaf) nodes_[i].grad.reset();
        tensor<T>& g = *grad_for(root);
        if (seed)
            for (index_t k = 0; k < g.size(); ++k) g[k] += (*seed)[k];
        else
            g[0] += T(1);
        for (std::size_t i = root + 1; i-- > 0;) {
            node<T>& n = nodes_[i];
            if (n.leaf || !n.grad) continue;  // leaves end the sweep; no grad: not upstream of root
            CONVNEXTV2_CHECK(n.backward, "autograd: node ", i,
                             " was freed by an earlier backward(); pass retain_graph = true to sweep twice");
            n.backward(grad_context<T>{*this, n.inputs, *n.value, *n.grad});
            if (!o.retain_graph) n.backward = nullptr;
        }
    }

    std::vector<node<T>> nodes_;
};

} // namespace convnextv2::autograd
