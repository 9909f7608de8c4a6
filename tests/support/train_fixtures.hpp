// Shared by the trainer tests (single process and MPI): a tiny synthetic dataset and a tiny recipe.
#pragma once
#include <convnextv2/data/dataset.hpp>
#include <convnextv2/io/recipe.hpp>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

namespace test {

using namespace convnextv2;

// Deterministic 32x32x1 images in 4 classes (a class-dependent stripe over noise). Counts how
// often each sample is decoded for training; puts a NaN pixel into sample 3 during epoch
// `nan_epoch` when that is >= 0 (seed = the recipe seed).
class synthetic_set : public dataset {
public:
    explicit synthetic_set(index_t n = 16, std::int64_t nan_epoch = -1, std::uint64_t seed = 0)
        : n_(n), nan_epoch_(nan_epoch), seed_(seed), seen_(static_cast<std::size_t>(n), 0) {}
    index_t size() const override { return n_; }
    index_t num_classes() const override { return 4; }
    shape_t sample_shape() const override { return {32, 32, 1}; }
    void get(index_t i, std::uint64_t es, bool train, float* out, int* label) const override
    {
        if (train) {
            std::lock_guard<std::mutex> lock(m_);
            ++seen_[static_cast<std::size_t>(i)];
        }
        *label = static_cast<int>(i % 4);
        counter_rng rng(static_cast<std::uint64_t>(i), train ? es : 0);
        for (index_t p = 0; p < 32 * 32; ++p) out[p] = static_cast<float>(rng.uniform(-1, 1) + 0.5 * (*label) * ((p / 32) % 4 == *label));
        if (nan_epoch_ >= 0 && train && es == epoch_seed(seed_, nan_epoch_) && i == 3) out[5] = NAN;
    }
    std::vector<std::int64_t> seen() const
    {
        std::lock_guard<std::mutex> lock(m_);
        return seen_;
    }
    void reset()
    {
        std::lock_guard<std::mutex> lock(m_);
        std::fill(seen_.begin(), seen_.end(), 0);
    }

private:
    index_t n_;
    std::int64_t nan_epoch_;
    std::uint64_t seed_;
    mutable std::mutex m_;
    mutable std::vector<std::int64_t> seen_;
};

// A 4-class custom variant (depths 1,1,1,1, dims 4,8,8,8) with drop path, layer decay and EMA on.
inline recipe tiny_recipe(const std::string& dir)
{
    recipe r;
    r.model = "tiny_test";
    r.depths = {1, 1, 1, 1};
    r.dims = {4, 8, 8, 8};
    r.num_classes = 4;
    r.in_chans = 1;
    r.image_resize = 32;
    r.stem_kernel = 4;
    r.dataset = "fashion_mnist";
    r.batch_size = 4;
    r.epoch_size = 3;
    r.lr = 5e-3;
    r.min_lr = 1e-5;
    r.warmup_epochs = 1;
    r.drop_path_rate = 0.2;
    r.label_smoothing = 0.1;
    r.head_init_scale = 1.0;
    r.layer_decay = 0.8;
    r.ema = true;
    r.ema_decay = 0.9;
    r.seed = 3;
    r.log_interval = 0;
    r.keep_checkpoint_max = 0;
    r.ckpt_save_dir = dir;
    return r;
}

// tiny_recipe's model for FCMAE pretraining: a 1x1 stem gives patch 8, so 32x32 images have a
// 4x4 mask grid (6 of 16 patches visible); no drop path, EMA or layer decay (as main_pretrain).
inline recipe tiny_fcmae_recipe(const std::string& dir)
{
    recipe r = tiny_recipe(dir);
    r.stem_kernel = 1;
    r.drop_path_rate = 0;
    r.layer_decay = 1.0;
    r.ema = false;
    r.lr = 2e-3;
    r.beta2 = 0.95;
    r.decoder_dim = 8;
    r.decoder_depth = 1;
    r.recon_interval = 2;
    r.recon_images = 3;
    return r;
}

} // namespace test
