// SPDX-License-Identifier: MIT
// ConvNeXt V2 as a composed type (SPEC §1.1, §1.3; mirrors facebookresearch/ConvNeXt-V2
// models/convnextv2.py). The layer sequence is a type; depths, dims and drop-path rates are
// runtime values, so one block type serves all eight variants and every stage:
//
//   block      = residual< sequential<dwconv7x7, layer_norm, linear_gelu(4C), grn, linear(C)>, drop_path >
//                (linear_gelu = pwconv1 and its GELU fused into one layer; in the dense model the four
//                from pwconv1 to pwconv2 are one layer, inverted_bottleneck; same parameters and numbers)
//   stem       = sequential< patch_conv(k4), layer_norm >          "downsample_layers.0"
//   downsample = sequential< layer_norm, patch_conv(k2) >          "downsample_layers.i"
//   head       = sequential< global_avg_pool, layer_norm, linear > "norm", "head"
//   net        = sequential< stem, stage, downsample, stage, downsample, stage, downsample, stage, head >
//
// Parameter names are the official state-dict names, so weights load without renaming.
// The site mode (layers/site_mode.hpp) selects the dense model (default), the sparse encoder of
// FCMAE (sparse_sites: [rows, C] active-site matrices) or its dense-masked emulation
// (masked_sites: dense maps, masked sites held at zero by masked<> wrappers), all one type family.
#pragma once
#include "../compose/repeat.hpp"
#include "../compose/residual.hpp"
#include "../compose/sequential.hpp"
#include "../core/rng.hpp"
#include "../layers/depthwise_conv.hpp"
#include "../layers/drop_path.hpp"
#include "../layers/gelu.hpp"
#include "../layers/global_avg_pool.hpp"
#include "../layers/grn.hpp"
#include "../layers/inverted_bottleneck.hpp"
#include "../layers/layer_norm.hpp"
#include "../layers/linear.hpp"
#include "../layers/linear_gelu.hpp"
#include "../layers/masked.hpp"
#include "../layers/patch_conv.hpp"
#include "variants.hpp"

#include <cmath>

namespace convnextv2 {

// Dense-masked emulation of the sparse encoder (SPEC §3.4): dense maps, masked sites zeroed.
struct masked_sites {};

// The layer types of a block and a downsample in each mode. In the emulation only pwconv1's
// GELU output (so GRN statistics see zeros at masked sites), pwconv2 (the residual branch) and
// the downsample conv are masked: every other masked-site value is garbage that never leaks.
template <class T, class Mode>
struct block_types {
    using dwconv = depthwise_conv7x7<T, Mode>;
    using pw1 = linear_gelu<T>;
    using norm = grn<T, Mode>;
    using pw2 = linear<T>;
    using path = drop_path<T, Mode>;
    using down = patch_conv<T, Mode>;
};
template <class T>
struct block_types<T, masked_sites> {
    using dwconv = depthwise_conv7x7<T>;
    using pw1 = masked<linear_gelu<T>>;
    using norm = grn<T>;
    using pw2 = masked<linear<T>>;
    using path = drop_path<T>;
    using down = masked<patch_conv<T>>;
};

namespace detail {
template <class T, class Mode>
struct block_body_of {
    using B = block_types<T, Mode>;
    using type = sequential<typename B::dwconv, layer_norm<T>, typename B::pw1, typename B::norm, typename B::pw2>;
};
// Dense: pwconv1 → GELU → GRN → pwconv2 as one layer (layers/inverted_bottleneck.hpp: fewer passes
// over the 4C-wide tensors; same parameters and numbers).
template <class T>
struct block_body_of<T, dense_sites> {
    using type = sequential<typename block_types<T, dense_sites>::dwconv, layer_norm<T>, inverted_bottleneck<T>>;
};
} // namespace detail

template <class T, class Mode = dense_sites>
using block_body = typename detail::block_body_of<T, Mode>::type;

namespace detail {
template <class L>
L& unmasked(L& l) { return l; }
template <class L>
L& unmasked(masked<L>& l) { return l.inner; }
} // namespace detail

template <class T, class Mode = dense_sites>
struct convnext_block : residual<block_body<T, Mode>, typename block_types<T, Mode>::path> {
    convnext_block() = default;
    convnext_block(index_t dim, double drop_rate)
    {
        if constexpr (std::is_same_v<Mode, dense_sites>) {
            this->body.names = {"dwconv", "norm", ""};  // the bottleneck names pwconv1, grn, pwconv2
            this->body.template get<2>().expand.out_features = 4 * dim;
            this->body.template get<2>().project.proj.out_features = dim;
        } else {
            this->body.names = {"dwconv", "norm", "pwconv1", "grn", "pwconv2"};
            detail::unmasked(this->body.template get<2>()).out_features = 4 * dim;
            detail::unmasked(this->body.template get<4>()).out_features = dim;
        }
        this->branch.rate = drop_rate;
    }
};

template <class T, class Mode = dense_sites>
using stage = repeat<convnext_block<T, Mode>>;

template <class T>
struct stem : sequential<patch_conv<T>, layer_norm<T>> {
    stem() = default;
    stem(index_t dim, index_t kernel) { this->template get<0>() = patch_conv<T>(dim, kernel); }
};

template <class T, class Mode = dense_sites>
struct downsample : sequential<layer_norm<T>, typename block_types<T, Mode>::down> {
    downsample() = default;
    explicit downsample(index_t dim)
    {
        auto& conv = detail::unmasked(this->template get<1>());
        conv = std::decay_t<decltype(conv)>(dim, 2);
    }
};

template <class T>
struct head : sequential<global_avg_pool<T>, layer_norm<T>, linear<T>> {
    head() = default;
    explicit head(index_t num_classes)
    {
        this->names = {"pool", "norm", "head"};
        this->template get<2>().out_features = num_classes;
    }
};

template <class T>
using convnextv2_net = sequential<stem<T>, stage<T>, downsample<T>, stage<T>, downsample<T>, stage<T>, downsample<T>, stage<T>, head<T>>;

// SPEC §1.7: every conv/linear weight (a ".weight" of rank >= 2) ~ N(0, std) truncated at ±2
// (absolute, like timm, so in effect untruncated); each tensor draws from its own stream keyed by
// its name (independent of order). Other parameters keep their setup values (0, LN 1/0).
template <class T>
void init_conv_linear_weights(param_list<T>& params, std::uint64_t seed, double std = 0.02)
{
    for (auto& p : params) {
        const std::string& n = p.name;
        bool is_weight = n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0 && p.torch_shape.size() >= 2;
        if (!is_weight) continue;
        counter_rng rng(seed, std::hash<std::string>{}(n));
        for (auto& v : *p.value) v = static_cast<T>(rng.trunc_normal(std, 2.0));
    }
}

// The model: the composed net plus its configuration, initialisation and training switches.
template <class T = float>
class convnextv2_model {
public:
    using scalar_type = T;

    explicit convnextv2_model(model_config cfg, std::uint64_t seed = 0) : cfg_(std::move(cfg))
    {
        CONVNEXTV2_CHECK(cfg_.depths.size() == 4 && cfg_.dims.size() == 4, "model '", cfg_.name,
                         "': depths and dims need 4 entries each");
        CONVNEXTV2_CHECK(cfg_.num_classes >= 1 && cfg_.in_chans >= 1, "model '", cfg_.name, "': num_classes and in_chans must be >= 1");
        CONVNEXTV2_CHECK(cfg_.stem_kernel >= 1, "model '", cfg_.name, "': stem_kernel must be >= 1");
        build();
        init_weights(seed);
    }

    // Parameters point into the net: the model is neither copyable nor movable.
    convnextv2_model(const convnextv2_model&) = delete;
    convnextv2_model& operator=(const convnextv2_model&) = delete;

    const model_config& config() const { return cfg_; }

    // Input x: (N, H, W, in_chans) NHWC, H and W multiples of the total stride (32 by default).
    void forward(const tensor<T>& x, tensor<T>& logits)
    {
        check_input(x.shape());
        net_.forward(x, logits);
    }
    // Accumulates parameter gradients; *dx += dL/dx when given.
    void backward(const tensor<T>& dlogits, tensor<T>* dx = nullptr) { net_.backward(dlogits, dx); }

    // After forward(): the pooled, normalised features (N, dims[3]) (official forward_features).
    const tensor<T>& features() const { return net_.template get<8>().activation(1); }
    // After forward(): stage i output (N, H/(k·2^i), W/(k·2^i), dims[i]), strides 4/8/16/32.
    const tensor<T>& stage_output(int i) const { return net_.activation(static_cast<std::size_t>(2 * i + 1)); }

    param_list<T>& params() { return params_; }
    index_t num_params() const { return count_params(params_); }
    void zero_grad() { zero_grads(params_); }

    void set_training(bool training) { convnextv2::set_training(net_, training); training_ = training; }
    bool training() const { return training_; }
    // Drop-path decisions are a pure function of (seed, block, step, sample).
    void set_step(std::uint64_t step)
    {
        visit_all(net_, [&](auto& l) {
            if constexpr (std::is_same_v<std::decay_t<decltype(l)>, drop_path<T>>) l.set_step(step);
        });
    }
    void set_drop_path_seed(std::uint64_t seed)
    {
        std::uint64_t k = 0;
        visit_all(net_, [&](auto& l) {
            if constexpr (std::is_same_v<std::decay_t<decltype(l)>, drop_path<T>>) l.set_seed(seed, k++);
        });
    }

    // SPEC §1.7: conv/linear weights ~ N(0, 0.02) truncated at ±2 (absolute, like timm, so in
    // effect untruncated), biases 0, LayerNorm 1/0, GRN 0; head weight and bias × head_init_scale.
    // Each tensor draws from its own stream keyed by its name (independent of order).
    void init_weights(std::uint64_t seed)
    {
        init_conv_linear_weights(params_, seed);
        for (auto& p : params_) {
            const std::string& n = p.name;
            bool is_head = n.rfind("head.", 0) == 0;
            if (is_head && n == "head.bias") p.value->zero();
            if (is_head && cfg_.head_init_scale != 1.0)
                for (auto& v : *p.value) v = static_cast<T>(v * cfg_.head_init_scale);
        }
        set_drop_path_seed(seed);
    }

    convnextv2_net<T>& net() { return net_; }

    void check_input(const shape_t& s) const
    {
        const index_t st = cfg_.total_stride();
        CONVNEXTV2_CHECK(s.size() == 4, cfg_.name, ": input must be 4-D (N, H, W, C) channels-last, got ", to_string(s));
        CONVNEXTV2_CHECK(s[3] == cfg_.in_chans, cfg_.name, ": input has ", s[3], " channels, the model expects in_chans = ",
                         cfg_.in_chans, " (input shape ", to_string(s), ")");
        CONVNEXTV2_CHECK(s[0] >= 1 && s[1] >= st && s[2] >= st, cfg_.name, ": input height and width must be at least ", st,
                         " (the total stride), got ", to_string(s));
    }

private:
    void build()
    {
        const auto& d = cfg_.dims;
        index_t total = 0;
        for (int v : cfg_.depths) total += v;
        index_t block_index = 0;
        auto make_stage = [&](int i) {
            std::vector<convnext_block<T>> blocks;
            for (int j = 0; j < cfg_.depths[static_cast<std::size_t>(i)]; ++j, ++block_index) {
                double rate = total > 1 ? cfg_.drop_path_rate * static_cast<double>(block_index) / static_cast<double>(total - 1) : 0.0;
                blocks.emplace_back(d[static_cast<std::size_t>(i)], rate);
            }
            return stage<T>(std::move(blocks));
        };
        net_.template get<0>() = stem<T>(d[0], cfg_.stem_kernel);
        net_.template get<1>() = make_stage(0);
        net_.template get<2>() = downsample<T>(d[1]);
        net_.template get<3>() = make_stage(1);
        net_.template get<4>() = downsample<T>(d[2]);
        net_.template get<5>() = make_stage(2);
        net_.template get<6>() = downsample<T>(d[3]);
        net_.template get<7>() = make_stage(3);
        net_.template get<8>() = head<T>(cfg_.num_classes);
        net_.names = {"downsample_layers.0", "stages.0", "downsample_layers.1", "stages.1", "downsample_layers.2",
                      "stages.2",            "downsample_layers.3", "stages.3", ""};
        const index_t s = cfg_.total_stride();
        net_.setup({1, s, s, cfg_.in_chans});
        params_.clear();
        net_.collect_params(params_, "");
    }

    model_config cfg_;
    convnextv2_net<T> net_;
    param_list<T> params_;
    bool training_ = false;
};

// Multiply-accumulates per stage at an input of side `image_size` (conv + linear only, SPEC §2);
// a side that the strides do not divide shrinks as PyTorch's strided convs do (floor).
struct macs_report {
    std::array<double, 4> stage{};  // stage i includes its downsample (stage 0: the stem)
    double head = 0;
    double total() const { return stage[0] + stage[1] + stage[2] + stage[3] + head; }
};

inline macs_report count_macs(const model_config& c, index_t image_size)
{
    macs_report r;
    index_t side = image_size / c.stem_kernel;  // strided convs floor, as in PyTorch
    for (std::size_t i = 0; i < 4; ++i) {
        double C = static_cast<double>(c.dims[i]);
        double sites = static_cast<double>(side * side);
        if (i == 0)
            r.stage[0] += sites * C * static_cast<double>(c.in_chans * c.stem_kernel * c.stem_kernel);
        else
            r.stage[i] += sites * C * static_cast<double>(c.dims[i - 1]) * 4.0;
        r.stage[i] += static_cast<double>(c.depths[i]) * sites * (49.0 * C + 8.0 * C * C);
        side /= 2;
    }
    r.head = static_cast<double>(c.dims[3] * c.num_classes);
    return r;
}

} // namespace convnextv2
