// SPDX-License-Identifier: MIT
// The dataset interface the trainer sees, and batch_loader, which turns a dataset into NHWC
// batches. Every random choice is a pure function of (seed, epoch, sample index): the epoch's
// order comes from (seed, epoch), and each sample's augmentation from (epoch_seed, index), so a
// batch is identical for any thread count and any rank layout.
// Sharding follows torch.utils.data.DistributedSampler (drop_last=False): the epoch order is
// padded by wrapping around to a multiple of `world`, and rank r takes positions r, r+world, ...;
// the per-rank batches then drop an incomplete last batch when drop_remainder is set (as the
// official fine-tuning DataLoader does with drop_last=True).
#pragma once
#include <convnextv2/core/parallel.hpp>
#include <convnextv2/core/rng.hpp>
#include <convnextv2/core/tensor.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace convnextv2 {

// A labelled image dataset. get() must be safe to call concurrently (it is const).
class dataset {
public:
    virtual ~dataset() = default;
    virtual index_t size() const = 0;
    virtual index_t num_classes() const = 0;
    // Output sample shape {H, W, C}.
    virtual shape_t sample_shape() const = 0;
    // Decodes sample i into out_hwc (H·W·C floats, normalised) and its class into *label. With
    // train = true the sample is augmented using only (epoch_seed, i) as randomness.
    virtual void get(index_t i, std::uint64_t epoch_seed, bool train, float* out_hwc, int* label) const = 0;
};

// The per-epoch seed handed to dataset::get.
inline std::uint64_t epoch_seed(std::uint64_t seed, std::int64_t epoch)
{
    return hash_combine(hash_combine(seed, 0x65706f6368ULL), static_cast<std::uint64_t>(epoch));
}

// The epoch's global sample order: identity without shuffle, else a Fisher-Yates permutation
// drawn from (seed, epoch).
inline std::vector<index_t> epoch_order(index_t n, std::uint64_t seed, std::int64_t epoch, bool shuffle)
{
    std::vector<index_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), index_t{0});
    if (!shuffle) return order;
    counter_rng rng(epoch_seed(seed, epoch), 0x7065726dULL);
    for (index_t i = n - 1; i > 0; --i) {
        auto j = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(i + 1)));
        std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    }
    return order;
}

struct batch_loader_options {
    index_t batch_size = 32;
    std::uint64_t seed = 0;
    bool shuffle = true;
    bool drop_remainder = true;
    bool train = true;  // augmentation on (train split) or off (evaluation)
    int rank = 0;
    int world = 1;
};

class batch_loader {
public:
    batch_loader(const dataset& ds, batch_loader_options opt, std::int64_t epoch = 0) : ds_(&ds), opt_(opt)
    {
        CONVNEXTV2_CHECK(opt_.batch_size >= 1, "batch_loader: batch_size must be >= 1, got ", opt_.batch_size);
        CONVNEXTV2_CHECK(opt_.world >= 1 && opt_.rank >= 0 && opt_.rank < opt_.world, "batch_loader: rank ", opt_.rank,
                         " is not in [0, world = ", opt_.world, ")");
        CONVNEXTV2_CHECK(ds.size() > 0, "batch_loader: the dataset is empty");
        set_epoch(epoch);
    }

    // Recomputes this rank's order for `epoch` (like DistributedSampler.set_epoch).
    void set_epoch(std::int64_t epoch)
    {
        epoch_ = epoch;
        const index_t n = ds_->size();
        const index_t world = opt_.world;
        const index_t per_rank = (n + world - 1) / world;
        std::vector<index_t> order = epoch_order(n, opt_.seed, epoch, opt_.shuffle);
        mine_.resize(static_cast<std::size_t>(per_rank));
        for (index_t k = 0; k < per_rank; ++k) {
            index_t pos = opt_.rank + k * world;  // position in the padded order
            mine_[static_cast<std::size_t>(k)] = order[static_cast<std::size_t>(pos % n)];
        }
    }

    std::int64_t epoch() const { return epoch_; }
    std::uint64_t current_epoch_seed() const { return epoch_seed(opt_.seed, epoch_); }
    // This rank's samples for the epoch, in order (before dropping the remainder).
    const std::vector<index_t>& indices() const { return mine_; }
    index_t samples_per_rank() const { return static_cast<index_t>(mine_.size()); }
    index_t num_batches() const
    {
        const index_t n = samples_per_rank(), b = opt_.batch_size;
        return opt_.drop_remainder ? n / b : (n + b - 1) / b;
    }
    index_t batch_size(index_t b) const
    {
        CONVNEXTV2_CHECK(b >= 0 && b < num_batches(), "batch_loader: batch ", b, " out of range [0, ", num_batches(), ")");
        return std::min(opt_.batch_size, samples_per_rank() - b * opt_.batch_size);
    }
    const batch_loader_options& options() const { return opt_; }

    // Fills images [B, H, W, C] and labels [B] for batch b, decoding the samples in parallel.
    void load(index_t b, tensor<float>& images, std::vector<int>& labels) const
    {
        const index_t count = batch_size(b);
        const shape_t s = ds_->sample_shape();
        CONVNEXTV2_CHECK(s.size() == 3, "batch_loader: sample_shape must be {H, W, C}, got ", to_string(s));
        images.resize({count, s[0], s[1], s[2]});
        labels.assign(static_cast<std::size_t>(count), 0);
        const index_t per = numel(s);
        const index_t first = b * opt_.batch_size;
        const std::uint64_t es = current_epoch_seed();
        float* out = images.data();
        int* lab = labels.data();
        parallel_for(0, count, 1, [&](index_t lo, index_t hi) {
            for (index_t i = lo; i < hi; ++i)
                ds_->get(mine_[static_cast<std::size_t>(first + i)], es, opt_.train, out + i * per, lab + i);
        });
    }

private:
    const dataset* ds_;
    batch_loader_options opt_;
    std::int64_t epoch_ = 0;
    std::vector<index_t> mine_;
};

} // namespace convnextv2
