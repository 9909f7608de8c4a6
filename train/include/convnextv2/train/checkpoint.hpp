// SPDX-License-Identifier: MIT
// Training checkpoints: one safetensors file per saved epoch holding the model under official
// names (loadable by PyTorch users and by `validate`), the EMA copy under "ema.", the AdamW
// moments under "optim.exp_avg." / "optim.exp_avg_sq.", and the rest of the state (epoch, step,
// effective recipe, metric history) as metadata. Writes go to a temp file that is fsynced and
// renamed, so a crash at any moment leaves the previous checkpoint intact.
#pragma once
#include <convnextv2/io/safetensors.hpp>
#include <convnextv2/io/weights.hpp>
#include <convnextv2/optim/adamw.hpp>
#include <convnextv2/optim/ema.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <regex>

namespace convnextv2::train {

struct checkpoint_state {
    std::int64_t epochs_done = 0;    // completed epochs
    std::int64_t global_step = 0;    // optimizer steps taken
    nlohmann::json recipe;           // the effective recipe
    nlohmann::json history = nlohmann::json::array();  // one metrics object per epoch
};

inline std::string checkpoint_path(const std::string& dir, const std::string& model, std::int64_t epoch)
{
    return (std::filesystem::path(dir) / (model + "-" + std::to_string(epoch) + ".safetensors")).string();
}

template <class T>
void save_checkpoint(const std::string& path, const param_list<T>& params, const adamw<T>& opt, const model_ema<T>* ema,
                     const checkpoint_state& st)
{
    std::vector<std::vector<float>> bufs;
    std::vector<io::named_tensor> out;
    bufs.reserve(params.size() * 4);
    auto add = [&](const std::string& name, const shape_t& torch_shape, const std::vector<int>& perm, const T* data) {
        bufs.emplace_back(static_cast<std::size_t>(numel(torch_shape)));
        io::permute_to_torch(data, torch_shape, perm, bufs.back().data());
        out.push_back({name, torch_shape, bufs.back().data()});
    };
    auto state = const_cast<adamw<T>&>(opt).state();
    for (std::size_t i = 0; i < params.size(); ++i) {
        const auto& p = params[i];
        add(p.name, p.torch_shape, p.perm, p.value->data());
        if (ema) add("ema." + p.name, p.torch_shape, p.perm, ema->value(p.name).data());
        add("optim.exp_avg." + p.name, p.torch_shape, p.perm, state.slots[i].exp_avg->data());
        add("optim.exp_avg_sq." + p.name, p.torch_shape, p.perm, state.slots[i].exp_avg_sq->data());
    }
    std::map<std::string, std::string> meta{{"format", io::checkpoint_format},
                                            {"epochs_done", std::to_string(st.epochs_done)},
                                            {"global_step", std::to_string(st.global_step)},
                                            {"adamw_step", std::to_string(state.step)},
                                            {"recipe", st.recipe.dump()},
                                            {"history", st.history.dump()}};
    io::write_safetensors(path, out, meta);
}

// Restores params, optimizer moments and EMA from a checkpoint written by save_checkpoint.
template <class T>
checkpoint_state load_checkpoint(const std::string& path, param_list<T>& params, adamw<T>& opt, model_ema<T>* ema)
{
    io::st_file f = io::read_safetensors(path);
    auto fmt = f.metadata.find("format");
    CONVNEXTV2_CHECK(fmt != f.metadata.end() && fmt->second == io::checkpoint_format, path,
                     ": not a training checkpoint (no '", io::checkpoint_format, "' metadata); use --ckpt_path for plain weights");
    auto tensor_of = [&](const std::string& key, const param_ref<T>& p, tensor<T>& dst) {
        auto it = f.tensors.find(key);
        CONVNEXTV2_CHECK(it != f.tensors.end(), path, ": checkpoint lacks tensor '", key, "'");
        CONVNEXTV2_CHECK(it->second.shape == p.torch_shape, path, ": tensor '", key, "' has shape ", to_string(it->second.shape),
                         ", the model expects ", to_string(p.torch_shape));
        std::vector<float> v = io::to_float(it->second);
        dst.resize(p.value->shape());
        io::permute_to_internal(v.data(), p.torch_shape, p.perm, dst.data());
    };
    // Stage everything, then commit: a bad checkpoint leaves the trainer's state untouched.
    std::vector<tensor<T>> values(params.size()), ema_values(params.size());
    std::map<std::string, tensor<T>> m, v;
    for (std::size_t i = 0; i < params.size(); ++i) {
        const auto& p = params[i];
        tensor_of(p.name, p, values[i]);
        if (ema) tensor_of("ema." + p.name, p, ema_values[i]);
        tensor_of("optim.exp_avg." + p.name, p, m[p.name]);
        tensor_of("optim.exp_avg_sq." + p.name, p, v[p.name]);
    }
    checkpoint_state st;
    // A whole decimal number in [0, 2^53] (no sign, no trailing text, no overflow).
    auto count = [&](const char* key) {
        auto it = f.metadata.find(key);
        CONVNEXTV2_CHECK(it != f.metadata.end(), path, ": corrupt checkpoint metadata (no '", key, "')");
        const std::string& t = it->second;
        std::int64_t x = 0;
        bool ok = !t.empty() && t.size() <= 16;
        for (char c : t) {
            ok = ok && c >= '0' && c <= '9';
            if (ok) x = x * 10 + (c - '0');
        }
        CONVNEXTV2_CHECK(ok && x <= (std::int64_t{1} << 53), path, ": corrupt checkpoint metadata ('", key, "' = '", t.substr(0, 40),
                         "' is not a count)");
        return x;
    };
    st.epochs_done = count("epochs_done");
    st.global_step = count("global_step");
    const std::int64_t adam_step = count("adamw_step");
    try {
        st.recipe = nlohmann::json::parse(f.metadata.at("recipe"));
        st.history = nlohmann::json::parse(f.metadata.at("history"));
        CONVNEXTV2_CHECK(st.recipe.is_object(), path, ": corrupt checkpoint metadata ('recipe' is not a JSON object)");
        CONVNEXTV2_CHECK(st.history.is_array() && st.history.size() <= static_cast<std::size_t>(st.epochs_done), path,
                         ": corrupt checkpoint metadata ('history' is not an array of at most epochs_done = ", st.epochs_done,
                         " rows)");
        for (const auto& row : st.history) {
            CONVNEXTV2_CHECK(row.is_object(), path, ": corrupt checkpoint metadata ('history' rows must be objects)");
            for (const auto& kv : row.items())
                CONVNEXTV2_CHECK(kv.value().is_number() || kv.value().is_null(), path, ": corrupt checkpoint metadata (history value '",
                                 kv.key(), "' is not a number)");
        }
        opt.load_state(adam_step, m, v);
    } catch (const convnextv2::error&) {
        throw;
    } catch (const std::exception& e) {
        detail::throw_error(path.c_str(), "corrupt checkpoint metadata (", e.what(), ")");
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
        std::copy(values[i].begin(), values[i].end(), params[i].value->begin());
        if (ema) {
            auto& e = ema->value(params[i].name);
            std::copy(ema_values[i].begin(), ema_values[i].end(), e.begin());
        }
    }
    return st;
}

// Saved checkpoints of `model` in `dir`, sorted by epoch (ascending).
inline std::vector<std::pair<std::int64_t, std::string>> list_checkpoints(const std::string& dir, const std::string& model)
{
    std::vector<std::pair<std::int64_t, std::string>> r;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) return r;
    const std::regex re(std::regex_replace(model, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") + R"(-(\d+)\.safetensors)");
    for (auto& e : std::filesystem::directory_iterator(dir, ec)) {
        std::smatch mm;
        std::string name = e.path().filename().string();
        if (std::regex_match(name, mm, re)) r.emplace_back(std::stoll(mm[1]), e.path().string());
    }
    std::sort(r.begin(), r.end());
    return r;
}

// Keeps the newest `keep` checkpoints (keep <= 0: keep all).
inline void prune_checkpoints(const std::string& dir, const std::string& model, int keep)
{
    if (keep <= 0) return;
    auto all = list_checkpoints(dir, model);
    for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < all.size(); ++i) std::filesystem::remove(all[i].second);
}

} // namespace convnextv2::train
