// SPDX-License-Identifier: MIT
// repeat<Block>: a runtime-length chain of one block type (a stage of ConvNeXt). The count is a
// runtime value, so a 27-block stage costs one instantiation of Block. Children are named
// "0", "1", ... (official `stages.i.j`).
#pragma once
#include "../core/grad_pool.hpp"
#include "../core/grad_write.hpp"
#include "../core/profile.hpp"
#include "../layers/concepts.hpp"

#include <vector>

namespace convnextv2 {

template <class Block>
struct repeat {
    static_assert(check_layer<Block>(), "repeat<Block>: Block must be a layer (see layers/concepts.hpp)");
    using scalar_type = typename Block::scalar_type;

    std::vector<Block> blocks;

    repeat() = default;
    explicit repeat(std::vector<Block> b) : blocks(std::move(b)) {}

    std::size_t count() const { return blocks.size(); }

    shape_t setup(const shape_t& in)
    {
        shape_t s = in;
        for (auto& b : blocks) s = b.setup(s);
        acts_.resize(blocks.empty() ? 0 : blocks.size() - 1);
        grads_.resize(acts_.size());
        out_shape_ = s;
        return s;
    }

    void forward(const tensor<scalar_type>& x, tensor<scalar_type>& y)
    {
        if (blocks.empty()) { y = x; return; }
        for (std::size_t k = 0; k < blocks.size(); ++k) {
            const tensor<scalar_type>& in = k == 0 ? x : acts_[k - 1];
            tensor<scalar_type>& out = k + 1 == blocks.size() ? y : acts_[k];
            blocks[k].forward(in, out);
        }
    }

    // As sequential: blocks after the first write into borrowed, unfilled buffers.
    void backward(const tensor<scalar_type>& dy, tensor<scalar_type>* dx, bool accumulate = true)
    {
        if (blocks.empty()) {
            if (dx) pass_grad(dy.data(), dy.size(), dx->data(), accumulate);
            return;
        }
        for (std::size_t k = blocks.size(); k-- > 0;) {
            const tensor<scalar_type>& g_out = k + 1 == blocks.size() ? dy : grads_[k];
            if (k > 0) {
                grads_[k - 1] = grad_pool<scalar_type>::local().acquire(acts_[k - 1].shape(), false);
                run_backward(blocks[k], g_out, &grads_[k - 1], false);
            } else {
                run_backward(blocks[k], g_out, dx, accumulate);
            }
            if (k + 1 < blocks.size()) grad_pool<scalar_type>::local().release(grads_[k]);
        }
    }

    void collect_params(param_list<scalar_type>& out, const std::string& prefix)
    {
        for (std::size_t k = 0; k < blocks.size(); ++k) blocks[k].collect_params(out, join_name(prefix, std::to_string(k)));
    }

    template <class F>
    void visit(F& f)
    {
        for (auto& b : blocks) visit_all(b, f);
    }

private:
    std::vector<tensor<scalar_type>> acts_, grads_;
    shape_t out_shape_;
};

} // namespace convnextv2
