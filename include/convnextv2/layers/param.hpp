// SPDX-License-Identifier: MIT
// param_ref: how the optimizer, the initialiser and the weight loader see a parameter.
// Names are the official ConvNeXt V2 state-dict names ("stages.2.5.pwconv1.weight").
// Internal layouts may differ from PyTorch's (e.g. depthwise weights are stored [7,7,1,C] so the
// kernel vectorises over C); `perm` records the axis order: internal.shape[i] = torch_shape[perm[i]].
#pragma once
#include "../core/tensor.hpp"

#include <string>
#include <vector>

namespace convnextv2 {

template <class T>
struct param_ref {
    std::string name;
    tensor<T>* value = nullptr;
    tensor<T>* grad = nullptr;
    shape_t torch_shape;    // shape in official checkpoints
    std::vector<int> perm;  // empty: same axis order as torch_shape (possibly reshaped)
};

template <class T>
using param_list = std::vector<param_ref<T>>;

inline std::string join_name(const std::string& prefix, const std::string& name)
{
    if (prefix.empty()) return name;
    if (name.empty()) return prefix;
    return prefix + "." + name;
}

// Registers value/grad under `name`, allocating grad to value's shape.
template <class T>
void add_param(param_list<T>& out, const std::string& name, tensor<T>& value, tensor<T>& grad,
               shape_t torch_shape = {}, std::vector<int> perm = {})
{
    if (grad.shape() != value.shape()) { grad.resize(value.shape()); grad.zero(); }
    if (torch_shape.empty()) torch_shape = value.shape();
    out.push_back(param_ref<T>{name, &value, &grad, std::move(torch_shape), std::move(perm)});
}

template <class T>
index_t count_params(const param_list<T>& params)
{
    index_t n = 0;
    for (auto& p : params) n += p.value->size();
    return n;
}

template <class T>
void zero_grads(param_list<T>& params)
{
    for (auto& p : params) p.grad->zero();
}

} // namespace convnextv2
