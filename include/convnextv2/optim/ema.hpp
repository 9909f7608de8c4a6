// SPDX-License-Identifier: MIT
// model_ema<T>: exponential moving average of a model's parameters, as timm's ModelEma (v1) used
// by the official fine-tuning script: after every optimizer step ema ← d·ema + (1−d)·p, with no
// warmup or bias correction (SPEC §4.4). ConvNeXt V2 has no buffers, so the parameters are the
// whole state dict. Entries are kept by official name, in the model's parameter order; the
// arithmetic is done in double per element and rounded once.
#pragma once
#include "../core/parallel.hpp"
#include "../layers/param.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace convnextv2 {

template <class T>
class model_ema {
public:
    model_ema() = default;
    explicit model_ema(const param_list<T>& params) { reset(params); }

    // Starts the average at the current parameter values.
    void reset(const param_list<T>& params)
    {
        names_.clear();
        values_.clear();
        index_.clear();
        for (const auto& p : params) {
            CONVNEXTV2_CHECK(p.value, "model_ema: parameter '", p.name, "' has no value tensor");
            CONVNEXTV2_CHECK(!index_.count(p.name), "model_ema: duplicate parameter name '", p.name, "'");
            index_[p.name] = names_.size();
            names_.push_back(p.name);
            values_.push_back(*p.value);
        }
    }

    // ema ← decay·ema + (1 − decay)·p for every parameter (matched by name).
    void update(const param_list<T>& params, double decay)
    {
        CONVNEXTV2_CHECK(decay >= 0 && decay <= 1, "model_ema: decay must be in [0, 1], got ", decay);
        CONVNEXTV2_CHECK(params.size() == names_.size(), "model_ema: update with ", params.size(), " parameters, holds ",
                         names_.size());
        const double rest = 1.0 - decay;
        for (std::size_t i = 0; i < params.size(); ++i) {
            tensor<T>& e = slot(params, i);
            const T* p = params[i].value->data();
            T* d = e.data();
            parallel_for(0, e.size(), 16384, [&](index_t lo, index_t hi) {
                for (index_t k = lo; k < hi; ++k)
                    d[k] = static_cast<T>(decay * static_cast<double>(d[k]) + rest * static_cast<double>(p[k]));
            });
        }
    }

    // Overwrites the model's parameters with the averages (e.g. before saving EMA weights).
    void copy_to(param_list<T>& params) const
    {
        CONVNEXTV2_CHECK(params.size() == names_.size(), "model_ema: copy_to with ", params.size(), " parameters, holds ",
                         names_.size());
        for (std::size_t i = 0; i < params.size(); ++i) {
            const tensor<T>& e = const_cast<model_ema*>(this)->slot(params, i);
            std::copy(e.begin(), e.end(), params[i].value->begin());
        }
    }

    // Exchanges model parameters and averages: call once to evaluate the EMA model in place, and
    // again to restore the training weights.
    void swap_into(param_list<T>& params)
    {
        CONVNEXTV2_CHECK(params.size() == names_.size(), "model_ema: swap_into with ", params.size(), " parameters, holds ",
                         names_.size());
        for (std::size_t i = 0; i < params.size(); ++i) {
            tensor<T>& e = slot(params, i);
            std::swap_ranges(e.begin(), e.end(), params[i].value->begin());
        }
    }

    // Checkpoint access, in parameter order.
    std::size_t size() const { return names_.size(); }
    const std::vector<std::string>& names() const { return names_; }
    tensor<T>& value(std::size_t i) { return values_[i]; }
    const tensor<T>& value(std::size_t i) const { return values_[i]; }
    bool contains(const std::string& name) const { return index_.count(name) != 0; }
    tensor<T>& value(const std::string& name)
    {
        auto it = index_.find(name);
        CONVNEXTV2_CHECK(it != index_.end(), "model_ema: no parameter named '", name, "'");
        return values_[it->second];
    }
    const tensor<T>& value(const std::string& name) const { return const_cast<model_ema*>(this)->value(name); }

private:
    // The EMA tensor for params[i]: same position when names agree (the usual case), else by name.
    tensor<T>& slot(const param_list<T>& params, std::size_t i)
    {
        const auto& p = params[i];
        std::size_t j = i;
        if (j >= names_.size() || names_[j] != p.name) {
            auto it = index_.find(p.name);
            CONVNEXTV2_CHECK(it != index_.end(), "model_ema: parameter '", p.name, "' is not in the average");
            j = it->second;
        }
        CONVNEXTV2_CHECK(values_[j].shape() == p.value->shape(), "model_ema: parameter '", p.name, "' has shape ",
                         to_string(p.value->shape()), ", the average ", to_string(values_[j].shape()));
        return values_[j];
    }

    std::vector<std::string> names_;
    std::vector<tensor<T>> values_;
    std::map<std::string, std::size_t> index_;
};

} // namespace convnextv2
