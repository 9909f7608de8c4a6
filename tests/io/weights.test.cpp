// Weight loading/saving on a hand-built param list with official names and non-trivial internal
// layouts: save/load round trip, timm / HF / FCMAE-sparse key spellings and shapes, strict-mode
// error reports, skip_head and transactional behaviour. Independent of the model code.
#include <support/fixtures.hpp>
#include <convnextv2/io/weights.hpp>

#include <deque>
#include <filesystem>

using namespace convnextv2;
using namespace convnextv2::io;
namespace fs = std::filesystem;

namespace {

struct temp_dir : test::temp_dir {
    temp_dir() : test::temp_dir("convnextv2_w_test") {}
};

// A two-stage mini ConvNeXt V2 (d0 = 4, d1 = 8, one block in stage 0, K classes) registered
// like the model will: official names, internal layouts different from PyTorch's.
struct toy_model {
    static constexpr index_t C = 4, D = 16, C2 = 8;
    index_t K;
    std::deque<tensor<float>> store;
    param_list<float> params;

    explicit toy_model(std::uint64_t seed, index_t classes = 5) : K(classes)
    {
        add("downsample_layers.0.0.weight", {C, 3, 4, 4}, {0, 2, 3, 1}, seed);  // internal (O,kh,kw,I)
        add("downsample_layers.0.0.bias", {C}, {}, seed);
        add("downsample_layers.0.1.weight", {C}, {}, seed);
        add("downsample_layers.0.1.bias", {C}, {}, seed);
        add("stages.0.0.dwconv.weight", {C, 1, 7, 7}, {2, 3, 1, 0}, seed);  // internal (7,7,1,C)
        add("stages.0.0.dwconv.bias", {C}, {}, seed);
        add("stages.0.0.norm.weight", {C}, {}, seed);
        add("stages.0.0.norm.bias", {C}, {}, seed);
        add("stages.0.0.pwconv1.weight", {D, C}, {}, seed);      // (out,in) as torch
        add("stages.0.0.pwconv1.bias", {D}, {}, seed);
        add("stages.0.0.grn.gamma", {1, 1, 1, D}, {}, seed, {D});  // internal (D)
        add("stages.0.0.grn.beta", {1, 1, 1, D}, {}, seed, {D});
        add("stages.0.0.pwconv2.weight", {C, D}, {1, 0}, seed);  // internal transposed (D,C)
        add("stages.0.0.pwconv2.bias", {C}, {}, seed);
        add("downsample_layers.1.0.weight", {C}, {}, seed);
        add("downsample_layers.1.0.bias", {C}, {}, seed);
        add("downsample_layers.1.1.weight", {C2, C, 2, 2}, {0, 2, 3, 1}, seed);
        add("downsample_layers.1.1.bias", {C2}, {}, seed);
        add("norm.weight", {C2}, {}, seed);
        add("norm.bias", {C2}, {}, seed);
        add("head.weight", {K, C2}, {}, seed);
        add("head.bias", {K}, {}, seed);
    }

    void add(const std::string& name, shape_t torch_shape, std::vector<int> perm, std::uint64_t seed, shape_t internal = {})
    {
        if (internal.empty()) {
            internal = torch_shape;
            for (std::size_t i = 0; i < perm.size(); ++i) internal[i] = torch_shape[static_cast<std::size_t>(perm[i])];
        }
        store.push_back(seed ? test::random_tensor<float>(internal, seed * 1000 + store.size()) : tensor<float>(internal, 0.0f));
        tensor<float>& v = store.back();
        store.emplace_back();
        add_param(params, name, v, store.back(), torch_shape, perm);
    }

    const tensor<float>& value(const std::string& name) const
    {
        for (const auto& p : params)
            if (p.name == name) return *p.value;
        FAIL("no param " << name);
        throw 0;
    }

    // Torch-layout copy of a parameter (what an exporter writes).
    std::vector<float> torch_data(const std::string& name) const
    {
        for (const auto& p : params)
            if (p.name == name) {
                std::vector<float> out(static_cast<std::size_t>(numel(p.torch_shape)));
                permute_to_torch(p.value->data(), p.torch_shape, p.perm, out.data());
                return out;
            }
        FAIL("no param " << name);
        throw 0;
    }
};

void require_equal(const toy_model& a, const toy_model& b, bool with_head = true)
{
    for (const auto& p : a.params) {
        if (!with_head && (p.name.rfind("head.", 0) == 0 || p.name.rfind("norm.", 0) == 0)) continue;
        INFO(p.name);
        REQUIRE(test::max_abs_diff(*p.value, b.value(p.name)) == 0);
    }
}

// Writes the toy model's values under other names/shapes: rename(official) -> {key, shape}
// (an empty key drops the tensor).
template <class Rename>
void export_as(const toy_model& m, const std::string& path, Rename rename)
{
    std::deque<std::vector<float>> bufs;
    std::vector<named_tensor> out;
    for (const auto& p : m.params) {
        auto [key, shape] = rename(p.name, p.torch_shape);
        if (key.empty()) continue;
        bufs.push_back(m.torch_data(p.name));
        out.push_back({key, shape, bufs.back().data()});
    }
    write_safetensors(path, out);
}

} // namespace

TEST_CASE("weights: permute_to_internal / permute_to_torch")
{
    // torch (C=2, 1, kh=2, kw=3) with perm {2,3,1,0} -> internal (2,3,1,2): internal[kh][kw][0][c] = torch[c][0][kh][kw].
    std::vector<float> torch(12);
    for (int i = 0; i < 12; ++i) torch[static_cast<std::size_t>(i)] = static_cast<float>(i);
    std::vector<double> internal(12);
    permute_to_internal(torch.data(), {2, 1, 2, 3}, {2, 3, 1, 0}, internal.data());
    for (int c = 0; c < 2; ++c)
        for (int kh = 0; kh < 2; ++kh)
            for (int kw = 0; kw < 3; ++kw) CHECK(internal[static_cast<std::size_t>((kh * 3 + kw) * 2 + c)] == torch[static_cast<std::size_t>(c * 6 + kh * 3 + kw)]);
    std::vector<float> back(12, -1);
    permute_to_torch(internal.data(), {2, 1, 2, 3}, {2, 3, 1, 0}, back.data());
    CHECK(back == torch);
    // Empty perm: plain copy.
    permute_to_internal(torch.data(), {12}, {}, internal.data());
    CHECK(internal[7] == 7.0);
    CHECK_THROWS_WITH(permute_to_internal(torch.data(), {2, 6}, {0, 0}, internal.data()), Catch::Contains("not a permutation"));
}

TEST_CASE("weights: canonical_name maps timm, HF and FCMAE keys to official names")
{
    const std::vector<std::pair<std::string, std::string>> cases = {
        // official -> itself; model./module. unwrapped
        {"stages.2.5.pwconv1.weight", "stages.2.5.pwconv1.weight"},
        {"downsample_layers.0.0.weight", "downsample_layers.0.0.weight"},
        {"norm.bias", "norm.bias"},
        {"head.weight", "head.weight"},
        {"model.stages.0.1.grn.gamma", "stages.0.1.grn.gamma"},
        {"module.head.bias", "head.bias"},
        // timm
        {"stem.0.weight", "downsample_layers.0.0.weight"},
        {"stem.1.bias", "downsample_layers.0.1.bias"},
        {"stages.1.downsample.0.weight", "downsample_layers.1.0.weight"},
        {"stages.3.downsample.1.bias", "downsample_layers.3.1.bias"},
        {"stages.0.blocks.2.conv_dw.weight", "stages.0.2.dwconv.weight"},
        {"stages.0.blocks.2.norm.bias", "stages.0.2.norm.bias"},
        {"stages.2.blocks.11.mlp.fc1.weight", "stages.2.11.pwconv1.weight"},
        {"stages.2.blocks.11.mlp.fc2.bias", "stages.2.11.pwconv2.bias"},
        {"stages.2.blocks.11.mlp.grn.weight", "stages.2.11.grn.gamma"},
        {"stages.2.blocks.11.mlp.grn.bias", "stages.2.11.grn.beta"},
        {"head.norm.weight", "norm.weight"},
        {"head.fc.bias", "head.bias"},
        // HF
        {"convnextv2.embeddings.patch_embeddings.weight", "downsample_layers.0.0.weight"},
        {"convnextv2.embeddings.layernorm.bias", "downsample_layers.0.1.bias"},
        {"convnextv2.encoder.stages.2.downsampling_layer.0.weight", "downsample_layers.2.0.weight"},
        {"convnextv2.encoder.stages.2.downsampling_layer.1.bias", "downsample_layers.2.1.bias"},
        {"convnextv2.encoder.stages.1.layers.0.dwconv.weight", "stages.1.0.dwconv.weight"},
        {"convnextv2.encoder.stages.1.layers.0.layernorm.weight", "stages.1.0.norm.weight"},
        {"convnextv2.encoder.stages.1.layers.0.pwconv1.bias", "stages.1.0.pwconv1.bias"},
        {"convnextv2.encoder.stages.1.layers.0.grn.weight", "stages.1.0.grn.gamma"},
        {"convnextv2.encoder.stages.1.layers.0.grn.bias", "stages.1.0.grn.beta"},
        {"convnextv2.encoder.stages.1.layers.0.pwconv2.weight", "stages.1.0.pwconv2.weight"},
        {"convnextv2.layernorm.weight", "norm.weight"},
        {"classifier.weight", "head.weight"},
        // FCMAE sparse
        {"encoder.downsample_layers.0.0.weight", "downsample_layers.0.0.weight"},
        {"encoder.downsample_layers.1.0.ln.weight", "downsample_layers.1.0.weight"},
        {"encoder.downsample_layers.1.1.kernel", "downsample_layers.1.1.weight"},
        {"encoder.stages.0.0.dwconv.kernel", "stages.0.0.dwconv.weight"},
        {"encoder.stages.0.0.norm.ln.bias", "stages.0.0.norm.bias"},
        {"encoder.stages.0.0.pwconv1.linear.weight", "stages.0.0.pwconv1.weight"},
        {"encoder.stages.0.0.grn.gamma", "stages.0.0.grn.gamma"},
        {"model.encoder.stages.3.2.pwconv2.linear.bias", "stages.3.2.pwconv2.bias"},
        // unknown keys are left alone
        {"mask_token", "mask_token"},
        {"decoder.0.dwconv.weight", "decoder.0.dwconv.weight"},
    };
    for (const auto& [in, out] : cases) {
        INFO(in);
        CHECK(canonical_name(in) == out);
    }
}

TEST_CASE("weights: save then load into fresh tensors is exact; file is in torch layout")
{
    temp_dir dir;
    const std::string p = dir / "toy.safetensors";
    toy_model src(7), dst(0);
    save_weights(src.params, p, {{"variant", "toy"}});

    st_file f = read_safetensors(p);
    CHECK(f.metadata.at("variant") == "toy");
    REQUIRE(f.tensors.size() == src.params.size());
    CHECK(f.tensors.at("stages.0.0.dwconv.weight").shape == shape_t{4, 1, 7, 7});
    CHECK(f.tensors.at("stages.0.0.grn.gamma").shape == shape_t{1, 1, 1, 16});
    CHECK(f.tensors.at("downsample_layers.1.1.weight").shape == shape_t{8, 4, 2, 2});
    // Torch layout: dwconv torch[c][0][kh][kw] equals internal[kh][kw][0][c].
    auto dw = to_float(f.tensors.at("stages.0.0.dwconv.weight"));
    const auto& dwi = src.value("stages.0.0.dwconv.weight");
    CHECK(dw[static_cast<std::size_t>(3 * 49 + 2 * 7 + 5)] == dwi[(2 * 7 + 5) * 4 + 3]);
    auto pw2 = to_float(f.tensors.at("stages.0.0.pwconv2.weight"));  // torch (C,D), internal (D,C)
    CHECK(pw2[static_cast<std::size_t>(1 * 16 + 9)] == src.value("stages.0.0.pwconv2.weight")[9 * 4 + 1]);

    load_report r = load_weights(dst.params, p);
    CHECK(r.loaded.size() == src.params.size());
    CHECK(r.missing.empty());
    CHECK(r.unexpected.empty());
    CHECK(r.skipped.empty());
    require_equal(src, dst);

    // Double-precision params load the same values.
    toy_model src2(7);
    std::deque<tensor<double>> dstore;
    param_list<double> dparams;
    for (const auto& q : src2.params) {
        dstore.emplace_back(q.value->shape(), 0.0);
        tensor<double>& v = dstore.back();
        dstore.emplace_back();
        add_param(dparams, q.name, v, dstore.back(), q.torch_shape, q.perm);
    }
    load_weights(dparams, p);
    for (std::size_t i = 0; i < dparams.size(); ++i)
        CHECK(test::max_abs_diff(*dparams[i].value, *src2.params[i].value) == 0);
}

TEST_CASE("weights: timm names and shapes load identically")
{
    temp_dir dir;
    const std::string p = dir / "timm.safetensors";
    toy_model src(11), dst(0);
    export_as(src, p, [](const std::string& n, const shape_t& s) -> std::pair<std::string, shape_t> {
        const std::map<std::string, std::pair<std::string, shape_t>> table = {
            {"downsample_layers.0.0.weight", {"stem.0.weight", s}},
            {"downsample_layers.0.0.bias", {"stem.0.bias", s}},
            {"downsample_layers.0.1.weight", {"stem.1.weight", s}},
            {"downsample_layers.0.1.bias", {"stem.1.bias", s}},
            {"stages.0.0.dwconv.weight", {"stages.0.blocks.0.conv_dw.weight", s}},
            {"stages.0.0.dwconv.bias", {"stages.0.blocks.0.conv_dw.bias", s}},
            {"stages.0.0.norm.weight", {"stages.0.blocks.0.norm.weight", s}},
            {"stages.0.0.norm.bias", {"stages.0.blocks.0.norm.bias", s}},
            {"stages.0.0.pwconv1.weight", {"stages.0.blocks.0.mlp.fc1.weight", {16, 4, 1, 1}}},  // conv_mlp (atto..nano)
            {"stages.0.0.pwconv1.bias", {"stages.0.blocks.0.mlp.fc1.bias", s}},
            {"stages.0.0.grn.gamma", {"stages.0.blocks.0.mlp.grn.weight", {16}}},
            {"stages.0.0.grn.beta", {"stages.0.blocks.0.mlp.grn.bias", {16}}},
            {"stages.0.0.pwconv2.weight", {"stages.0.blocks.0.mlp.fc2.weight", {4, 16, 1, 1}}},
            {"stages.0.0.pwconv2.bias", {"stages.0.blocks.0.mlp.fc2.bias", s}},
            {"downsample_layers.1.0.weight", {"stages.1.downsample.0.weight", s}},
            {"downsample_layers.1.0.bias", {"stages.1.downsample.0.bias", s}},
            {"downsample_layers.1.1.weight", {"stages.1.downsample.1.weight", s}},
            {"downsample_layers.1.1.bias", {"stages.1.downsample.1.bias", s}},
            {"norm.weight", {"head.norm.weight", s}},
            {"norm.bias", {"head.norm.bias", s}},
            {"head.weight", {"head.fc.weight", s}},
            {"head.bias", {"head.fc.bias", s}},
        };
        return table.at(n);
    });
    load_report r = load_weights(dst.params, p);
    CHECK(r.loaded.size() == src.params.size());
    require_equal(src, dst);
}

TEST_CASE("weights: HF names load identically (with model. wrapper)")
{
    temp_dir dir;
    const std::string p = dir / "hf.safetensors";
    toy_model src(13), dst(0);
    export_as(src, p, [](const std::string& n, const shape_t& s) -> std::pair<std::string, shape_t> {
        std::string k;
        auto rep = [&](const std::string& from, const std::string& to) {
            if (n.rfind(from, 0) == 0) { k = to + n.substr(from.size()); return true; }
            return false;
        };
        (void)(rep("downsample_layers.0.0.", "convnextv2.embeddings.patch_embeddings.") ||
            rep("downsample_layers.0.1.", "convnextv2.embeddings.layernorm.") ||
            rep("downsample_layers.1.", "convnextv2.encoder.stages.1.downsampling_layer.") ||
            rep("stages.0.0.norm.", "convnextv2.encoder.stages.0.layers.0.layernorm.") ||
            rep("stages.0.0.grn.gamma", "convnextv2.encoder.stages.0.layers.0.grn.weight") ||
            rep("stages.0.0.grn.beta", "convnextv2.encoder.stages.0.layers.0.grn.bias") ||
            rep("stages.0.0.", "convnextv2.encoder.stages.0.layers.0.") || rep("norm.", "convnextv2.layernorm.") ||
            rep("head.", "classifier."));
        REQUIRE(!k.empty());
        return {"model." + k, s};
    });
    load_report r = load_weights(dst.params, p);
    CHECK(r.loaded.size() == src.params.size());
    CHECK(r.unexpected.empty());
    require_equal(src, dst);
}

TEST_CASE("weights: FCMAE sparse checkpoint (kernel re-layout, ln/linear, (1,C) biases, decoder dropped)")
{
    // Hand-computed re-layout for one 2x2 kernel (k^2=4, in=1, out=1): W[kh][kw] = kernel[kw*2 + kh].
    {
        temp_dir dir;
        const std::string p = dir / "one.safetensors";
        const float ker[4] = {1, 2, 3, 4};
        write_safetensors(p, {{"encoder.x.kernel", {4, 1, 1}, ker}});
        tensor<float> w({1, 1, 2, 2}), g;
        param_list<float> pl;
        add_param(pl, "x.weight", w, g);
        load_weights(pl, p);
        CHECK(std::vector<float>(w.begin(), w.end()) == std::vector<float>{1, 3, 2, 4});
    }

    temp_dir dir;
    const std::string p = dir / "fcmae.safetensors";
    toy_model src(17), dst(0);
    std::deque<std::vector<float>> bufs;
    std::vector<named_tensor> out;
    auto put = [&](const std::string& key, const shape_t& shape, std::vector<float> data) {
        bufs.push_back(std::move(data));
        out.push_back({key, shape, bufs.back().data()});
    };
    // MinkowskiEngine kernel (k^2, in, out) with kernel[kw*k+kh][i][o] = W[o][i][kh][kw].
    auto to_kernel = [&](const std::string& name, index_t O, index_t I, index_t k) {
        auto w = src.torch_data(name);
        std::vector<float> ker(w.size());
        for (index_t o = 0; o < O; ++o)
            for (index_t i = 0; i < I; ++i)
                for (index_t kh = 0; kh < k; ++kh)
                    for (index_t kw = 0; kw < k; ++kw)
                        ker[static_cast<std::size_t>((kw * k + kh) * I * O + i * O + o)] = w[static_cast<std::size_t>(((o * I + i) * k + kh) * k + kw)];
        return ker;
    };
    put("encoder.downsample_layers.0.0.weight", {4, 3, 4, 4}, src.torch_data("downsample_layers.0.0.weight"));  // dense stem
    put("encoder.downsample_layers.0.0.bias", {4}, src.torch_data("downsample_layers.0.0.bias"));
    put("encoder.downsample_layers.0.1.weight", {4}, src.torch_data("downsample_layers.0.1.weight"));
    put("encoder.downsample_layers.0.1.bias", {4}, src.torch_data("downsample_layers.0.1.bias"));
    put("encoder.stages.0.0.dwconv.kernel", {49, 4}, to_kernel("stages.0.0.dwconv.weight", 4, 1, 7));  // depthwise (k^2, C)
    put("encoder.stages.0.0.dwconv.bias", {1, 4}, src.torch_data("stages.0.0.dwconv.bias"));
    put("encoder.stages.0.0.norm.ln.weight", {4}, src.torch_data("stages.0.0.norm.weight"));
    put("encoder.stages.0.0.norm.ln.bias", {4}, src.torch_data("stages.0.0.norm.bias"));
    put("encoder.stages.0.0.pwconv1.linear.weight", {16, 4}, src.torch_data("stages.0.0.pwconv1.weight"));
    put("encoder.stages.0.0.pwconv1.linear.bias", {16}, src.torch_data("stages.0.0.pwconv1.bias"));
    put("encoder.stages.0.0.grn.gamma", {1, 16}, src.torch_data("stages.0.0.grn.gamma"));
    put("encoder.stages.0.0.grn.beta", {1, 16}, src.torch_data("stages.0.0.grn.beta"));
    put("encoder.stages.0.0.pwconv2.linear.weight", {4, 16}, src.torch_data("stages.0.0.pwconv2.weight"));
    put("encoder.stages.0.0.pwconv2.linear.bias", {4}, src.torch_data("stages.0.0.pwconv2.bias"));
    put("encoder.downsample_layers.1.0.ln.weight", {4}, src.torch_data("downsample_layers.1.0.weight"));
    put("encoder.downsample_layers.1.0.ln.bias", {4}, src.torch_data("downsample_layers.1.0.bias"));
    put("encoder.downsample_layers.1.1.kernel", {4, 4, 8}, to_kernel("downsample_layers.1.1.weight", 8, 4, 2));
    put("encoder.downsample_layers.1.1.bias", {1, 8}, src.torch_data("downsample_layers.1.1.bias"));
    put("mask_token", {1, 3, 1, 1}, {0, 0, 0});
    put("proj.weight", {3, 8, 1, 1}, std::vector<float>(24, 0.f));
    put("decoder.0.dwconv.weight", {3, 1, 7, 7}, std::vector<float>(147, 0.f));
    put("pred.bias", {2}, {0, 0});
    write_safetensors(p, out);

    // No norm/head in the file: strict by default.
    toy_model before(0);
    CHECK_THROWS_WITH(load_weights(dst.params, p), Catch::Contains("missing key 'head.weight'") && Catch::Contains("missing key 'norm.bias'"));
    require_equal(before, dst);  // untouched

    load_options opt;
    opt.allow_missing_head = true;
    load_report r = load_weights(dst.params, p, opt);
    CHECK(r.loaded.size() == src.params.size() - 4);
    CHECK(r.missing == std::vector<std::string>{"norm.weight", "norm.bias", "head.weight", "head.bias"});
    CHECK(r.unexpected.empty());
    CHECK(r.skipped.size() == 4);  // decoder, mask_token, proj, pred
    require_equal(src, dst, /*with_head=*/false);
    CHECK(test::max_abs_diff(dst.value("head.weight"), before.value("head.weight")) == 0);
}

TEST_CASE("weights: strict mode reports every problem in one error and modifies nothing")
{
    temp_dir dir;
    const std::string p = dir / "bad.safetensors";
    toy_model src(19), dst(23);
    const toy_model dst_before(23);
    export_as(src, p, [](const std::string& n, const shape_t& s) -> std::pair<std::string, shape_t> {
        if (n == "stages.0.0.norm.bias") return {"", s};                                 // missing
        if (n == "stages.0.0.pwconv1.bias") return {"stages.0.0.pwconv1.bias", {2, 8}};  // wrong shape, same numel
        if (n == "stages.0.0.dwconv.weight") return {"stages.0.0.dwconv.weight", {4, 7, 7, 1}};  // permuted shape
        return {n, s};
    });
    // Add an unexpected key by rewriting the file with one more tensor.
    {
        st_file f = read_safetensors(p);
        std::deque<std::vector<float>> bufs;
        std::vector<named_tensor> out;
        for (const auto& [k, t] : f.tensors) {
            bufs.push_back(to_float(t));
            out.push_back({k, t.shape, bufs.back().data()});
        }
        const float extra[3] = {1, 2, 3};
        out.push_back({"stages.0.0.gamma", {3}, extra});
        write_safetensors(p, out);
    }

    std::string msg;
    try {
        load_weights(dst.params, p);
    } catch (const convnextv2::error& e) {
        msg = e.what();
    }
    INFO(msg);
    CHECK_THAT(msg, Catch::StartsWith(p + ": cannot load weights (4 problems)"));
    CHECK_THAT(msg, Catch::Contains("missing key 'stages.0.0.norm.bias' (expected shape (4,))"));
    CHECK_THAT(msg, Catch::Contains("unexpected key 'stages.0.0.gamma' (shape (3,), F32)"));
    CHECK_THAT(msg, Catch::Contains("shape mismatch for 'stages.0.0.pwconv1.bias': expected (16,), found (2, 8)"));
    CHECK_THAT(msg, Catch::Contains("shape mismatch for 'stages.0.0.dwconv.weight': expected (4, 1, 7, 7), found (4, 7, 7, 1)"));
    require_equal(dst_before, dst);

    // Non-strict: missing/unexpected are reported, not thrown; shape mismatches still throw.
    load_options lax;
    lax.strict = false;
    CHECK_THROWS_WITH(load_weights(dst.params, p, lax), Catch::Contains("(2 problems)") && !Catch::Contains("missing"));
    require_equal(dst_before, dst);
}

TEST_CASE("weights: non-strict load reports missing and unexpected keys")
{
    temp_dir dir;
    const std::string p = dir / "partial.safetensors";
    toy_model src(29), dst(31);
    const toy_model dst_before(31);
    export_as(src, p, [](const std::string& n, const shape_t& s) -> std::pair<std::string, shape_t> {
        if (n == "norm.weight") return {"", s};
        if (n == "head.bias") return {"head.extra", s};
        return {n, s};
    });
    load_options lax;
    lax.strict = false;
    load_report r = load_weights(dst.params, p, lax);
    CHECK(r.missing == std::vector<std::string>{"norm.weight", "head.bias"});
    CHECK(r.unexpected == std::vector<std::string>{"head.extra"});
    CHECK(r.loaded.size() == src.params.size() - 2);
    CHECK(test::max_abs_diff(dst.value("norm.weight"), dst_before.value("norm.weight")) == 0);
    CHECK(test::max_abs_diff(dst.value("head.weight"), src.value("head.weight")) == 0);
}

TEST_CASE("weights: skip_head leaves a differently sized head as-is")
{
    temp_dir dir;
    const std::string p = dir / "k1000.safetensors";
    toy_model src(37, /*classes=*/9), dst(41, /*classes=*/5);
    const toy_model dst_before(41, 5);
    save_weights(src.params, p);

    CHECK_THROWS_WITH(load_weights(dst.params, p), Catch::Contains("shape mismatch for 'head.weight': expected (5, 8), found (9, 8)") &&
                                                       Catch::Contains("shape mismatch for 'head.bias': expected (5,), found (9,)"));
    load_options opt;
    opt.skip_head = true;
    load_report r = load_weights(dst.params, p, opt);
    CHECK(r.skipped == std::vector<std::string>{"head.weight", "head.bias"});
    CHECK(r.loaded.size() == src.params.size() - 2);
    CHECK(test::max_abs_diff(dst.value("head.weight"), dst_before.value("head.weight")) == 0);
    CHECK(test::max_abs_diff(dst.value("norm.weight"), src.value("norm.weight")) == 0);  // right shape: loaded
    CHECK(test::max_abs_diff(dst.value("stages.0.0.dwconv.weight"), src.value("stages.0.0.dwconv.weight")) == 0);

    // A headless file (num_classes 0 export) also loads with skip_head.
    const std::string q = dir / "headless.safetensors";
    export_as(src, q, [](const std::string& n, const shape_t& s) -> std::pair<std::string, shape_t> {
        return {n.rfind("head.", 0) == 0 ? "" : n, s};
    });
    r = load_weights(dst.params, q, opt);
    CHECK(r.skipped == std::vector<std::string>{"head.weight", "head.bias"});
    CHECK(r.missing.empty());
}

TEST_CASE("weights: F16/BF16 files, unsupported dtypes and unreadable paths")
{
    temp_dir dir;
    // Hand-made F16 file for a 1-parameter list: values 1.0, -2.5, 65504.
    const std::string header = R"({"head.bias":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}})";
    std::string bytes(8, '\0');
    bytes[0] = static_cast<char>(header.size());
    bytes += header;
    bytes += std::string("\x00\x3C\x00\xC1\xFF\x7B", 6);
    const std::string p = dir / "f16.safetensors";
    {
        std::FILE* f = std::fopen(p.c_str(), "wb");
        std::fwrite(bytes.data(), 1, bytes.size(), f);
        std::fclose(f);
    }
    tensor<float> b({3}), g;
    param_list<float> pl;
    add_param(pl, "head.bias", b, g);
    load_weights(pl, p);
    CHECK(std::vector<float>(b.begin(), b.end()) == std::vector<float>{1.0f, -2.5f, 65504.0f});

    // Same file with an integer dtype: error names dtype and key.
    std::string ints = bytes;
    ints.replace(ints.find("F16"), 3, "I16");
    {
        std::FILE* f = std::fopen(p.c_str(), "wb");
        std::fwrite(ints.data(), 1, ints.size(), f);
        std::fclose(f);
    }
    CHECK_THROWS_WITH(load_weights(pl, p), Catch::Contains("unsupported dtype I16 for 'head.bias'"));

    CHECK_THROWS_WITH(load_weights(pl, dir / "missing.safetensors"), Catch::Contains(dir / "missing.safetensors") && Catch::Contains("cannot open"));
    CHECK_THROWS_WITH(save_weights(pl, "/proc/x/y.safetensors"), Catch::Contains("/proc/x/y.safetensors"));
}

TEST_CASE("weights: param list errors are caught before touching anything")
{
    tensor<float> a({4}), ga, b({4}), gb;
    param_list<float> pl;
    add_param(pl, "stages.0.0.norm.weight", a, ga);
    add_param(pl, "stages.0.blocks.0.norm.weight", b, gb);  // same canonical name
    CHECK_THROWS_WITH(load_weights(pl, "/nonexistent.safetensors"), Catch::Contains("same name"));
    param_list<float> bad;
    add_param(bad, "x", a, ga, shape_t{5});
    CHECK_THROWS_WITH(save_weights(bad, "/tmp/never.safetensors"), Catch::Contains("element count"));
}
