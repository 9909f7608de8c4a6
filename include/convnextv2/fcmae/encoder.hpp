// SPDX-License-Identifier: MIT
// The FCMAE encoder (SPEC §3.1, §3.4): ConvNeXt V2 without final norm and head, seeing only the
// visible patches. Two modes, one type family:
//   fcmae_encoder<T, sparse_sites>  real sparse computation: the dense stem runs on the full image,
//       its visible sites are gathered into a [rows, C] matrix, and every block/downsample works on
//       the active sites of its stage only (neighbour tables for the 7×7 taps, parent tables for
//       the 2×2 downsample); the output is densified to the full (N, g, g, d3) grid, origin 0,
//       zeros at masked cells (never the shrunken MinkowskiEngine dense(), SPEC §3.4 pitfall);
//   fcmae_encoder<T, masked_sites>  the dense-masked emulation: same numbers, dense maps.
// Parameter names are "encoder." + the official dense names, so export is a prefix strip.
#pragma once
#include "../models/convnextv2.hpp"
#include "mask.hpp"

#include <array>

namespace convnextv2 {

namespace detail {
template <class L, class = void>
struct has_bind_sites : std::false_type {};
template <class L>
struct has_bind_sites<L, std::void_t<decltype(std::declval<L&>().bind_sites(std::declval<const active_sites*>()))>>
    : std::true_type {};
template <class L, class = void>
struct has_bind_keep : std::false_type {};
template <class L>
struct has_bind_keep<L, std::void_t<decltype(std::declval<L&>().bind_keep(nullptr))>> : std::true_type {};
} // namespace detail

template <class T, class Mode>
using fcmae_encoder_body = sequential<stage<T, Mode>, downsample<T, Mode>, stage<T, Mode>, downsample<T, Mode>, stage<T, Mode>,
                                      downsample<T, Mode>, stage<T, Mode>>;

template <class T, class Mode = sparse_sites>
class fcmae_encoder {
    static_assert(std::is_same_v<Mode, sparse_sites> || std::is_same_v<Mode, masked_sites>,
                  "fcmae_encoder<T, Mode>: Mode must be sparse_sites (real sparse) or masked_sites (dense emulation)");

public:
    using scalar_type = T;
    static constexpr bool sparse = std::is_same_v<Mode, sparse_sites>;

    fcmae_encoder() = default;
    fcmae_encoder(const fcmae_encoder&) = delete;
    fcmae_encoder& operator=(const fcmae_encoder&) = delete;

    // Builds the layers of `cfg` (depths, dims, in_chans, stem_kernel; num_classes is ignored) and
    // appends their parameters to `out` under `prefix` ("encoder").
    void build(const model_config& cfg, param_list<T>& out, const std::string& prefix = "encoder")
    {
        CONVNEXTV2_CHECK(cfg.depths.size() == 4 && cfg.dims.size() == 4, "fcmae encoder '", cfg.name, "': depths and dims need 4 entries each");
        cfg_ = cfg;
        const auto& d = cfg.dims;
        stem_ = stem<T>(d[0], cfg.stem_kernel);
        auto make_stage = [&](std::size_t i) {
            std::vector<convnext_block<T, Mode>> blocks;
            for (int j = 0; j < cfg.depths[i]; ++j) blocks.emplace_back(d[i], 0.0);  // FCMAE: no drop path (SPEC §3.4)
            return stage<T, Mode>(std::move(blocks));
        };
        body_.template get<0>() = make_stage(0);
        body_.template get<1>() = downsample<T, Mode>(d[1]);
        body_.template get<2>() = make_stage(1);
        body_.template get<3>() = downsample<T, Mode>(d[2]);
        body_.template get<4>() = make_stage(2);
        body_.template get<5>() = downsample<T, Mode>(d[3]);
        body_.template get<6>() = make_stage(3);
        body_.names = {"stages.0", "downsample_layers.1", "stages.1", "downsample_layers.2", "stages.2", "downsample_layers.3", "stages.3"};
        const index_t s = cfg.total_stride();
        stem_.setup({1, s, s, cfg.in_chans});
        if constexpr (sparse)
            body_.setup({1, d[0]});
        else
            body_.setup({1, s / cfg.stem_kernel, s / cfg.stem_kernel, d[0]});
        stem_.collect_params(out, join_name(prefix, "downsample_layers.0"));
        body_.collect_params(out, prefix);
    }

    const model_config& config() const { return cfg_; }
    index_t patch_size() const { return cfg_.total_stride(); }
    index_t out_channels() const { return cfg_.dims[3]; }

    // Statistics scope of the sparse GRNs (per sample by default; batch = official MinkowskiGRN).
    void set_grn_scope(grn_scope s)
    {
        visit_all(body_, [&](auto& l) {
            if constexpr (std::is_same_v<std::decay_t<decltype(l)>, grn<T, sparse_sites>>) l.scope = s;
        });
    }

    // img (N, H, W, C) with H = W = g·patch; out (N, g, g, d3), exactly zero at masked cells.
    void forward(const tensor<T>& img, const fcmae_mask& mask, tensor<T>& out)
    {
        check_input(img.shape(), mask);
        const index_t N = img.dim(0), g = mask.g, C3 = cfg_.dims[3];
        stem_.forward(img, s0_);
        const index_t C0 = s0_.dim(3);
        if constexpr (sparse) {
            sites_[0] = visible_sites(mask, 8);
            for (std::size_t i = 1; i < 4; ++i) sites_[i] = downsample_sites(sites_[i - 1], 2);
            bind();
            x0_.resize({sites_[0].rows(), C0});
            gather_sites(s0_.data(), sites_[0], C0, x0_.data());
            body_.forward(x0_, rows3_);
            out.resize({N, g, g, C3});
            out.zero();
            scatter_add_sites(rows3_.data(), sites_[3], C3, out.data());
        } else {
            for (std::size_t i = 0; i < 4; ++i) keep_[i] = visible_weights<T>(mask, index_t{8} >> i);
            bind();
            x0_.resize_like(s0_);
            scale_sites(s0_.data(), keep_[0], C0, x0_.data());
            body_.forward(x0_, out);
        }
    }

    // Parameter gradients += those of Σ dout·out (the input image gets no gradient).
    void backward(const tensor<T>& dout)
    {
        const index_t C0 = s0_.dim(3), C3 = cfg_.dims[3];
        dx0_.resize_like(x0_);
        dx0_.zero();
        ds0_.resize_like(s0_);
        if constexpr (sparse) {
            drows3_.resize({sites_[3].rows(), C3});
            gather_sites(dout.data(), sites_[3], C3, drows3_.data());
            body_.backward(drows3_, &dx0_);
            ds0_.zero();
            scatter_add_sites(dx0_.data(), sites_[0], C0, ds0_.data());
        } else {
            body_.backward(dout, &dx0_);
            scale_sites(dx0_.data(), keep_[0], C0, ds0_.data());
        }
        stem_.backward(ds0_, nullptr);
    }

    // Active sites per stage of the last forward (sparse mode).
    const active_sites& sites(int stage) const { return sites_[static_cast<std::size_t>(stage)]; }

    void check_input(const shape_t& s, const fcmae_mask& mask) const
    {
        const index_t p = patch_size();
        CONVNEXTV2_CHECK(s.size() == 4 && s[3] == cfg_.in_chans && s[1] == s[2] && s[1] >= p && s[1] % p == 0, "fcmae encoder: input must be (N, H, W, ",
                         cfg_.in_chans, ") with square H = W a multiple of the patch size ", p, ", got ", to_string(s));
        CONVNEXTV2_CHECK(mask.N == s[0] && mask.g == s[1] / p && static_cast<index_t>(mask.masked.size()) == mask.N * mask.g * mask.g,
                         "fcmae encoder: mask is ", mask.N, " x ", mask.g, "x", mask.g, " but the input ", to_string(s), " needs ", s[0],
                         " x ", s[1] / p, "x", s[1] / p);
    }

private:
    // Body part k (stage or downsample) works at stage (k + 1) / 2.
    void bind()
    {
        index_t k = 0;
        body_.visit_parts([&](auto& part) {
            const std::size_t st = static_cast<std::size_t>((k + 1) / 2);
            visit_all(part, [&](auto& l) {
                using L = std::decay_t<decltype(l)>;
                if constexpr (sparse && detail::has_bind_sites<L>::value) l.bind_sites(&sites_[st]);
                if constexpr (!sparse && detail::has_bind_keep<L>::value) l.bind_keep(&keep_[st]);
            });
            ++k;
        });
    }

    static void scale_sites(const T* in, const std::vector<T>& keep, index_t C, T* out)
    {
        parallel_for(0, static_cast<index_t>(keep.size()), std::max<index_t>(1, 8192 / C), [&](index_t s0, index_t s1) {
            for (index_t s = s0; s < s1; ++s)
                for (index_t c = 0; c < C; ++c) out[s * C + c] = in[s * C + c] * keep[static_cast<std::size_t>(s)];
        });
    }

    model_config cfg_;
    stem<T> stem_;
    fcmae_encoder_body<T, Mode> body_;
    std::array<active_sites, 4> sites_;
    std::array<std::vector<T>, 4> keep_;
    tensor<T> s0_, x0_, rows3_, drows3_, dx0_, ds0_;
};

} // namespace convnextv2
