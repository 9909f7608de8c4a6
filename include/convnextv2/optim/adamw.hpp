// SPDX-License-Identifier: MIT
// AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias correction by the step count):
//   p ← p·(1 − lr·wd)            (only for parameters in a decay group)
//   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//   p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps)
// with lr = scheduled lr × the parameter's lr_scale (layer-wise decay), as in the official
// fine-tuning script, where each param group's lr is lr × lr_scale and wd applies to that lr.
// Moments are stored in T (like PyTorch for fp32 parameters, so checkpoints are the same size as
// the model); each element's update is computed in double and rounded once. Elementwise work is
// parallel and deterministic (no reductions).
// Weight-decay grouping: default_no_decay follows the official fine-tune optimizer (1-D params,
// ".bias", GRN ".gamma"/".beta" after the "Fix gamma/beta wd update rule" commit, and timm's GRN
// names "grn.weight"/"grn.bias"); pretrain_no_decay follows timm-0.3.2 add_weight_decay used by
// FCMAE pretraining (1-D and ".bias" only). filter_bias_and_bn = false decays everything (MindCV).
#pragma once
#include "../core/parallel.hpp"
#include "../layers/param.hpp"
#include "schedule.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace convnextv2 {

struct adamw_options {
    double lr = 1e-3;  // used by step() without an argument
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.05;
};

// Per-parameter group membership: lr multiplier (layer decay) and whether weight decay applies.
struct param_group_info {
    double lr_scale = 1.0;
    bool decay = true;
};

namespace detail {

// The per-step constants of one parameter.
struct adamw_coef {
    double b1, b2, eps, bc2_sqrt, keep, step_size;  // keep = 1 − lr·wd (1 without decay)
};

inline constexpr index_t adamw_block = 16;

// One element: moments rounded to T, then the update in double, rounded once. Same operation
// order as PyTorch: decay first, then p + (−step_size)·(m / denom).
template <class T>
inline void adamw_element(T& p, T g, T& m, T& v, const adamw_coef& c)
{
    const double gk = static_cast<double>(g);
    const T mk = static_cast<T>(c.b1 * static_cast<double>(m) + (1.0 - c.b1) * gk);
    const T vk = static_cast<T>(c.b2 * static_cast<double>(v) + (1.0 - c.b2) * gk * gk);
    m = mk;
    v = vk;
    const double denom = std::sqrt(static_cast<double>(vk)) / c.bc2_sqrt + c.eps;
    const T pk = static_cast<T>(static_cast<double>(p) * c.keep);
    p = static_cast<T>(static_cast<double>(pk) - c.step_size * (static_cast<double>(mk) / denom));
}

#if defined(__AVX512F__)
// Eight float elements with the same double math (the scalar loop does not vectorise: std::sqrt
// sets errno, so without -fno-math-errno each element called sqrt; the optimizer took 5 ms of the
// main job's 120 ms step).
inline void adamw_8(float* p, const float* g, float* m, float* v, const adamw_coef& c)
{
    const __m512d b1 = _mm512_set1_pd(c.b1), a1 = _mm512_set1_pd(1.0 - c.b1), b2 = _mm512_set1_pd(c.b2),
                  a2 = _mm512_set1_pd(1.0 - c.b2);
    const __m512d gk = _mm512_cvtps_pd(_mm256_loadu_ps(g));
    const __m512d mk = _mm512_cvtps_pd(_mm512_cvtpd_ps(_mm512_add_pd(_mm512_mul_pd(b1, _mm512_cvtps_pd(_mm256_loadu_ps(m))),
                                                                      _mm512_mul_pd(a1, gk))));
    const __m512d vk = _mm512_cvtps_pd(_mm512_cvtpd_ps(_mm512_add_pd(_mm512_mul_pd(b2, _mm512_cvtps_pd(_mm256_loadu_ps(v))),
                                                                      _mm512_mul_pd(_mm512_mul_pd(a2, gk), gk))));
    _mm256_storeu_ps(m, _mm512_cvtpd_ps(mk));
    _mm256_storeu_ps(v, _mm512_cvtpd_ps(vk));
    const __m512d denom = _mm512_add_pd(_mm512_div_pd(_mm512_sqrt_pd(vk), _mm512_set1_pd(c.bc2_sqrt)), _mm512_set1_pd(c.eps));
    const __m512d pk = _mm512_cvtps_pd(_mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(p)), _mm512_set1_pd(c.keep))));
    _mm256_storeu_ps(p, _mm512_cvtpd_ps(_mm512_sub_pd(pk, _mm512_mul_pd(_mm512_set1_pd(c.step_size), _mm512_div_pd(mk, denom)))));
}
#endif

// n consecutive elements; whole blocks of 16 floats take the vector path.
template <class T>
inline void adamw_update(T* p, const T* g, T* m, T* v, index_t n, const adamw_coef& c)
{
    index_t k = 0;
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>)
        for (; k + adamw_block <= n; k += adamw_block) {
            adamw_8(p + k, g + k, m + k, v + k, c);
            adamw_8(p + k + 8, g + k + 8, m + k + 8, v + k + 8, c);
        }
#endif
    for (; k < n; ++k) adamw_element(p[k], g[k], m[k], v[k], c);
}

inline bool ends_with(const std::string& s, const std::string& suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
} // namespace detail

// Official fine-tune rule: no decay for rank-1 params, ".bias", GRN ".gamma"/".beta" (official and
// MindCV names) and timm's "grn.weight"/"grn.bias".
template <class T>
bool default_no_decay(const param_ref<T>& p)
{
    const shape_t& s = p.torch_shape.empty() && p.value ? p.value->shape() : p.torch_shape;
    return s.size() == 1 || detail::ends_with(p.name, ".bias") || detail::ends_with(p.name, ".gamma") ||
           detail::ends_with(p.name, ".beta") || detail::ends_with(p.name, "grn.weight");
}

// FCMAE pretraining rule (timm-0.3.2 add_weight_decay): only rank-1 params and ".bias" skip decay;
// sparse/decoder GRN gamma/beta and the mask token are decayed.
template <class T>
bool pretrain_no_decay(const param_ref<T>& p)
{
    const shape_t& s = p.torch_shape.empty() && p.value ? p.value->shape() : p.torch_shape;
    return s.size() == 1 || detail::ends_with(p.name, ".bias");
}

// Groups for a fine-tuning run: decay unless filter_bias_and_bn && default_no_decay; lr_scale from
// layer-wise decay (ld == 1 → 1 for all; otherwise depths are required).
template <class T>
std::vector<param_group_info> make_param_groups(const param_list<T>& params, bool filter_bias_and_bn = true,
                                                double layer_decay = 1.0, const std::vector<int>& depths = {},
                                                const std::string& layer_decay_type = "single")
{
    CONVNEXTV2_CHECK(layer_decay > 0 && layer_decay <= 1, "make_param_groups: layer_decay must be in (0, 1], got ", layer_decay);
    CONVNEXTV2_CHECK(layer_decay == 1.0 || !depths.empty(), "make_param_groups: layer decay needs the model's depths");
    std::vector<param_group_info> g;
    g.reserve(params.size());
    for (const auto& p : params) {
        param_group_info info;
        info.decay = !(filter_bias_and_bn && default_no_decay(p));
        info.lr_scale = layer_decay == 1.0 ? 1.0 : layer_decay_scale(p.name, depths, layer_decay, layer_decay_type);
        g.push_back(info);
    }
    return g;
}

// Checkpoint view of one parameter's moments (internal layout, same shape as param_ref::value).
template <class T>
struct adamw_slot {
    std::string name;
    tensor<T>* exp_avg = nullptr;
    tensor<T>* exp_avg_sq = nullptr;
};

template <class T>
struct adamw_state {
    std::int64_t step = 0;  // number of completed optimizer steps (PyTorch's state['step'])
    std::vector<adamw_slot<T>> slots;
};

template <class T>
class adamw {
public:
    adamw(param_list<T> params, std::vector<param_group_info> groups, adamw_options opt = {})
        : params_(std::move(params)), groups_(std::move(groups)), opt_(opt)
    {
        CONVNEXTV2_CHECK(groups_.size() == params_.size(), "adamw: ", params_.size(), " parameters but ", groups_.size(),
                         " group entries");
        CONVNEXTV2_CHECK(opt_.beta1 >= 0 && opt_.beta1 < 1 && opt_.beta2 >= 0 && opt_.beta2 < 1,
                         "adamw: betas must be in [0, 1), got (", opt_.beta1, ", ", opt_.beta2, ")");
        CONVNEXTV2_CHECK(opt_.eps > 0 && opt_.weight_decay >= 0, "adamw: need eps > 0 and weight_decay >= 0");
        m_.resize(params_.size());
        v_.resize(params_.size());
        for (std::size_t i = 0; i < params_.size(); ++i) {
            const auto& p = params_[i];
            CONVNEXTV2_CHECK(p.value && p.grad, "adamw: parameter '", p.name, "' has no value or grad tensor");
            CONVNEXTV2_CHECK(p.grad->size() == p.value->size(), "adamw: parameter '", p.name, "' grad has ",
                             p.grad->size(), " elements, value ", p.value->size());
            index_[p.name] = i;
            m_[i].resize(p.value->shape());
            m_[i].zero();
            v_[i].resize(p.value->shape());
            v_[i].zero();
        }
        CONVNEXTV2_CHECK(index_.size() == params_.size(), "adamw: duplicate parameter names");
        coef_.resize(params_.size());
        block_start_.assign(1, 0);
        for (const auto& p : params_)
            block_start_.push_back(block_start_.back() + (p.value->size() + detail::adamw_block - 1) / detail::adamw_block);
    }

    // Default grouping: decay unless filter_bias_and_bn and default_no_decay(p); no layer decay.
    explicit adamw(param_list<T> params, adamw_options opt = {}, bool filter_bias_and_bn = true)
        : adamw(params, make_param_groups(params, filter_bias_and_bn), opt)
    {
    }

    // One optimizer step with base learning rate `lr` (the schedule's value). All parameters
    // go through one parallel loop over 16-element blocks (a model has ~150 mostly small
    // tensors: one loop each paid a fork/join per tensor); a block never straddles two tensors,
    // so which elements take the vector path depends on the shapes only, never on the threads.
    void step(double lr)
    {
        ++t_;
        const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(t_));
        const double bc2_sqrt = std::sqrt(1.0 - std::pow(opt_.beta2, static_cast<double>(t_)));
        std::vector<detail::adamw_coef>& coef = coef_;  // sized once: no allocation per step
        for (std::size_t i = 0; i < params_.size(); ++i) {
            const double lr_g = lr * groups_[i].lr_scale;
            coef[i] = {opt_.beta1, opt_.beta2, opt_.eps, bc2_sqrt, groups_[i].decay ? 1.0 - lr_g * opt_.weight_decay : 1.0,
                       lr_g / bc1};
        }
        constexpr index_t B = detail::adamw_block;
        parallel_for(0, block_start_.back(), 1024, [&](index_t b0, index_t b1) {
            std::size_t i = static_cast<std::size_t>(std::upper_bound(block_start_.begin(), block_start_.end(), b0) - block_start_.begin()) - 1;
            for (; b0 < b1; ++i) {
                const index_t end = std::min(b1, block_start_[i + 1]);
                if (end <= b0) continue;
                const index_t n = params_[i].value->size();
                const index_t lo = (b0 - block_start_[i]) * B, hi = std::min(n, (end - block_start_[i]) * B);
                detail::adamw_update(params_[i].value->data() + lo, params_[i].grad->data() + lo, m_[i].data() + lo,
                                     v_[i].data() + lo, hi - lo, coef[i]);
                b0 = end;
            }
        });
    }
    void step() { step(opt_.lr); }

    void zero_grad()
    {
        for (auto& p : params_) p.grad->zero();
    }

    std::int64_t step_count() const { return t_; }
    void set_step_count(std::int64_t t)
    {
        CONVNEXTV2_CHECK(t >= 0, "adamw: negative step count ", t);
        t_ = t;
    }

    // Pointers into this optimizer's moments, in parameter order (valid while the optimizer lives).
    adamw_state<T> state()
    {
        adamw_state<T> s;
        s.step = t_;
        for (std::size_t i = 0; i < params_.size(); ++i) s.slots.push_back({params_[i].name, &m_[i], &v_[i]});
        return s;
    }

    // Restores step count and moments. Every parameter must be present in both maps, with the
    // internal shape (or, for parameters without a permutation, the torch shape); extra names are
    // an error too, so a checkpoint from another model is not silently half-applied.
    void load_state(std::int64_t step, const std::map<std::string, tensor<T>>& exp_avg,
                    const std::map<std::string, tensor<T>>& exp_avg_sq)
    {
        auto check = [&](const std::map<std::string, tensor<T>>& mp, const char* what) {
            for (const auto& kv : mp)
                CONVNEXTV2_CHECK(index_.count(kv.first), "adamw: load_state: ", what, " has unknown parameter '", kv.first, "'");
            for (const auto& p : params_) {
                auto it = mp.find(p.name);
                CONVNEXTV2_CHECK(it != mp.end(), "adamw: load_state: ", what, " is missing parameter '", p.name, "'");
                const bool ok = it->second.shape() == p.value->shape() || (p.perm.empty() && it->second.shape() == p.torch_shape);
                CONVNEXTV2_CHECK(ok, "adamw: load_state: ", what, " of '", p.name, "' has shape ", to_string(it->second.shape()),
                                 ", expected ", to_string(p.value->shape()));
            }
        };
        check(exp_avg, "exp_avg");
        check(exp_avg_sq, "exp_avg_sq");
        set_step_count(step);
        for (std::size_t i = 0; i < params_.size(); ++i) {
            const auto& a = exp_avg.at(params_[i].name);
            const auto& b = exp_avg_sq.at(params_[i].name);
            std::copy(a.begin(), a.end(), m_[i].begin());
            std::copy(b.begin(), b.end(), v_[i].begin());
        }
    }

    const param_list<T>& params() const { return params_; }
    const std::vector<param_group_info>& groups() const { return groups_; }
    const adamw_options& options() const { return opt_; }
    adamw_options& options() { return opt_; }
    const tensor<T>& exp_avg(std::size_t i) const { return m_[i]; }
    const tensor<T>& exp_avg_sq(std::size_t i) const { return v_[i]; }

private:
    param_list<T> params_;
    std::vector<param_group_info> groups_;
    adamw_options opt_;
    std::vector<tensor<T>> m_, v_;
    std::map<std::string, std::size_t> index_;
    std::vector<index_t> block_start_;  // first 16-element block of each parameter; back() = total
    std::vector<detail::adamw_coef> coef_;  // per-parameter constants of the current step
    std::int64_t t_ = 0;
};

} // namespace convnextv2
