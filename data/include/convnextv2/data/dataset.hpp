// SPDX-License-Identifier: MIT
// The dataset interface the trainer sees, and batch_loader, which turns a dataset into NHWC
// batches. Every random choice is a pure function of (seed, epoch, sample index): the epoch's
// order comes from (seed, epoch), and each sample's augmentation from (epoch_seed, index), so a
// batch is identical for any thread count and any rank layout.
// Sharding follows torch.utils.data.DistributedSampler (drop_last=False): the epoch order is
// padded by wrapping around to a multiple of `world`, and rank r takes positions r, r+world, ...;
// the per-rank batches then drop an incomplete last batch when drop_remainder is set (as the
// official fine-tuning DataLoader does with drop_last=True).
//
// Repeated augmentation (aug_repeats R > 1; MindCV/timm RepeatAugSampler): the epoch's shuffled
// order is repeated R times per sample ([a, a, a, b, b, b, ...], or per block of `repeat_group`
// samples: [A, A, A, B, B, B, ...]), padded by wrapping to a multiple of `world`, rank r takes
// positions r, r+world, ..., and each rank keeps only floor(n // 256 * 256 / world) of them
// (RepeatAugSampler's selected_round 256; ceil(n / world) when n < 256, where the sampler would
// give an empty epoch). So the epoch keeps about n samples: repeats replace other samples, and
// consecutive copies of a sample land on different ranks. Copy k of a sample is augmented with
// repeat_seed(epoch_seed, k): same image, different randomness (copy 0 = the plain seed).
//
// batch_prefetcher prepares the next k batches on a background thread while the caller trains
// on the current one (a tbb::concurrent_bounded_queue of capacity k): its output is the same
// bytes as batch_loader::load, for any thread count.
#pragma once
#include <convnextv2/core/parallel.hpp>
#include <convnextv2/core/rng.hpp>
#include <convnextv2/core/tensor.hpp>

#include <tbb/concurrent_queue.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <numeric>
#include <thread>
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

// The augmentation seed of copy `repeat` of a sample (repeated augmentation); copy 0 keeps the
// epoch seed, so aug_repeats 0/1 changes nothing.
inline std::uint64_t repeat_seed(std::uint64_t epoch_seed, std::int32_t repeat)
{
    return repeat == 0 ? epoch_seed : hash_combine(epoch_seed, 0x7265706561740000ULL + static_cast<std::uint64_t>(repeat));
}

struct batch_loader_options {
    index_t batch_size = 32;
    std::uint64_t seed = 0;
    bool shuffle = true;
    bool drop_remainder = true;
    bool train = true;  // augmentation on (train split) or off (evaluation)
    int rank = 0;
    int world = 1;
    int aug_repeats = 1;              // repeated augmentation factor; <= 1: off
    index_t repeat_group = 1;         // repeat blocks of this many consecutive samples (1: timm's interleave)
    index_t repeat_selected_round = 256;  // RepeatAugSampler's selected_round (0: ceil(n / world))
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
        std::vector<index_t> order = epoch_order(n, opt_.seed, epoch, opt_.shuffle);
        if (opt_.aug_repeats > 1) return set_repeated(order);
        const index_t per_rank = (n + world - 1) / world;
        mine_.resize(static_cast<std::size_t>(per_rank));
        copy_.assign(static_cast<std::size_t>(per_rank), 0);
        for (index_t k = 0; k < per_rank; ++k) {
            index_t pos = opt_.rank + k * world;  // position in the padded order
            mine_[static_cast<std::size_t>(k)] = order[static_cast<std::size_t>(pos % n)];
        }
    }

    std::int64_t epoch() const { return epoch_; }
    std::uint64_t current_epoch_seed() const { return epoch_seed(opt_.seed, epoch_); }
    // This rank's samples for the epoch, in order (before dropping the remainder).
    const std::vector<index_t>& indices() const { return mine_; }
    // The repeat (copy) number of each of indices(): 0 without repeated augmentation.
    const std::vector<std::int32_t>& repeats() const { return copy_; }
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
            for (index_t i = lo; i < hi; ++i) {
                const auto k = static_cast<std::size_t>(first + i);
                ds_->get(mine_[k], repeat_seed(es, copy_[k]), opt_.train, out + i * per, lab + i);
            }
        });
    }

private:
    // RepeatAugSampler.__iter__ (see the top of this file) on the epoch's order.
    void set_repeated(const std::vector<index_t>& order)
    {
        const index_t n = static_cast<index_t>(order.size()), world = opt_.world, R = opt_.aug_repeats;
        const index_t group = std::max<index_t>(1, opt_.repeat_group);
        std::vector<index_t> rep;
        std::vector<std::int32_t> rep_copy;
        rep.reserve(static_cast<std::size_t>(n * R));
        rep_copy.reserve(static_cast<std::size_t>(n * R));
        for (index_t g = 0; g < n; g += group)
            for (index_t k = 0; k < R; ++k)
                for (index_t j = g; j < std::min(n, g + group); ++j) {
                    rep.push_back(order[static_cast<std::size_t>(j)]);
                    rep_copy.push_back(static_cast<std::int32_t>(k));
                }
        const index_t len = static_cast<index_t>(rep.size());
        const index_t num_samples = (len + world - 1) / world;
        index_t selected = opt_.repeat_selected_round > 0
                               ? n / opt_.repeat_selected_round * opt_.repeat_selected_round / world
                               : (n + world - 1) / world;
        if (selected == 0) selected = (n + world - 1) / world;
        selected = std::min(selected, num_samples);
        mine_.resize(static_cast<std::size_t>(selected));
        copy_.resize(static_cast<std::size_t>(selected));
        for (index_t k = 0; k < selected; ++k) {
            const index_t pos = opt_.rank + k * world;  // padding wraps around; a padded copy gets its own seed
            mine_[static_cast<std::size_t>(k)] = rep[static_cast<std::size_t>(pos % len)];
            copy_[static_cast<std::size_t>(k)] = rep_copy[static_cast<std::size_t>(pos % len)] + static_cast<std::int32_t>(R * (pos / len));
        }
    }

    const dataset* ds_;
    batch_loader_options opt_;
    std::int64_t epoch_ = 0;
    std::vector<index_t> mine_;
    std::vector<std::int32_t> copy_;
};

// Loads `batches` (indices into the loader's epoch, in the order they will be asked for) on a
// background thread, keeping at most `depth` finished batches waiting; next() hands them out in
// order. The loader is copied, so set_epoch on the original does not disturb it. The loads run
// in a task_arena as wide as the constructing thread's limit (max_threads()). An exception from
// a load is rethrown by next() at that batch. Destroying it early stops the producer.
class batch_prefetcher {
public:
    batch_prefetcher(const batch_loader& loader, std::vector<index_t> batches, int depth)
        : loader_(loader), batches_(std::move(batches)), arena_(max_threads())
    {
        CONVNEXTV2_CHECK(depth >= 1, "batch_prefetcher: depth must be >= 1, got ", depth);
        for (index_t b : batches_)
            CONVNEXTV2_CHECK(b >= 0 && b < loader_.num_batches(), "batch_prefetcher: batch ", b, " out of range [0, ",
                             loader_.num_batches(), ")");
        ready_.set_capacity(depth);
        producer_ = std::thread([this] {
            try {
                produce();
            } catch (...) {  // only allocation failures get here
            }
            done_ = true;
        });
    }
    batch_prefetcher(const batch_prefetcher&) = delete;
    batch_prefetcher& operator=(const batch_prefetcher&) = delete;
    ~batch_prefetcher()
    {
        stop_ = true;
        // Make room and wake a producer blocked on a full queue until it has seen stop_.
        while (!done_) {
            item* it = nullptr;
            while (ready_.try_pop(it)) {}
            ready_.abort();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        producer_.join();
    }

    // The next batch (swapped into images/labels); returns its batch index, or -1 after the last.
    index_t next(tensor<float>& images, std::vector<int>& labels)
    {
        if (taken_ >= batches_.size()) return -1;
        item* raw = nullptr;
        ready_.pop(raw);  // blocks until the producer has it
        ++taken_;
        if (raw->error) {
            taken_ = batches_.size();
            std::rethrow_exception(raw->error);
        }
        std::swap(images, raw->images);
        std::swap(labels, raw->labels);
        const index_t b = raw->batch;
        free_.push(raw);  // now holds the caller's old buffers, reused for a later batch
        return b;
    }

    // Most finished batches ever waiting in the queue (<= depth), and batch buffers allocated
    // (<= depth + 2: the queue, the one being filled, the one being handed over).
    int max_ready() const { return max_ready_.load(); }
    int buffers_allocated() const { return allocated_.load(); }

private:
    struct item {
        index_t batch = 0;
        tensor<float> images;
        std::vector<int> labels;
        std::exception_ptr error;
    };

    void produce()
    {
        for (index_t b : batches_) {
            if (stop_) return;
            item* it = nullptr;
            if (!free_.try_pop(it)) {
                owned_.push_back(std::make_unique<item>());
                it = owned_.back().get();
                ++allocated_;
            }
            it->batch = b;
            try {
                arena_.execute([&] { loader_.load(b, it->images, it->labels); });
            } catch (...) {
                it->error = std::current_exception();
            }
            try {
                ready_.push(it);
            } catch (...) {  // aborted by the destructor
                return;
            }
            const int n = static_cast<int>(ready_.size());
            for (int m = max_ready_.load(); n > m && !max_ready_.compare_exchange_weak(m, n);) {}
            if (it->error) return;
        }
    }

    batch_loader loader_;
    std::vector<index_t> batches_;
    tbb::task_arena arena_;
    tbb::concurrent_bounded_queue<item*> ready_;
    tbb::concurrent_queue<item*> free_;
    std::vector<std::unique_ptr<item>> owned_;  // touched by the producer only, freed after join
    std::size_t taken_ = 0;
    std::atomic<bool> stop_{false}, done_{false};
    std::atomic<int> max_ready_{0}, allocated_{0};
    std::thread producer_;
};

} // namespace convnextv2
