// SPDX-License-Identifier: MIT
// masked<L>: runs L and zeroes its output at masked sites; the backward zeroes the incoming
// gradient there first. Building block of the dense-masked FCMAE emulation (SPEC §3.4): the
// encoder keeps dense maps and every masked site stays exactly zero, so the numbers equal the
// sparse encoder densified with zeros. `keep` holds one 1/0 weight per site (N·H·W), bound
// before each forward with bind_keep().
#pragma once
#include "../core/parallel.hpp"
#include "concepts.hpp"

#include <vector>

namespace convnextv2 {

template <class L>
struct masked {
    static_assert(check_layer<L>(), "masked<L>: L must be a layer (see layers/concepts.hpp)");
    using scalar_type = typename L::scalar_type;
    using T = scalar_type;

    L inner;

    void bind_keep(const std::vector<T>* keep) { keep_ = keep; }

    shape_t setup(const shape_t& in) { return inner.setup(in); }

    void forward(const tensor<T>& x, tensor<T>& y)
    {
        inner.forward(x, y);
        apply(y.data(), y.data(), y.size() / std::max<index_t>(y.dim(-1), 1), y.dim(-1));
    }

    void backward(const tensor<T>& dy, tensor<T>* dx)
    {
        g_.resize_like(dy);
        apply(dy.data(), g_.data(), dy.size() / std::max<index_t>(dy.dim(-1), 1), dy.dim(-1));
        inner.backward(g_, dx);
    }

    void collect_params(param_list<T>& out, const std::string& prefix) { inner.collect_params(out, prefix); }

    template <class F>
    void visit(F& f)
    {
        visit_all(inner, f);
    }

private:
    void apply(const T* in, T* out, index_t sites, index_t C) const
    {
        CONVNEXTV2_CHECK(keep_ != nullptr, "masked<>: used before bind_keep()");
        CONVNEXTV2_CHECK(static_cast<index_t>(keep_->size()) == sites, "masked<>: output has ", sites,
                         " sites but the bound mask has ", keep_->size());
        parallel_for(0, sites, std::max<index_t>(1, 8192 / std::max<index_t>(C, 1)), [&](index_t s0, index_t s1) {
            for (index_t s = s0; s < s1; ++s) {
                const T k = (*keep_)[static_cast<std::size_t>(s)];
                for (index_t c = 0; c < C; ++c) out[s * C + c] = in[s * C + c] * k;
            }
        });
    }

    const std::vector<T>* keep_ = nullptr;
    tensor<T> g_;
};

} // namespace convnextv2
