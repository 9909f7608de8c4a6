// SPDX-License-Identifier: MIT
// Learning-rate schedule, layer-wise lr decay and drop-path rates, as in the official
// ConvNeXt V2 scripts (facebookresearch/ConvNeXt-V2: utils.py cosine_scheduler,
// optim_factory.py get_num_layer_for_convnext[_single], main_finetune.py) and MindCV's
// cosine_decay scheduler (mindcv/scheduler: linear_refined_lr warmup + cosine_decay_refined_lr).
// Everything here is a pure function of its arguments; the trainer evaluates the schedule at the
// fractional epoch e = epoch + iter / iters_per_epoch before each optimizer step.
#pragma once
#include "../core/config.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

namespace convnextv2 {

// Linear warmup from `warmup_start` (an absolute lr; 0 in the official scripts, peak·warmup_factor
// in MindCV) to `peak` over [0, warmup_epochs), then a half cosine from peak to min_lr reaching
// min_lr at total_epochs; min_lr afterwards. MindCV's `decay_epochs` is total_epochs − warmup_epochs.
inline double warmup_cosine_lr(double e, double peak, double min_lr, double warmup_epochs, double total_epochs,
                               double warmup_start = 0)
{
    if (e < 0) e = 0;
    if (warmup_epochs > 0 && e < warmup_epochs) return warmup_start + (peak - warmup_start) * e / warmup_epochs;
    const double decay = total_epochs - warmup_epochs;
    if (decay <= 0 || e >= total_epochs) return decay <= 0 ? peak : min_lr;
    const double pi = 3.14159265358979323846;
    return min_lr + (peak - min_lr) * 0.5 * (1.0 + std::cos(pi * (e - warmup_epochs) / decay));
}

namespace detail {
// Splits "stages.2.5.pwconv1.weight" at the dots and parses component k as a non-negative int.
inline int name_index(const std::string& name, int k)
{
    std::size_t pos = 0;
    for (int i = 0; i < k; ++i) {
        pos = name.find('.', pos);
        CONVNEXTV2_CHECK(pos != std::string::npos, "layer decay: parameter name '", name, "' has no component ", k);
        ++pos;
    }
    std::size_t end = name.find('.', pos);
    std::string part = name.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    CONVNEXTV2_CHECK(!part.empty() && part.find_first_not_of("0123456789") == std::string::npos,
                     "layer decay: expected an index at component ", k, " of parameter name '", name, "'");
    return std::stoi(part);
}
inline bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
} // namespace detail

// "single" ids (num_layers = Σdepths): stem 1; downsample_layers.i (i≥1) Σdepths[:i]+1; block j of
// stage i Σdepths[:i]+j+1; anything else (norm, head, ...) Σdepths+1. Official names only.
inline int layer_id_single(const std::string& name, const std::vector<int>& depths)
{
    const bool ds = detail::starts_with(name, "downsample_layers.");
    const bool st = detail::starts_with(name, "stages.");
    if (!ds && !st) return std::accumulate(depths.begin(), depths.end(), 0) + 1;
    const int stage = detail::name_index(name, 1);
    CONVNEXTV2_CHECK(stage < static_cast<int>(depths.size()), "layer decay: stage ", stage, " of '", name, "' is out of range for ",
                     depths.size(), " stages");
    const int before = std::accumulate(depths.begin(), depths.begin() + stage, 0);
    if (ds) return before + 1;
    return before + detail::name_index(name, 2) + 1;
}

// "group" ids (num_layers = 12, designed for depths 3,3,27,3): stem 0, ds1 2, ds2 3, ds3 12;
// stage0 1, stage1 2, stage2 block b 3+⌊b/3⌋, stage3 12; anything else 13. `depths` is unused
// (kept for a uniform signature), exactly like the official function.
inline int layer_id_group(const std::string& name, const std::vector<int>& /*depths*/)
{
    if (detail::starts_with(name, "downsample_layers.")) {
        const int stage = detail::name_index(name, 1);
        if (stage == 0) return 0;
        if (stage == 1 || stage == 2) return stage + 1;
        return 12;
    }
    if (detail::starts_with(name, "stages.")) {
        const int stage = detail::name_index(name, 1);
        if (stage == 0 || stage == 1) return stage + 1;
        if (stage == 2) return 3 + detail::name_index(name, 2) / 3;
        return 12;
    }
    return 13;
}

// lr multiplier of layer id `id`: ld^(num_layers + 1 − id).
inline double layer_scale(int id, int num_layers, double ld) { return std::pow(ld, num_layers + 1 - id); }

// num_layers of a layer-decay type: Σdepths for "single", 12 for "group".
inline int layer_decay_num_layers(const std::string& type, const std::vector<int>& depths)
{
    if (type == "single") return std::accumulate(depths.begin(), depths.end(), 0);
    CONVNEXTV2_CHECK(type == "group", "layer decay: unknown layer_decay_type '", type, "' (expected 'single' or 'group')");
    return 12;
}

// Scale of the parameter `name` (1 when ld == 1, like the official script which then skips decay).
inline double layer_decay_scale(const std::string& name, const std::vector<int>& depths, double ld,
                                const std::string& type = "single")
{
    const int n = layer_decay_num_layers(type, depths);
    if (ld == 1.0) return 1.0;
    const int id = type == "single" ? layer_id_single(name, depths) : layer_id_group(name, depths);
    return layer_scale(id, n, ld);
}

// Per-block stochastic-depth rates: linspace(0, rate, Σdepths), blocks counted across all stages.
inline std::vector<double> drop_path_rates(const std::vector<int>& depths, double rate)
{
    const int n = std::accumulate(depths.begin(), depths.end(), 0);
    std::vector<double> r(static_cast<std::size_t>(std::max(n, 0)), 0.0);
    for (int k = 0; k < n; ++k) r[static_cast<std::size_t>(k)] = n > 1 ? rate * k / (n - 1) : 0.0;
    return r;
}

} // namespace convnextv2
