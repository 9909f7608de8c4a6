// SPDX-License-Identifier: MIT
// The training recipe: a JSON file whose keys mirror MindCV's yaml names
// (configs/convnextv2/convnextv2_tiny_ascend.yaml + config.py), so a MindCV config translates 1:1,
// plus the official fine-tuning knobs MindCV lacks (layer_decay, layer_decay_type, update_freq,
// ema, head_init_scale, betas) and a few of ours (stem_kernel, depths/dims, num_threads, ...).
// Defaults are the official main_finetune.py defaults (model convnextv2_base, batch 64, lr =
// blr 5e-4 × 64/256, warmup 20, smoothing 0.1, reprob 0.25, head_init_scale 0.001, ...).
// Loading is strict: an unknown key is an error that suggests the closest known key, a wrong JSON
// type names the key with the expected and the found type, and out-of-range values name the key
// and the value. Keys starting with '_' or '#' are comments. Command-line overrides go through the
// same checks. to_json() gives the effective recipe (stored in checkpoints).
#pragma once
#include "../core/config.hpp"
#include "../optim/schedule.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace convnextv2 {

struct recipe {
    // ---- model
    std::string model = "convnextv2_base";   // convnextv2_{atto,femto,pico,nano,tiny,base,large,huge}
    int num_classes = 1000;
    int in_chans = 3;
    int image_resize = 224;                  // training/eval input side
    double drop_path_rate = 0.0;
    double head_init_scale = 0.001;
    int stem_kernel = 4;                     // 4 = official; 2 (or 1) for small images
    std::vector<int> depths;                 // optional custom variant (both or neither)
    std::vector<int> dims;
    bool pretrained = false;                 // MindCV key; accepted, weights come from ckpt_path
    std::string ckpt_path;                   // initial weights (official/timm/HF/FCMAE names)

    // ---- data
    std::string dataset = "imagefolder";     // "imagefolder" (MindCV "imagenet" is read as this) | "fashion_mnist"
    std::string data_dir;
    bool dataset_download = false;           // MindCV key; must stay false (no network)
    int batch_size = 64;                     // per process
    int eval_batch_size = 0;                 // 0: batch_size
    bool shuffle = true;
    bool drop_remainder = true;
    int num_parallel_workers = 0;            // 0: all threads (decoding runs on the TBB pool)
    int aug_repeats = 0;                     // repeated augmentation factor (0/1: off); MindCV RepeatAugSampler
    int prefetch_batches = 2;                // training batches prepared ahead on a background thread (0: off)

    // ---- augmentation
    std::array<double, 2> scale{0.08, 1.0};  // RandomResizedCrop area range
    std::array<double, 2> ratio{0.75, 4.0 / 3.0};
    std::string interpolation = "bicubic";   // bicubic | bilinear | nearest
    double hflip = 0.5;
    int random_crop_padding = 0;             // RandomCrop(padding) for small images (Fashion-MNIST)
    std::string auto_augment = "rand-m9-mstd0.5-inc1";  // timm or MindCV ("randaug-...") spelling; "" = off
    double re_prob = 0.25;
    std::string re_value = "random";         // random (per-pixel normal, timm "pixel") | 0
    double crop_pct = 0.875;                 // eval centre-crop fraction
    double mixup = 0.0;                      // Beta alpha; 0 = off
    double cutmix = 0.0;
    double mixup_prob = 1.0;
    double mixup_switch_prob = 0.5;
    double label_smoothing = 0.1;
    std::string loss = "ce";

    // ---- optimizer
    std::string opt = "adamw";
    double lr = 1.25e-4;                     // absolute peak lr (official: blr × eff_batch / 256)
    double weight_decay = 0.05;
    bool filter_bias_and_bn = true;          // true: no decay on 1-D/bias/GRN (official); false: decay all (MindCV)
    double momentum = 0.9;                   // unused by AdamW
    bool use_nesterov = false;               // unused by AdamW
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double layer_decay = 1.0;
    std::string layer_decay_type = "single";
    int update_freq = 1;                     // gradient accumulation steps

    // ---- schedule
    std::string scheduler = "warmup_cosine_decay";  // or MindCV's "cosine_decay" (same curve)
    int epoch_size = 100;
    double min_lr = 1e-6;
    double warmup_epochs = 20;
    double warmup_factor = 0.0;              // warmup starts at lr × warmup_factor
    double decay_epochs = 0;                 // 0: epoch_size − warmup_epochs

    // ---- EMA
    bool ema = false;
    double ema_decay = 0.9999;

    // ---- FCMAE pretraining (the pretrain program, SPEC §3)
    double mask_ratio = 0.6;
    int decoder_dim = 512;
    int decoder_depth = 1;
    bool norm_pix_loss = true;
    std::string sparse_grn = "sample";       // sample (per-sample, = dense GRN) | batch (official MinkowskiGRN)
    std::string encoder_mode = "sparse";     // sparse | dense_masked (the emulation, for comparisons)
    int recon_interval = 0;                  // epochs between reconstruction PNGs; 0: only at the end
    int recon_images = 8;                    // images in the reconstruction grid

    // ---- system / checkpoints / logging
    std::string amp_level = "O0";            // accepted; mixed precision is matmul_precision (see recipe_notes)
    std::string matmul_precision = "fp32";   // fp32 | bf16 (pointwise products in bf16, needs AVX512-BF16) | auto
    std::string loss_scale_type = "fixed";   // MindCV key, unused
    double loss_scale = 1.0;                 // MindCV key, unused
    int mode = 0;                            // MindCV graph/pynative mode, unused
    bool dataset_sink_mode = true;           // MindCV key, unused
    bool distribute = false;                 // MPI data parallel (needs a CONVNEXTV2_WITH_MPI build)
    int num_threads = 0;                     // 0: all cores
    bool val_while_train = true;
    int val_interval = 1;
    bool tta_hflip = false;                  // final evaluation / validate also report flip test-time augmentation
    int log_interval = 100;                  // steps; 0 = once per epoch
    std::string ckpt_save_dir = "./ckpt";
    int keep_checkpoint_max = 10;
    std::int64_t seed = 0;
    bool check_finite = true;                // on a NaN/Inf loss, re-run the batch to name the first non-finite layer
};

namespace detail {

enum class recipe_kind { boolean, integer, integer64, number, string, pair, int_list };

struct recipe_field {
    const char* name;
    recipe_kind kind;
    void* (*member)(recipe&);
};

#define CONVNEXTV2_RECIPE_FIELD(name, kind) \
    recipe_field { #name, recipe_kind::kind, [](recipe& r) -> void* { return &r.name; } }

inline const std::vector<recipe_field>& recipe_fields()
{
    static const std::vector<recipe_field> f = {
        CONVNEXTV2_RECIPE_FIELD(model, string),          CONVNEXTV2_RECIPE_FIELD(num_classes, integer),
        CONVNEXTV2_RECIPE_FIELD(in_chans, integer),      CONVNEXTV2_RECIPE_FIELD(image_resize, integer),
        CONVNEXTV2_RECIPE_FIELD(drop_path_rate, number), CONVNEXTV2_RECIPE_FIELD(head_init_scale, number),
        CONVNEXTV2_RECIPE_FIELD(stem_kernel, integer),   CONVNEXTV2_RECIPE_FIELD(depths, int_list),
        CONVNEXTV2_RECIPE_FIELD(dims, int_list),         CONVNEXTV2_RECIPE_FIELD(pretrained, boolean),
        CONVNEXTV2_RECIPE_FIELD(ckpt_path, string),      CONVNEXTV2_RECIPE_FIELD(dataset, string),
        CONVNEXTV2_RECIPE_FIELD(data_dir, string),       CONVNEXTV2_RECIPE_FIELD(dataset_download, boolean),
        CONVNEXTV2_RECIPE_FIELD(batch_size, integer),    CONVNEXTV2_RECIPE_FIELD(eval_batch_size, integer),
        CONVNEXTV2_RECIPE_FIELD(shuffle, boolean),       CONVNEXTV2_RECIPE_FIELD(drop_remainder, boolean),
        CONVNEXTV2_RECIPE_FIELD(num_parallel_workers, integer), CONVNEXTV2_RECIPE_FIELD(aug_repeats, integer),
        CONVNEXTV2_RECIPE_FIELD(prefetch_batches, integer),
        CONVNEXTV2_RECIPE_FIELD(scale, pair),            CONVNEXTV2_RECIPE_FIELD(ratio, pair),
        CONVNEXTV2_RECIPE_FIELD(interpolation, string),  CONVNEXTV2_RECIPE_FIELD(hflip, number),
        CONVNEXTV2_RECIPE_FIELD(random_crop_padding, integer), CONVNEXTV2_RECIPE_FIELD(auto_augment, string),
        CONVNEXTV2_RECIPE_FIELD(re_prob, number),        CONVNEXTV2_RECIPE_FIELD(re_value, string),
        CONVNEXTV2_RECIPE_FIELD(crop_pct, number),       CONVNEXTV2_RECIPE_FIELD(mixup, number),
        CONVNEXTV2_RECIPE_FIELD(cutmix, number),         CONVNEXTV2_RECIPE_FIELD(mixup_prob, number),
        CONVNEXTV2_RECIPE_FIELD(mixup_switch_prob, number), CONVNEXTV2_RECIPE_FIELD(label_smoothing, number),
        CONVNEXTV2_RECIPE_FIELD(loss, string),           CONVNEXTV2_RECIPE_FIELD(opt, string),
        CONVNEXTV2_RECIPE_FIELD(lr, number),             CONVNEXTV2_RECIPE_FIELD(weight_decay, number),
        CONVNEXTV2_RECIPE_FIELD(filter_bias_and_bn, boolean), CONVNEXTV2_RECIPE_FIELD(momentum, number),
        CONVNEXTV2_RECIPE_FIELD(use_nesterov, boolean),  CONVNEXTV2_RECIPE_FIELD(beta1, number),
        CONVNEXTV2_RECIPE_FIELD(beta2, number),          CONVNEXTV2_RECIPE_FIELD(eps, number),
        CONVNEXTV2_RECIPE_FIELD(layer_decay, number),    CONVNEXTV2_RECIPE_FIELD(layer_decay_type, string),
        CONVNEXTV2_RECIPE_FIELD(update_freq, integer),   CONVNEXTV2_RECIPE_FIELD(scheduler, string),
        CONVNEXTV2_RECIPE_FIELD(epoch_size, integer),    CONVNEXTV2_RECIPE_FIELD(min_lr, number),
        CONVNEXTV2_RECIPE_FIELD(warmup_epochs, number),  CONVNEXTV2_RECIPE_FIELD(warmup_factor, number),
        CONVNEXTV2_RECIPE_FIELD(decay_epochs, number),   CONVNEXTV2_RECIPE_FIELD(ema, boolean),
        CONVNEXTV2_RECIPE_FIELD(ema_decay, number),      CONVNEXTV2_RECIPE_FIELD(amp_level, string),
        CONVNEXTV2_RECIPE_FIELD(loss_scale_type, string), CONVNEXTV2_RECIPE_FIELD(loss_scale, number),
        CONVNEXTV2_RECIPE_FIELD(mode, integer),          CONVNEXTV2_RECIPE_FIELD(dataset_sink_mode, boolean),
        CONVNEXTV2_RECIPE_FIELD(distribute, boolean),    CONVNEXTV2_RECIPE_FIELD(num_threads, integer),
        CONVNEXTV2_RECIPE_FIELD(val_while_train, boolean), CONVNEXTV2_RECIPE_FIELD(val_interval, integer),
        CONVNEXTV2_RECIPE_FIELD(tta_hflip, boolean),     CONVNEXTV2_RECIPE_FIELD(matmul_precision, string),
        CONVNEXTV2_RECIPE_FIELD(log_interval, integer),  CONVNEXTV2_RECIPE_FIELD(ckpt_save_dir, string),
        CONVNEXTV2_RECIPE_FIELD(keep_checkpoint_max, integer), CONVNEXTV2_RECIPE_FIELD(seed, integer64),
        CONVNEXTV2_RECIPE_FIELD(check_finite, boolean),
        CONVNEXTV2_RECIPE_FIELD(mask_ratio, number),     CONVNEXTV2_RECIPE_FIELD(decoder_dim, integer),
        CONVNEXTV2_RECIPE_FIELD(decoder_depth, integer), CONVNEXTV2_RECIPE_FIELD(norm_pix_loss, boolean),
        CONVNEXTV2_RECIPE_FIELD(sparse_grn, string),     CONVNEXTV2_RECIPE_FIELD(encoder_mode, string),
        CONVNEXTV2_RECIPE_FIELD(recon_interval, integer), CONVNEXTV2_RECIPE_FIELD(recon_images, integer),
    };
    return f;
}
#undef CONVNEXTV2_RECIPE_FIELD

inline const recipe_field* find_recipe_field(const std::string& key)
{
    for (const auto& f : recipe_fields())
        if (key == f.name) return &f;
    return nullptr;
}

inline std::size_t edit_distance(const std::string& a, const std::string& b)
{
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0u : 1u)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

// "; did you mean 'x'?" for the closest of `candidates` when it is reasonably close, else "".
inline std::string did_you_mean(const std::string& key, const std::vector<std::string>& candidates)
{
    std::string best;
    std::size_t best_d = std::numeric_limits<std::size_t>::max();
    for (const auto& c : candidates) {
        std::size_t d = edit_distance(key, c);
        if (d < best_d) { best_d = d; best = c; }
    }
    if (best.empty() || best_d > std::max<std::size_t>(2, key.size() / 2)) return "";
    return "; did you mean '" + best + "'?";
}

inline std::vector<std::string> recipe_key_names()
{
    std::vector<std::string> v;
    for (const auto& f : recipe_fields()) v.emplace_back(f.name);
    return v;
}

inline const char* kind_name(recipe_kind k)
{
    switch (k) {
    case recipe_kind::boolean: return "a boolean";
    case recipe_kind::integer:
    case recipe_kind::integer64: return "an integer";
    case recipe_kind::number: return "a number";
    case recipe_kind::string: return "a string";
    case recipe_kind::pair: return "an array of 2 numbers";
    case recipe_kind::int_list: return "an array of integers";
    }
    return "?";
}

inline std::string json_type_of(const nlohmann::json& v)
{
    std::string t = v.type_name();
    if (v.is_number_float()) t = "number " + v.dump();
    else if (v.is_number()) t = "integer " + v.dump();
    else if (v.is_string() || v.is_boolean()) t += " " + v.dump();
    return t;
}

[[noreturn]] inline void recipe_type_error(const recipe_field& f, const std::string& where, const std::string& found)
{
    throw error("key '" + std::string(f.name) + "' in " + where + ": expected " + kind_name(f.kind) + ", found " + found);
}

// Integers may be written as 3 or 3.0 (not 3.5).
inline bool json_integer(const nlohmann::json& v, long double lo, long double hi, std::int64_t& out)
{
    if (v.is_number_integer()) {
        long double x = v.is_number_unsigned() ? static_cast<long double>(v.get<std::uint64_t>())
                                               : static_cast<long double>(v.get<std::int64_t>());
        if (x < lo || x > hi) return false;
        out = static_cast<std::int64_t>(x);
        return true;
    }
    if (v.is_number_float()) {
        double x = v.get<double>();
        if (!std::isfinite(x) || std::floor(x) != x || x < lo || x > hi) return false;
        out = static_cast<std::int64_t>(x);
        return true;
    }
    return false;
}

inline void read_recipe_field(recipe& r, const recipe_field& f, const nlohmann::json& v, const std::string& where)
{
    void* m = f.member(r);
    switch (f.kind) {
    case recipe_kind::boolean:
        if (!v.is_boolean()) recipe_type_error(f, where, json_type_of(v));
        *static_cast<bool*>(m) = v.get<bool>();
        return;
    case recipe_kind::integer: {
        std::int64_t x = 0;
        if (!json_integer(v, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(), x))
            recipe_type_error(f, where, json_type_of(v));
        *static_cast<int*>(m) = static_cast<int>(x);
        return;
    }
    case recipe_kind::integer64: {
        std::int64_t x = 0;
        if (!json_integer(v, static_cast<long double>(std::numeric_limits<std::int64_t>::min()),
                          static_cast<long double>(std::numeric_limits<std::int64_t>::max()), x))
            recipe_type_error(f, where, json_type_of(v));
        *static_cast<std::int64_t*>(m) = x;
        return;
    }
    case recipe_kind::number:
        if (!v.is_number()) recipe_type_error(f, where, json_type_of(v));
        *static_cast<double*>(m) = v.get<double>();
        return;
    case recipe_kind::string:
        if (!v.is_string()) recipe_type_error(f, where, json_type_of(v));
        *static_cast<std::string*>(m) = v.get<std::string>();
        return;
    case recipe_kind::pair: {
        if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
            recipe_type_error(f, where, v.is_array() ? "array " + v.dump() : json_type_of(v));
        *static_cast<std::array<double, 2>*>(m) = {v[0].get<double>(), v[1].get<double>()};
        return;
    }
    case recipe_kind::int_list: {
        if (!v.is_array()) recipe_type_error(f, where, json_type_of(v));
        std::vector<int> out;
        for (const auto& e : v) {
            std::int64_t x = 0;
            if (!json_integer(e, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(), x))
                recipe_type_error(f, where, "array " + v.dump());
            out.push_back(static_cast<int>(x));
        }
        *static_cast<std::vector<int>*>(m) = out;
        return;
    }
    }
}

inline nlohmann::json write_recipe_field(const recipe& r, const recipe_field& f)
{
    void* m = f.member(const_cast<recipe&>(r));
    switch (f.kind) {
    case recipe_kind::boolean: return *static_cast<bool*>(m);
    case recipe_kind::integer: return *static_cast<int*>(m);
    case recipe_kind::integer64: return *static_cast<std::int64_t*>(m);
    case recipe_kind::number: return *static_cast<double*>(m);
    case recipe_kind::string: return *static_cast<std::string*>(m);
    case recipe_kind::pair: {
        const auto& a = *static_cast<std::array<double, 2>*>(m);
        return nlohmann::json::array({a[0], a[1]});
    }
    case recipe_kind::int_list: return *static_cast<std::vector<int>*>(m);
    }
    return nullptr;
}

inline std::string lower(std::string s)
{
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

template <class V>
std::string value_text(const V& v)
{
    std::ostringstream os;
    os << v;
    return os.str();
}
inline std::string value_text(const std::string& v) { return "'" + v + "'"; }

template <class V>
[[noreturn]] void recipe_range_error(const char* key, const V& v, const std::string& where, const std::string& rule)
{
    throw error("key '" + std::string(key) + "' in " + where + ": " + value_text(v) + " is out of range (" + rule + ")");
}

inline void check_choice(const char* key, const std::string& v, const std::vector<std::string>& allowed, const std::string& where)
{
    if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "'" : ", '") + a + "'";
    throw error("key '" + std::string(key) + "' in " + where + ": unknown value '" + v + "' (expected one of " + list + ")" +
                did_you_mean(v, allowed));
}

inline const std::vector<std::string>& known_models()
{
    static const std::vector<std::string> m = {"convnextv2_atto", "convnextv2_femto", "convnextv2_pico", "convnextv2_nano",
                                               "convnextv2_tiny", "convnextv2_base",  "convnextv2_large", "convnextv2_huge"};
    return m;
}

// Spellings accepted from MindCV / PyTorch configs, mapped to one canonical value.
inline void canonicalise(recipe& r)
{
    r.opt = lower(r.opt);
    r.loss = lower(r.loss);
    r.layer_decay_type = lower(r.layer_decay_type);
    r.scheduler = lower(r.scheduler);
    r.interpolation = lower(r.interpolation);
    r.dataset = lower(r.dataset);
    if (r.dataset == "imagenet" || r.dataset == "image_folder") r.dataset = "imagefolder";
    if (r.dataset == "fashion-mnist" || r.dataset == "fashionmnist") r.dataset = "fashion_mnist";
    if (!r.amp_level.empty()) r.amp_level[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(r.amp_level[0])));
    if (lower(r.auto_augment) == "none") r.auto_augment.clear();
    r.matmul_precision = lower(r.matmul_precision);
}

} // namespace detail

// Range and choice checks; `where` names the source in messages (a file, "command line", ...).
inline void validate_recipe(const recipe& r, const std::string& where)
{
    using detail::recipe_range_error;
    using detail::check_choice;
    auto at_least = [&](const char* k, double v, double lo) {
        if (!(v >= lo)) recipe_range_error(k, v, where, "must be >= " + detail::value_text(lo));
    };
    auto in_closed = [&](const char* k, double v, double lo, double hi) {
        if (!(v >= lo && v <= hi)) recipe_range_error(k, v, where, "must be in [" + detail::value_text(lo) + ", " + detail::value_text(hi) + "]");
    };
    auto in_half_open = [&](const char* k, double v, double lo, double hi) {
        if (!(v >= lo && v < hi)) recipe_range_error(k, v, where, "must be in [" + detail::value_text(lo) + ", " + detail::value_text(hi) + ")");
    };

    auto at_most = [&](const char* k, double v, double hi) {
        if (!(v <= hi)) recipe_range_error(k, v, where, "must be <= " + detail::value_text(hi) + ", the sanity limit");
    };
    // Every number must be finite (">= 0" alone would let inf through from a program that sets fields).
    for (const auto& f : detail::recipe_fields()) {
        if (f.kind == detail::recipe_kind::number) {
            const double v = *static_cast<double*>(f.member(const_cast<recipe&>(r)));
            if (!std::isfinite(v)) recipe_range_error(f.name, v, where, "must be finite");
        } else if (f.kind == detail::recipe_kind::pair) {
            const auto& a = *static_cast<std::array<double, 2>*>(f.member(const_cast<recipe&>(r)));
            if (!std::isfinite(a[0]) || !std::isfinite(a[1]))
                recipe_range_error(f.name, "[" + detail::value_text(a[0]) + ", " + detail::value_text(a[1]) + "]", where, "must be finite");
        }
    }
    // Sanity limits on everything that sizes an allocation, so a hostile or mistyped recipe is an
    // error naming the key instead of a multi-terabyte allocation.
    at_most("num_classes", r.num_classes, 1 << 20);
    at_most("in_chans", r.in_chans, 1024);
    at_most("image_resize", r.image_resize, 8192);
    at_most("batch_size", r.batch_size, 1 << 16);
    at_most("eval_batch_size", r.eval_batch_size, 1 << 16);
    at_most("update_freq", r.update_freq, 1 << 16);
    at_most("aug_repeats", r.aug_repeats, 64);
    at_most("random_crop_padding", r.random_crop_padding, 8192);
    at_most("epoch_size", r.epoch_size, 1 << 20);
    at_most("num_threads", r.num_threads, 1 << 12);
    at_most("num_parallel_workers", r.num_parallel_workers, 1 << 12);
    for (int d : r.depths) at_most("depths", d, 1024);
    for (int d : r.dims) at_most("dims", d, 1 << 16);

    const bool custom = !r.depths.empty() || !r.dims.empty();
    if (custom) {
        if (r.depths.size() != 4 || r.dims.size() != 4)
            throw error("keys 'depths'/'dims' in " + where + ": a custom variant needs both, with 4 entries each (got " +
                        std::to_string(r.depths.size()) + " and " + std::to_string(r.dims.size()) + ")");
        for (int d : r.depths) at_least("depths", d, 1);
        for (int d : r.dims) at_least("dims", d, 1);
        if (r.model.empty()) recipe_range_error("model", r.model, where, "must name the model");
    } else {
        check_choice("model", r.model, detail::known_models(), where);
    }
    at_least("num_classes", r.num_classes, 1);
    at_least("in_chans", r.in_chans, 1);
    at_least("image_resize", r.image_resize, 1);
    in_half_open("drop_path_rate", r.drop_path_rate, 0, 1);
    at_least("head_init_scale", r.head_init_scale, 0);
    check_choice("stem_kernel", std::to_string(r.stem_kernel), {"1", "2", "4"}, where);
    if (r.image_resize < r.stem_kernel * 8)
        recipe_range_error("image_resize", r.image_resize, where,
                           "must be at least " + std::to_string(r.stem_kernel * 8) + " (the total stride) for stem_kernel " +
                               std::to_string(r.stem_kernel));

    check_choice("dataset", r.dataset, {"imagefolder", "fashion_mnist"}, where);
    if (r.dataset_download) recipe_range_error("dataset_download", "true", where, "downloads are not supported; must be false");
    at_least("batch_size", r.batch_size, 1);
    at_least("eval_batch_size", r.eval_batch_size, 0);
    at_least("num_parallel_workers", r.num_parallel_workers, 0);
    at_least("aug_repeats", r.aug_repeats, 0);
    if (!(r.prefetch_batches >= 0 && r.prefetch_batches <= 64))
        recipe_range_error("prefetch_batches", r.prefetch_batches, where, "must be in [0, 64] (batches held in memory ahead of training)");

    if (!(r.scale[0] > 0 && r.scale[0] <= r.scale[1] && r.scale[1] <= 1))
        recipe_range_error("scale", "[" + detail::value_text(r.scale[0]) + ", " + detail::value_text(r.scale[1]) + "]", where,
                           "need 0 < scale[0] <= scale[1] <= 1");
    if (!(r.ratio[0] > 0 && r.ratio[0] <= r.ratio[1]))
        recipe_range_error("ratio", "[" + detail::value_text(r.ratio[0]) + ", " + detail::value_text(r.ratio[1]) + "]", where,
                           "need 0 < ratio[0] <= ratio[1]");
    check_choice("interpolation", r.interpolation, {"bicubic", "bilinear", "nearest"}, where);
    in_closed("hflip", r.hflip, 0, 1);
    at_least("random_crop_padding", r.random_crop_padding, 0);
    in_closed("re_prob", r.re_prob, 0, 1);
    if (!(r.crop_pct > 0 && r.crop_pct <= 1)) recipe_range_error("crop_pct", r.crop_pct, where, "must be in (0, 1]");
    at_least("mixup", r.mixup, 0);
    at_least("cutmix", r.cutmix, 0);
    in_closed("mixup_prob", r.mixup_prob, 0, 1);
    in_closed("mixup_switch_prob", r.mixup_switch_prob, 0, 1);
    in_half_open("label_smoothing", r.label_smoothing, 0, 1);
    check_choice("loss", r.loss, {"ce"}, where);

    check_choice("opt", r.opt, {"adamw"}, where);
    at_least("lr", r.lr, 0);
    at_least("weight_decay", r.weight_decay, 0);
    at_least("momentum", r.momentum, 0);
    in_half_open("beta1", r.beta1, 0, 1);
    in_half_open("beta2", r.beta2, 0, 1);
    if (!(r.eps > 0)) recipe_range_error("eps", r.eps, where, "must be > 0");
    if (!(r.layer_decay > 0 && r.layer_decay <= 1)) recipe_range_error("layer_decay", r.layer_decay, where, "must be in (0, 1]");
    check_choice("layer_decay_type", r.layer_decay_type, {"single", "group"}, where);
    at_least("update_freq", r.update_freq, 1);

    check_choice("scheduler", r.scheduler, {"warmup_cosine_decay", "cosine_decay"}, where);
    at_least("epoch_size", r.epoch_size, 1);
    at_least("min_lr", r.min_lr, 0);
    if (r.min_lr > r.lr) recipe_range_error("min_lr", r.min_lr, where, "must be <= lr " + detail::value_text(r.lr));
    in_closed("warmup_epochs", r.warmup_epochs, 0, r.epoch_size);
    in_closed("warmup_factor", r.warmup_factor, 0, 1);
    at_least("decay_epochs", r.decay_epochs, 0);

    in_half_open("ema_decay", r.ema_decay, 0, 1);
    check_choice("amp_level", r.amp_level, {"O0", "O1", "O2", "O3"}, where);
    check_choice("matmul_precision", r.matmul_precision, {"fp32", "bf16", "auto"}, where);
    check_choice("loss_scale_type", detail::lower(r.loss_scale_type), {"fixed", "dynamic", "auto"}, where);
    if (!(r.loss_scale > 0)) recipe_range_error("loss_scale", r.loss_scale, where, "must be > 0");
    at_least("num_threads", r.num_threads, 0);
    at_least("val_interval", r.val_interval, 1);
    at_least("log_interval", r.log_interval, 0);
    at_least("keep_checkpoint_max", r.keep_checkpoint_max, 0);

    in_half_open("mask_ratio", r.mask_ratio, 0, 1);
    at_least("decoder_dim", r.decoder_dim, 1);
    at_most("decoder_dim", r.decoder_dim, 1 << 14);
    at_least("decoder_depth", r.decoder_depth, 0);
    at_most("decoder_depth", r.decoder_depth, 64);
    check_choice("sparse_grn", r.sparse_grn, {"sample", "batch"}, where);
    check_choice("encoder_mode", r.encoder_mode, {"sparse", "dense_masked"}, where);
    at_least("recon_interval", r.recon_interval, 0);
    at_least("recon_images", r.recon_images, 0);
    at_most("recon_images", r.recon_images, 256);
}

// Reads a recipe object over the defaults; `where` (usually the file name) appears in errors.
inline recipe recipe_from_json(const nlohmann::json& j, const std::string& where, recipe base = {})
{
    if (!j.is_object()) throw error(where + ": a recipe must be a JSON object, found " + std::string(j.type_name()));
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& key = it.key();
        if (!key.empty() && (key[0] == '_' || key[0] == '#')) continue;
        const detail::recipe_field* f = detail::find_recipe_field(key);
        if (!f) throw error("unknown key '" + key + "' in " + where + detail::did_you_mean(key, detail::recipe_key_names()));
        detail::read_recipe_field(base, *f, it.value(), where);
    }
    detail::canonicalise(base);
    validate_recipe(base, where);
    return base;
}

inline recipe load_recipe(const std::string& path)
{
    std::ifstream in(path);
    if (!in) throw error("cannot open recipe file '" + path + "'");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in, nullptr, true, /*ignore_comments=*/true);
    } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
        throw error("recipe file '" + path + "' is not valid JSON: " + e.what());
    }
    return recipe_from_json(j, path);
}

// Every key with its effective value (alphabetical, as nlohmann::json orders objects).
inline nlohmann::json to_json(const recipe& r)
{
    nlohmann::json j = nlohmann::json::object();
    for (const auto& f : detail::recipe_fields()) j[f.name] = detail::write_recipe_field(r, f);
    return j;
}

// Sets one key from command-line text ("--lr 1e-3" → key "lr", value "1e-3"), with the same type
// and range checks as a file. Booleans accept true/false/1/0/yes/no; pairs/lists accept "[a,b]" or "a,b".
inline void apply_override(recipe& r, const std::string& key_in, const std::string& value)
{
    std::string key = key_in;
    while (!key.empty() && key[0] == '-') key.erase(0, 1);
    std::replace(key.begin(), key.end(), '-', '_');
    const std::string where = "command-line override --" + key;
    const detail::recipe_field* f = detail::find_recipe_field(key);
    if (!f) throw error("unknown key '" + key + "' in command line" + detail::did_you_mean(key, detail::recipe_key_names()));

    nlohmann::json v;
    auto parse = [](const std::string& s, nlohmann::json& out) {
        out = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
        return !out.is_discarded();
    };
    switch (f->kind) {
    case detail::recipe_kind::string: v = value; break;
    case detail::recipe_kind::boolean: {
        const std::string b = detail::lower(value);
        if (b == "true" || b == "1" || b == "yes" || b == "on") v = true;
        else if (b == "false" || b == "0" || b == "no" || b == "off") v = false;
        else detail::recipe_type_error(*f, where, "'" + value + "'");
        break;
    }
    case detail::recipe_kind::pair:
    case detail::recipe_kind::int_list:
        if (!parse(value, v) && !parse("[" + value + "]", v)) detail::recipe_type_error(*f, where, "'" + value + "'");
        if (!v.is_array() && !parse("[" + value + "]", v)) detail::recipe_type_error(*f, where, "'" + value + "'");
        break;
    default:
        if (!parse(value, v) || !v.is_number()) detail::recipe_type_error(*f, where, "'" + value + "'");
        break;
    }
    recipe next = r;
    detail::read_recipe_field(next, *f, v, where);
    detail::canonicalise(next);
    validate_recipe(next, where);
    r = next;
}

// Derived values the trainer needs.
inline double recipe_decay_epochs(const recipe& r)
{
    return r.decay_epochs > 0 ? r.decay_epochs : std::max(0.0, r.epoch_size - r.warmup_epochs);
}
// lr at fractional epoch e (before layer-decay scaling): MindCV's and the official curve.
inline double recipe_lr(const recipe& r, double e)
{
    return warmup_cosine_lr(e, r.lr, r.min_lr, r.warmup_epochs, r.warmup_epochs + recipe_decay_epochs(r), r.lr * r.warmup_factor);
}
inline int recipe_eval_batch_size(const recipe& r) { return r.eval_batch_size > 0 ? r.eval_batch_size : r.batch_size; }

// Settings that are accepted for 1:1 translation but do not change what this library does.
inline std::vector<std::string> recipe_notes(const recipe& r)
{
    std::vector<std::string> n;
    if (r.amp_level != "O0")
        n.push_back("amp_level '" + r.amp_level + "' is ignored (no fp16 on the CPU); matmul_precision bf16 is this library's mixed precision");
    if (r.use_nesterov) n.push_back("use_nesterov is ignored by AdamW");
    if (r.pretrained && r.ckpt_path.empty()) n.push_back("pretrained = true needs ckpt_path (weights are never downloaded)");
    if (r.loss_scale_type != "fixed" || r.loss_scale != 1.0) n.push_back("loss scaling is unused in fp32 training");
    if (r.dataset == "imagefolder" && r.data_dir.empty()) n.push_back("data_dir is empty");
    return n;
}

} // namespace convnextv2
