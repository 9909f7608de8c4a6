// batch_loader: repeated augmentation (aug_repeats, RepeatAugSampler semantics) and the
// batch_prefetcher (background batches, bounded queue, identical bytes), on a synthetic dataset
// whose samples are a function of (index, augmentation seed).
#include <convnextv2/data/dataset.hpp>
#include <support/fixtures.hpp>

#include <tbb/task_arena.h>

#include <chrono>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>

using namespace convnextv2;

namespace {

// Sample i: 2x2x3 values drawn from counter_rng(seed, i) (train) or i itself (eval); label i % 7.
class synthetic : public dataset {
public:
    explicit synthetic(index_t n, index_t throw_at = -1, int sleep_us = 0) : n_(n), throw_at_(throw_at), sleep_us_(sleep_us) {}
    index_t size() const override { return n_; }
    index_t num_classes() const override { return 7; }
    shape_t sample_shape() const override { return {2, 2, 3}; }
    void get(index_t i, std::uint64_t seed, bool train, float* out, int* label) const override
    {
        if (i == throw_at_) throw std::runtime_error("sample " + std::to_string(i) + " is broken");
        if (sleep_us_) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
        counter_rng rng(seed, static_cast<std::uint64_t>(i));
        for (int k = 0; k < 12; ++k) out[k] = train ? static_cast<float>(rng.uniform()) : static_cast<float>(i);
        *label = static_cast<int>(i % 7);
    }

private:
    index_t n_, throw_at_;
    int sleep_us_;
};

std::vector<float> flat(const tensor<float>& t) { return std::vector<float>(t.begin(), t.end()); }

} // namespace

TEST_CASE("aug_repeats: epoch keeps ~n samples, each chosen image appears R times (timm RepeatAugSampler)", "[data]")
{
    synthetic ds(600);
    batch_loader_options o;
    o.batch_size = 16;
    o.seed = 3;
    o.aug_repeats = 3;
    batch_loader l(ds, o, 0);
    // selected_round 256: floor(600 // 256 * 256 / 1) = 512 samples per epoch.
    REQUIRE(l.samples_per_rank() == 512);
    std::map<index_t, std::vector<int>> copies;
    for (std::size_t k = 0; k < l.indices().size(); ++k) copies[l.indices()[k]].push_back(l.repeats()[k]);
    CHECK(copies.size() == 171);  // 170 full triples + 2 copies of the 171st image
    int full = 0;
    for (auto& kv : copies) {
        full += kv.second.size() == 3;
        CHECK(kv.second.size() <= 3);
        CHECK(std::set<int>(kv.second.begin(), kv.second.end()).size() == kv.second.size());  // copy 0, 1, 2
    }
    CHECK(full == 170);
    // timm's interleave: [a, a, a, b, b, b, ...] in the epoch's shuffled order.
    const std::vector<index_t> order = epoch_order(600, 3, 0, true);
    for (std::size_t k = 0; k < 30; ++k) {
        CHECK(l.indices()[k] == order[k / 3]);
        CHECK(l.repeats()[k] == static_cast<int>(k % 3));
    }
    // Small datasets (n < 256, where the sampler would give an empty epoch): ceil(n / world).
    synthetic small(50);
    batch_loader ls(small, o, 0);
    CHECK(ls.samples_per_rank() == 50);
    // Off: identical to the plain loader.
    o.aug_repeats = 1;
    batch_loader plain(ds, o, 4);
    o.aug_repeats = 0;
    batch_loader zero(ds, o, 4);
    CHECK(plain.indices() == zero.indices());
    CHECK(plain.samples_per_rank() == 600);
    CHECK(plain.indices() == epoch_order(600, 3, 4, true));
}

TEST_CASE("aug_repeats: the copies of one image land on different ranks", "[data]")
{
    synthetic ds(1000);
    for (int world : {2, 3, 4}) {
        INFO("world " << world);
        std::map<index_t, std::vector<int>> ranks_of;  // image -> ranks holding a copy
        index_t total = 0;
        for (int r = 0; r < world; ++r) {
            batch_loader_options o;
            o.batch_size = 8;
            o.seed = 1;
            o.aug_repeats = 3;
            o.rank = r;
            o.world = world;
            batch_loader l(ds, o, 2);
            CHECK(l.samples_per_rank() == 768 / world);  // floor(1000 // 256 * 256 / world)
            total += l.samples_per_rank();
            for (index_t i : l.indices()) ranks_of[i].push_back(r);
        }
        CHECK(total == 768);
        int spread = 0, images = 0;
        for (auto& kv : ranks_of) {
            ++images;
            std::set<int> distinct(kv.second.begin(), kv.second.end());
            // With world >= 3 every copy is on its own rank; with 2 ranks two copies share one.
            spread += static_cast<int>(distinct.size()) == std::min<int>(world, static_cast<int>(kv.second.size()));
        }
        CHECK(spread == images);
    }
    // repeat_group = batch size (the trainer): copies are consecutive whole batches, so global
    // batches b, b+1, b+2 (dealt to ranks round-robin) hold the same images.
    batch_loader_options o;
    o.batch_size = 8;
    o.aug_repeats = 3;
    o.repeat_group = 8;
    batch_loader l(ds, o, 0);
    for (std::size_t k = 0; k < 8; ++k) {
        CHECK(l.indices()[k] == l.indices()[k + 8]);
        CHECK(l.indices()[k] == l.indices()[k + 16]);
        CHECK(l.repeats()[k + 16] == 2);
    }
    CHECK(l.indices()[24] != l.indices()[0]);
}

TEST_CASE("aug_repeats: repeats get different augmentation, deterministic per (seed, epoch)", "[data]")
{
    synthetic ds(300);
    batch_loader_options o;
    o.batch_size = 6;
    o.seed = 9;
    o.aug_repeats = 3;
    batch_loader l(ds, o, 1);
    tensor<float> x;
    std::vector<int> y;
    l.load(0, x, y);  // 2 images x 3 copies
    REQUIRE(x.dim(0) == 6);
    const index_t per = 12;
    for (int a = 0; a < 2; ++a) {
        CHECK(l.indices()[static_cast<std::size_t>(3 * a)] == l.indices()[static_cast<std::size_t>(3 * a + 2)]);
        CHECK(y[static_cast<std::size_t>(3 * a)] == y[static_cast<std::size_t>(3 * a + 1)]);
        for (int k = 1; k < 3; ++k)
            CHECK(std::vector<float>(x.data() + (3 * a) * per, x.data() + (3 * a + 1) * per) !=
                  std::vector<float>(x.data() + (3 * a + k) * per, x.data() + (3 * a + k + 1) * per));
    }
    // Copy 0 is augmented exactly as without repeats (same seed).
    std::vector<float> c0(12);
    int lab;
    ds.get(l.indices()[0], l.current_epoch_seed(), true, c0.data(), &lab);
    CHECK(c0 == std::vector<float>(x.data(), x.data() + per));
    // Same (seed, epoch): same batches; another epoch: another order.
    batch_loader l2(ds, o, 1);
    tensor<float> x2;
    l2.load(0, x2, y);
    CHECK(flat(x) == flat(x2));
    l2.set_epoch(2);
    CHECK(l2.indices() != l.indices());
}

TEST_CASE("prefetcher: batches equal load() bit for bit, with 1 and 2 threads and repeats on", "[data]")
{
    synthetic ds(203);
    batch_loader_options o;
    o.batch_size = 10;
    o.seed = 5;
    o.drop_remainder = false;
    o.aug_repeats = 2;
    o.repeat_selected_round = 0;
    batch_loader l(ds, o, 3);
    REQUIRE(l.num_batches() == 21);  // 203 samples, the last batch has 3
    std::vector<index_t> order;
    for (index_t b = 1; b < l.num_batches(); b += 2) order.push_back(b);  // a trainer-like stride
    for (index_t b = 0; b < l.num_batches(); b += 2) order.push_back(b);
    std::vector<std::vector<float>> want;
    std::vector<std::vector<int>> want_labels;
    for (index_t b : order) {
        tensor<float> x;
        std::vector<int> y;
        l.load(b, x, y);
        want.push_back(flat(x));
        want_labels.push_back(y);
    }
    for (int threads : {1, 2}) {
        for (int depth : {1, 3}) {
            INFO("threads " << threads << ", depth " << depth);
            tbb::task_arena arena(threads);
            arena.execute([&] {
                batch_prefetcher p(l, order, depth);
                l.set_epoch(7);  // the prefetcher has its own copy of the loader
                tensor<float> x;
                std::vector<int> y;
                for (std::size_t k = 0; k < order.size(); ++k) {
                    REQUIRE(p.next(x, y) == order[k]);
                    CHECK(flat(x) == want[k]);
                    CHECK(y == want_labels[k]);
                }
                CHECK(p.next(x, y) == -1);
                l.set_epoch(3);
            });
        }
    }
}

TEST_CASE("prefetcher: at most k batches wait, buffers are recycled, errors surface at their batch", "[data]")
{
    synthetic ds(400);
    batch_loader_options o;
    o.batch_size = 8;
    batch_loader l(ds, o, 0);
    std::vector<index_t> all(static_cast<std::size_t>(l.num_batches()));
    std::iota(all.begin(), all.end(), index_t{0});
    {
        batch_prefetcher p(l, all, 3);
        tensor<float> x;
        std::vector<int> y;
        for (int k = 0; k < 50; ++k) {
            std::this_thread::sleep_for(std::chrono::milliseconds(k < 4 ? 30 : 0));  // a slow consumer first
            REQUIRE(p.next(x, y) == k);
        }
        CHECK(p.max_ready() == 3);           // the queue filled up to k, never beyond
        CHECK(p.buffers_allocated() <= 5);   // k + 2, for 50 batches
    }
    {
        // Stopping early (e.g. a NaN loss) must not hang on a full queue.
        batch_prefetcher p(l, all, 2);
        tensor<float> x;
        std::vector<int> y;
        p.next(x, y);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    synthetic bad(400, 8 * 5 + 3);  // in batch 5 of the unshuffled order
    o.shuffle = false;
    batch_loader lb(bad, o, 0);
    batch_prefetcher p(lb, all, 2);
    tensor<float> x;
    std::vector<int> y;
    for (int k = 0; k < 5; ++k) CHECK(p.next(x, y) == k);
    CHECK_THROWS_WITH(p.next(x, y), Catch::Contains("broken"));
    CHECK(p.next(x, y) == -1);
}
