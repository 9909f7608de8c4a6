// SPDX-License-Identifier: MIT
// Weight interop between a param_list and safetensors files. Keys written by the official code,
// timm, HF transformers or the FCMAE sparse pretraining code are all mapped to the official
// ConvNeXt V2 state-dict names (SPEC §5, §3.10); shapes that only differ the way those exporters
// differ (GRN (D,) vs (1,1,1,D), fc (out,in) vs (out,in,1,1), biases (1,C)) are accepted, and
// MinkowskiEngine `kernel` tensors are re-laid out to OIHW. Loading is strict by default and
// transactional: every problem is collected and reported in one error naming the file, and no
// parameter is touched unless the whole file validates. Files are stored in PyTorch layout
// (torch_shape); param_ref::perm converts to and from each parameter's internal layout.
#pragma once
#include "../layers/param.hpp"
#include "safetensors.hpp"

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace convnextv2::io {

struct load_options {
    bool strict = true;              // missing or unexpected keys are errors (shape/dtype errors always are)
    bool skip_head = false;          // head.* and norm.* may be missing or mis-shaped: left as-is
    bool allow_missing_head = false; // FCMAE encoder files: no norm/head -> ok
    bool prefer_ema = false;         // training checkpoints: load the EMA weights when present
};

// Metadata value that marks our training checkpoints (weights + "ema." + "optim." tensors).
inline const char* checkpoint_format = "convnextv2-cpp/checkpoint-v1";

struct load_report {
    std::vector<std::string> loaded, missing, unexpected, skipped;
};

namespace detail {

inline std::vector<std::string> split_key(const std::string& key)
{
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        std::size_t dot = key.find('.', start);
        parts.push_back(key.substr(start, dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return parts;
}

inline std::string join_key(const std::vector<std::string>& parts)
{
    std::string r;
    for (std::size_t i = 0; i < parts.size(); ++i) r += (i ? "." : "") + parts[i];
    return r;
}

inline std::vector<std::string> tail(const std::vector<std::string>& p, std::size_t from)
{
    return from >= p.size() ? std::vector<std::string>{} : std::vector<std::string>(p.begin() + static_cast<std::ptrdiff_t>(from), p.end());
}

inline std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b)
{
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// Block-local suffix (after stages.i.j) from timm / HF spelling to official spelling.
inline std::vector<std::string> block_suffix(const std::vector<std::string>& s, bool hf)
{
    auto is = [&](std::initializer_list<const char*> pre) {
        if (s.size() < pre.size()) return false;
        std::size_t i = 0;
        for (const char* x : pre) if (s[i++] != x) return false;
        return true;
    };
    if (!hf) {
        if (is({"conv_dw"})) return concat({"dwconv"}, tail(s, 1));
        if (is({"mlp", "fc1"})) return concat({"pwconv1"}, tail(s, 2));
        if (is({"mlp", "fc2"})) return concat({"pwconv2"}, tail(s, 2));
        if (is({"mlp", "grn", "weight"})) return {"grn", "gamma"};
        if (is({"mlp", "grn", "bias"})) return {"grn", "beta"};
    } else {
        if (is({"layernorm"})) return concat({"norm"}, tail(s, 1));
        if (is({"grn", "weight"})) return {"grn", "gamma"};
        if (is({"grn", "bias"})) return {"grn", "beta"};
    }
    return s;
}

struct canonical_key {
    std::string name;
    bool sparse_kernel = false; // MinkowskiEngine `kernel`: needs the kh-fastest re-layout
    bool fcmae_encoder = false; // had the `encoder.` prefix of a raw FCMAE checkpoint
};

inline canonical_key canonicalize(const std::string& key)
{
    canonical_key r;
    auto p = split_key(key);
    while (p.size() > 1 && (p[0] == "model" || p[0] == "module")) p.erase(p.begin());

    if (p[0] == "convnextv2" && p.size() > 1) {  // HF transformers
        auto q = tail(p, 1);
        if (q.size() > 2 && q[0] == "embeddings" && q[1] == "patch_embeddings") q = concat({"downsample_layers", "0", "0"}, tail(q, 2));
        else if (q.size() > 2 && q[0] == "embeddings" && q[1] == "layernorm") q = concat({"downsample_layers", "0", "1"}, tail(q, 2));
        else if (q.size() > 5 && q[0] == "encoder" && q[1] == "stages" && q[3] == "downsampling_layer")
            q = concat({"downsample_layers", q[2], q[4]}, tail(q, 5));
        else if (q.size() > 5 && q[0] == "encoder" && q[1] == "stages" && q[3] == "layers")
            q = concat({"stages", q[2], q[4]}, block_suffix(tail(q, 5), true));
        else if (q.size() > 1 && q[0] == "layernorm") q = concat({"norm"}, tail(q, 1));
        else q = p;  // unknown: keep the full key so it is reported as unexpected
        r.name = join_key(q);
        return r;
    }
    if (p[0] == "classifier" && p.size() > 1) {  // HF (and MindCV) head
        r.name = join_key(concat({"head"}, tail(p, 1)));
        return r;
    }

    if (p[0] == "encoder" && p.size() > 1) {  // raw FCMAE checkpoint
        p.erase(p.begin());
        r.fcmae_encoder = true;
    }
    if (p.size() > 1 && p.back() == "kernel") {
        p.back() = "weight";
        r.sparse_kernel = true;
    }
    // MinkowskiLayerNorm / MinkowskiLinear wrap the dense module as `.ln` / `.linear`.
    for (std::size_t i = 0; i + 1 < p.size();) {
        if (p[i] == "ln" || p[i] == "linear") p.erase(p.begin() + static_cast<std::ptrdiff_t>(i));
        else ++i;
    }

    // timm
    if (p.size() > 2 && p[0] == "stem") p = concat({"downsample_layers", "0"}, tail(p, 1));
    else if (p.size() > 4 && p[0] == "stages" && p[2] == "downsample") p = concat({"downsample_layers", p[1]}, tail(p, 3));
    else if (p.size() > 4 && p[0] == "stages" && p[2] == "blocks") p = concat({"stages", p[1], p[3]}, block_suffix(tail(p, 4), false));
    else if (p.size() > 2 && p[0] == "head" && p[1] == "norm") p = concat({"norm"}, tail(p, 2));
    else if (p.size() > 2 && p[0] == "head" && p[1] == "fc") p = concat({"head"}, tail(p, 2));
    r.name = join_key(p);
    return r;
}

inline bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }
inline bool ends_with(const std::string& s, const std::string& suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// head.* / norm.*: the parts of a classifier that FCMAE files lack and fine-tuning replaces.
inline bool is_head_name(const std::string& canonical) { return starts_with(canonical, "head.") || starts_with(canonical, "norm."); }

// Shapes that hold the same row-major data as `expected` in the exporters we accept (SPEC §5.5).
inline bool shapes_compatible(const std::string& canonical, const shape_t& expected, const shape_t& found)
{
    if (expected == found) return true;
    if (ends_with(canonical, "grn.gamma") || ends_with(canonical, "grn.beta")) return numel(expected) == numel(found);
    if (expected.size() == 1) return found == shape_t{1, expected[0]};
    if (expected.size() == 2) return found == shape_t{expected[0], expected[1], 1, 1};
    if (expected.size() == 4 && expected[2] == 1 && expected[3] == 1) return found == shape_t{expected[0], expected[1]};
    return false;
}

// k with k*k == n, else 0. n comes from a file's shape: anything beyond a plausible kernel area
// is rejected before the search (a huge n made this loop run for billions of steps and overflow).
inline index_t exact_sqrt(index_t n)
{
    if (n <= 0 || n > (index_t{1} << 20)) return 0;
    index_t k = 0;
    while ((k + 1) * (k + 1) <= n) ++k;
    return k * k == n ? k : 0;
}

// OIHW shape of a MinkowskiEngine kernel: (k², in, out) -> (out, in, k, k); depthwise (k², C) -> (C, 1, k, k).
inline shape_t kernel_torch_shape(const shape_t& s)
{
    if (s.size() != 2 && s.size() != 3) return {};
    index_t k = exact_sqrt(s[0]);
    if (k == 0) return {};
    return s.size() == 3 ? shape_t{s[2], s[1], k, k} : shape_t{s[1], 1, k, k};
}

// W[o, i, kh, kw] = kernel[kw·k + kh, i, o] (MinkowskiEngine's kernel index has kh fastest).
inline std::vector<float> kernel_to_torch(const std::vector<float>& ker, const shape_t& kshape)
{
    const shape_t ts = kernel_torch_shape(kshape);
    const index_t O = ts[0], I = ts[1], k = ts[2];
    std::vector<float> w(ker.size());
    for (index_t o = 0; o < O; ++o)
        for (index_t i = 0; i < I; ++i)
            for (index_t kh = 0; kh < k; ++kh)
                for (index_t kw = 0; kw < k; ++kw)
                    w[static_cast<std::size_t>(((o * I + i) * k + kh) * k + kw)] =
                        ker[static_cast<std::size_t>((kw * k + kh) * I * O + i * O + o)];
    return w;
}

inline void check_perm(const shape_t& torch_shape, const std::vector<int>& perm, const std::string& what)
{
    if (perm.empty()) return;
    CONVNEXTV2_CHECK(perm.size() == torch_shape.size(), what, ": perm has ", perm.size(), " axes but torch shape ", to_string(torch_shape),
                     " has ", torch_shape.size());
    std::vector<bool> seen(perm.size(), false);
    for (int a : perm) {
        CONVNEXTV2_CHECK(a >= 0 && a < static_cast<int>(perm.size()) && !seen[static_cast<std::size_t>(a)], what,
                         ": perm is not a permutation of 0..", perm.size() - 1);
        seen[static_cast<std::size_t>(a)] = true;
    }
}

// Calls f(internal_index, torch_index) for every element, internal index in row-major order.
template <class F>
void for_each_permuted(const shape_t& torch_shape, const std::vector<int>& perm, F&& f)
{
    const index_t n = numel(torch_shape);
    if (n <= 0) return;
    if (perm.empty()) {
        for (index_t k = 0; k < n; ++k) f(k, k);
        return;
    }
    check_perm(torch_shape, perm, "permute " + to_string(torch_shape));
    const int r = static_cast<int>(perm.size());
    const shape_t ts = strides_of(torch_shape);
    shape_t ext(perm.size()), step(perm.size()), idx(perm.size(), 0);
    for (int i = 0; i < r; ++i) {
        ext[static_cast<std::size_t>(i)] = torch_shape[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])];
        step[static_cast<std::size_t>(i)] = ts[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])];
    }
    index_t off = 0;
    for (index_t k = 0; k < n; ++k) {
        f(k, off);
        for (int a = r - 1; a >= 0; --a) {  // odometer over internal axes
            const auto ua = static_cast<std::size_t>(a);
            off += step[ua];
            if (++idx[ua] < ext[ua]) break;
            off -= step[ua] * ext[ua];
            idx[ua] = 0;
        }
    }
}

template <class T>
void check_param(const param_ref<T>& p)
{
    CONVNEXTV2_CHECK(p.value != nullptr, "parameter '", p.name, "' has no value tensor");
    CONVNEXTV2_CHECK(p.value->size() == numel(p.torch_shape), "parameter '", p.name, "': internal shape ", to_string(p.value->shape()),
                     " and torch shape ", to_string(p.torch_shape), " differ in element count");
    check_perm(p.torch_shape, p.perm, "parameter '" + p.name + "'");
}

inline bool float_dtype(const std::string& d) { return d == "F32" || d == "F16" || d == "BF16" || d == "F64"; }

} // namespace detail

// Official state-dict name for an official, timm, HF or FCMAE-sparse key (see header comment).
inline std::string canonical_name(const std::string& key) { return detail::canonicalize(key).name; }

// internal[k] = torch[...] where internal.shape[i] = torch_shape[perm[i]] (empty perm: plain copy).
template <class T>
void permute_to_internal(const float* torch_data, const shape_t& torch_shape, const std::vector<int>& perm, T* internal)
{
    detail::for_each_permuted(torch_shape, perm, [&](index_t k, index_t t) { internal[k] = static_cast<T>(torch_data[t]); });
}

// Inverse of permute_to_internal: internal layout back to PyTorch layout.
template <class T>
void permute_to_torch(const T* internal, const shape_t& torch_shape, const std::vector<int>& perm, float* torch_data)
{
    detail::for_each_permuted(torch_shape, perm, [&](index_t k, index_t t) { torch_data[t] = static_cast<float>(internal[k]); });
}

template <class T>
load_report load_weights_from(param_list<T>& params, const st_file& file, const std::string& path, const load_options& opt = {});

// Training checkpoints hold the model under official names plus "ema." and "optim." tensors:
// keep the model (or, with prefer_ema, the EMA copy renamed to official names).
inline st_file model_view_of_checkpoint(st_file file, bool prefer_ema)
{
    auto it = file.metadata.find("format");
    if (it == file.metadata.end() || it->second != checkpoint_format) return file;
    bool has_ema = false;
    for (auto& kv : file.tensors) has_ema = has_ema || kv.first.rfind("ema.", 0) == 0;
    st_file out;
    out.metadata = file.metadata;
    for (auto& [key, t] : file.tensors) {
        bool is_ema = key.rfind("ema.", 0) == 0, is_optim = key.rfind("optim.", 0) == 0;
        if (is_optim) continue;
        if (prefer_ema && has_ema) {
            if (is_ema) out.tensors.emplace(key.substr(4), std::move(t));
        } else if (!is_ema) {
            out.tensors.emplace(key, std::move(t));
        }
    }
    return out;
}

namespace detail {
// Programming errors in the param list: reported before any file is read.
template <class T>
std::map<std::string, std::size_t> index_params(const param_list<T>& params)
{
    std::map<std::string, std::size_t> param_of;
    for (std::size_t i = 0; i < params.size(); ++i) {
        check_param(params[i]);
        const std::string c = canonical_name(params[i].name);
        CONVNEXTV2_CHECK(param_of.emplace(c, i).second, "load_weights: parameters '", params[param_of[c]].name, "' and '",
                         params[i].name, "' have the same name");
    }
    return param_of;
}
} // namespace detail

template <class T>
load_report load_weights(param_list<T>& params, const std::string& path, const load_options& opt = {})
{
    detail::index_params(params);
    return load_weights_from(params, model_view_of_checkpoint(read_safetensors(path), opt.prefer_ema), path, opt);
}

template <class T>
load_report load_weights_from(param_list<T>& params, const st_file& file, const std::string& path, const load_options& opt)
{
    std::map<std::string, std::size_t> param_of = detail::index_params(params);

    struct source {
        std::string key;
        const st_tensor* t;
        bool kernel;
    };
    std::map<std::string, source> by_name;
    std::vector<std::string> problems;
    bool fcmae_raw = false;
    for (const auto& [key, t] : file.tensors) {
        auto c = detail::canonicalize(key);
        fcmae_raw = fcmae_raw || c.fcmae_encoder;
        auto [it, fresh] = by_name.emplace(c.name, source{key, &t, c.sparse_kernel});
        if (!fresh) problems.push_back("keys '" + it->second.key + "' and '" + key + "' both map to '" + c.name + "'");
    }

    struct planned {
        param_ref<T>* p;
        const source* s;
    };
    std::vector<planned> plan;
    std::set<std::string> used;
    load_report rep;
    for (auto& p : params) {
        const std::string c = canonical_name(p.name);
        const bool head = detail::is_head_name(c);
        auto it = by_name.find(c);
        if (it == by_name.end()) {
            if (opt.skip_head && head) { rep.skipped.push_back(p.name); continue; }
            rep.missing.push_back(p.name);
            if (opt.strict && !(opt.allow_missing_head && head))
                problems.push_back("missing key '" + p.name + "' (expected shape " + to_string(p.torch_shape) + ")");
            continue;
        }
        used.insert(c);
        const source& s = it->second;
        const std::string from = s.key == p.name ? "" : " (file key '" + s.key + "')";
        if (!detail::float_dtype(s.t->dtype)) {
            problems.push_back("unsupported dtype " + s.t->dtype + " for '" + p.name + "'" + from + " (need F32, F16, BF16 or F64)");
            continue;
        }
        shape_t found = s.t->shape;
        if (s.kernel) {
            found = detail::kernel_torch_shape(s.t->shape);
            if (found.empty()) {
                problems.push_back("sparse kernel '" + s.key + "' has shape " + to_string(s.t->shape) + ", expected (k*k, in, out) or (k*k, C)");
                continue;
            }
        }
        if (!detail::shapes_compatible(c, p.torch_shape, found)) {
            if (opt.skip_head && head) { rep.skipped.push_back(p.name); continue; }
            problems.push_back("shape mismatch for '" + p.name + "'" + from + ": expected " + to_string(p.torch_shape) + ", found " +
                               to_string(s.t->shape) + (s.kernel ? " (sparse kernel, as " + to_string(found) + ")" : ""));
            continue;
        }
        plan.push_back({&p, &s});
    }
    for (const auto& [c, s] : by_name) {
        if (used.count(c)) continue;
        const std::string first = c.substr(0, c.find('.'));
        // The official fine-tune script drops the FCMAE decoder; so do we, but say so.
        const bool decoder = fcmae_raw && (first == "decoder" || first == "mask_token" || first == "proj" || first == "pred");
        if (decoder || (opt.skip_head && detail::is_head_name(c))) { rep.skipped.push_back(s.key); continue; }
        rep.unexpected.push_back(s.key);
        if (opt.strict)
            problems.push_back("unexpected key '" + s.key + "' (shape " + to_string(s.t->shape) + ", " + s.t->dtype + ")");
    }

    if (!problems.empty()) {
        std::string msg = path + ": cannot load weights (" + std::to_string(problems.size()) + " problem" +
                          (problems.size() == 1 ? "" : "s") + "):";
        for (const auto& m : problems) msg += "\n  " + m;
        throw error(msg);
    }

    for (const auto& [p, s] : plan) {
        std::vector<float> v = to_float(*s->t);
        if (s->kernel) v = detail::kernel_to_torch(v, s->t->shape);
        permute_to_internal(v.data(), p->torch_shape, p->perm, p->value->data());
        rep.loaded.push_back(p->name);
    }
    return rep;
}

// Writes every parameter under its (official) name in PyTorch shape and layout, F32, atomically.
template <class T>
void save_weights(const param_list<T>& params, const std::string& path, const std::map<std::string, std::string>& metadata = {})
{
    std::vector<std::vector<float>> bufs;
    bufs.reserve(params.size());
    for (const auto& p : params) {
        detail::check_param(p);
        bufs.emplace_back(static_cast<std::size_t>(numel(p.torch_shape)));
        permute_to_torch(p.value->data(), p.torch_shape, p.perm, bufs.back().data());
    }
    std::vector<named_tensor> out;
    for (std::size_t i = 0; i < params.size(); ++i) out.push_back({params[i].name, params[i].torch_shape, bufs[i].data()});
    write_safetensors(path, out, metadata);
}

} // namespace convnextv2::io
