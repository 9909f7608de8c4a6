// SPDX-License-Identifier: MIT
// fcmae_model: the fully convolutional masked autoencoder of ConvNeXt V2 (SPEC §3; official
// models/fcmae.py). encoder (sparse or dense-masked) -> proj 1×1 (d3 -> D) -> masked cells
// replaced by the learned mask token -> decoder_depth dense ConvNeXt V2 blocks (D) -> pred 1×1
// (D -> p²·C) -> norm-pix MSE over the masked patches.
//
// Names follow the official checkpoint: "encoder.<dense names>", "proj.*", "mask_token",
// "decoder.<i>.*", "pred.*" (proj/pred registered with the Conv2d shape (out, in, 1, 1)).
// Initialisation (SPEC §3.8 recommendation, not the official double init): every conv/linear
// weight N(0, 0.02) (bias 0), LayerNorm 1/0, GRN 0, mask token N(0, 0.02).
#pragma once
#include "encoder.hpp"
#include "norm_pix_loss.hpp"

namespace convnextv2 {

struct fcmae_config {
    model_config encoder;       // depths, dims, in_chans, stem_kernel (num_classes unused)
    index_t decoder_dim = 512;
    int decoder_depth = 1;
    double mask_ratio = 0.6;
    bool norm_pix_loss = true;
    grn_scope encoder_grn = grn_scope::per_sample;

    index_t patch_size() const { return encoder.total_stride(); }
    index_t patch_dim() const { return patch_size() * patch_size() * encoder.in_chans; }
};

template <class T = float, class Mode = sparse_sites>
class fcmae_model {
public:
    using scalar_type = T;

    explicit fcmae_model(fcmae_config cfg, std::uint64_t seed = 0) : cfg_(std::move(cfg))
    {
        CONVNEXTV2_CHECK(cfg_.decoder_dim >= 1 && cfg_.decoder_depth >= 0, "fcmae: decoder_dim must be >= 1 and decoder_depth >= 0");
        CONVNEXTV2_CHECK(cfg_.mask_ratio >= 0 && cfg_.mask_ratio < 1, "fcmae: mask_ratio must be in [0, 1), got ", cfg_.mask_ratio);
        constexpr bool sparse = std::is_same_v<Mode, sparse_sites>;
        CONVNEXTV2_CHECK(sparse || cfg_.encoder_grn == grn_scope::per_sample,
                         "fcmae: the batch-global GRN (sparse_grn 'batch') exists only in the sparse encoder; the dense-masked "
                         "emulation computes per-sample GRN");
        encoder_.build(cfg_.encoder, params_);
        encoder_.set_grn_scope(cfg_.encoder_grn);
        const index_t D = cfg_.decoder_dim, C3 = cfg_.encoder.dims[3], P = cfg_.patch_dim();
        proj_ = linear<T>(D);
        proj_.setup({1, C3});
        add_param(params_, "proj.weight", proj_.weight, proj_.weight_grad, {D, C3, 1, 1});
        add_param(params_, "proj.bias", proj_.bias, proj_.bias_grad);
        mask_token_.resize({D});
        mask_token_.zero();
        add_param(params_, "mask_token", mask_token_, mask_token_grad_, {1, D, 1, 1});
        std::vector<convnext_block<T>> blocks;
        for (int i = 0; i < cfg_.decoder_depth; ++i) blocks.emplace_back(D, 0.0);
        decoder_ = stage<T>(std::move(blocks));
        decoder_.setup({1, 1, 1, D});
        decoder_.collect_params(params_, "decoder");
        pred_ = linear<T>(P);
        pred_.setup({1, D});
        add_param(params_, "pred.weight", pred_.weight, pred_.weight_grad, {P, D, 1, 1});
        add_param(params_, "pred.bias", pred_.bias, pred_.bias_grad);
        init_weights(seed);
    }
    fcmae_model(const fcmae_model&) = delete;
    fcmae_model& operator=(const fcmae_model&) = delete;

    const fcmae_config& config() const { return cfg_; }
    param_list<T>& params() { return params_; }
    fcmae_encoder<T, Mode>& encoder() { return encoder_; }
    index_t num_params() const { return count_params(params_); }
    void zero_grad() { zero_grads(params_); }

    void init_weights(std::uint64_t seed)
    {
        init_conv_linear_weights(params_, seed);
        counter_rng rng(seed, std::hash<std::string>{}("mask_token"));
        for (auto& v : mask_token_) v = static_cast<T>(rng.normal() * 0.02);
    }

    // The mask for a batch of N images of side `side`: a pure function of (seed, key).
    fcmae_mask make_mask(index_t N, index_t side, std::uint64_t seed, std::uint64_t key) const
    {
        CONVNEXTV2_CHECK(side % cfg_.patch_size() == 0, "fcmae: image side ", side, " is not a multiple of the patch size ", cfg_.patch_size());
        return random_fcmae_mask(N, side / cfg_.patch_size(), cfg_.mask_ratio, seed, key);
    }

    // Forward pass and loss for images (N, H, W, C) (already normalised) and a mask; caches what
    // backward() needs.
    double forward(const tensor<T>& img, const fcmae_mask& mask)
    {
        encoder_.forward(img, mask, enc_);
        const index_t N = img.dim(0), g = mask.g, D = cfg_.decoder_dim, p = cfg_.patch_size(), C = cfg_.encoder.in_chans;
        const index_t P = cfg_.patch_dim(), L = N * g * g;
        mask_ = mask;
        proj_.forward(enc_, z0_);
        z_.resize_like(z0_);
        for (index_t l = 0; l < L; ++l) {
            const bool m = mask.masked[static_cast<std::size_t>(l)] != 0;
            for (index_t c = 0; c < D; ++c) z_[l * D + c] = m ? mask_token_[c] : z0_[l * D + c];
        }
        decoder_.forward(z_, zd_);
        pred_.forward(zd_, pred_out_);
        target_.resize({L, P});
        kernels::patchify(img.data(), N, g, p, C, target_.data());
        patch_mean_.assign(static_cast<std::size_t>(L), 0.0);
        patch_scale_.assign(static_cast<std::size_t>(L), 1.0);
        if (cfg_.norm_pix_loss) kernels::norm_pix(target_.data(), L, P, patch_mean_.data(), patch_scale_.data());
        dpred_.resize({N, g, g, P});
        loss_ = kernels::masked_mse(pred_out_.data(), target_.data(), mask.masked.data(), L, P, dpred_.data());
        return loss_;
    }

    // Parameter gradients += scale · ∂loss/∂θ of the last forward (scale: e.g. 1/accumulation steps).
    void backward(double scale = 1.0)
    {
        const index_t D = cfg_.decoder_dim, L = dpred_.size() / cfg_.patch_dim();
        if (scale != 1.0)
            for (auto& v : dpred_) v = static_cast<T>(v * scale);
        dzd_.resize_like(zd_);
        dzd_.zero();
        pred_.backward(dpred_, &dzd_);
        dz_.resize_like(z_);
        dz_.zero();
        decoder_.backward(dzd_, &dz_);
        // z = proj(e) at visible cells, the mask token at masked ones.
        for (index_t l = 0; l < L; ++l) {
            if (!mask_.masked[static_cast<std::size_t>(l)]) continue;
            for (index_t c = 0; c < D; ++c) {
                mask_token_grad_[c] += dz_[l * D + c];
                dz_[l * D + c] = T(0);
            }
        }
        denc_.resize_like(enc_);
        denc_.zero();
        proj_.backward(dz_, &denc_);
        encoder_.backward(denc_);
    }

    double loss() const { return loss_; }
    // After forward(): predictions (N, g, g, P) in norm-pix units, encoder output (N, g, g, d3).
    const tensor<T>& prediction() const { return pred_out_; }
    const tensor<T>& encoder_output() const { return enc_; }

    // After forward(): the predicted image (N, H, W, C) in the input's units (per-patch statistics
    // undone when norm_pix_loss is on); visible patches show the input when paste_visible.
    void reconstruction(const tensor<T>& img, tensor<T>& out, bool paste_visible = true) const
    {
        const index_t N = img.dim(0), g = mask_.g, p = cfg_.patch_size(), C = cfg_.encoder.in_chans, P = cfg_.patch_dim();
        const index_t L = N * g * g;
        tensor<T> rows({L, P}), orig({L, P});
        kernels::patchify(img.data(), N, g, p, C, orig.data());
        for (index_t l = 0; l < L; ++l)
            for (index_t k = 0; k < P; ++k) {
                const bool use_orig = paste_visible && !mask_.masked[static_cast<std::size_t>(l)];
                rows[l * P + k] = use_orig ? orig[l * P + k]
                                           : static_cast<T>(static_cast<double>(pred_out_[l * P + k]) * patch_scale_[static_cast<std::size_t>(l)] +
                                                            patch_mean_[static_cast<std::size_t>(l)]);
            }
        out.resize(img.shape());
        kernels::unpatchify(rows.data(), N, g, p, C, out.data());
    }

    // Encoder weights in the official dense layout ("encoder." stripped), for fine-tuning.
    param_list<T> encoder_params()
    {
        param_list<T> out;
        for (auto& p : params_)
            if (p.name.rfind("encoder.", 0) == 0) {
                out.push_back(p);
                out.back().name = p.name.substr(8);
            }
        return out;
    }

private:
    fcmae_config cfg_;
    param_list<T> params_;
    fcmae_encoder<T, Mode> encoder_;
    linear<T> proj_, pred_;
    tensor<T> mask_token_, mask_token_grad_;
    stage<T> decoder_;
    fcmae_mask mask_;
    tensor<T> enc_, z0_, z_, zd_, pred_out_, target_, dpred_, dzd_, dz_, denc_;
    std::vector<double> patch_mean_, patch_scale_;
    double loss_ = 0;
};

} // namespace convnextv2
