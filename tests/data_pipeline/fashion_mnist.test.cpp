#include <convnextv2/data/fashion_mnist.hpp>
#include <support/fixtures.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

using namespace convnextv2;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& tag)
{
    fs::path d = fs::temp_directory_path() / ("convnextv2_fmnist_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

void put_be32(std::string& s, std::uint32_t v)
{
    for (int k = 3; k >= 0; --k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

// A plain (uncompressed) IDX file: magic, dims, then `data` (possibly shorter than the header says).
void write_idx(const fs::path& p, std::uint32_t magic, const std::vector<std::uint32_t>& dims, const std::string& data)
{
    std::string s;
    put_be32(s, magic);
    for (auto d : dims) put_be32(s, d);
    s += data;
    std::ofstream(p, std::ios::binary) << s;
}

// n synthetic 28x28 images: pixel (y, x) of image i = (i*7 + y*28 + x) mod 256; label i mod 10.
fs::path synthetic_dir(const std::string& tag, std::uint32_t n)
{
    fs::path d = temp_dir(tag);
    std::string img, lab;
    for (std::uint32_t i = 0; i < n; ++i) {
        for (int k = 0; k < 28 * 28; ++k) img.push_back(static_cast<char>((i * 7 + k) % 256));
        lab.push_back(static_cast<char>(i % 10));
    }
    write_idx(d / "train-images-idx3-ubyte", 2051, {n, 28, 28}, img);
    write_idx(d / "train-labels-idx1-ubyte", 2049, {n}, lab);
    return d;
}

bool real_data_present() { return fs::exists(fs::path(default_fashion_mnist_dir()) / "train-images-idx3-ubyte.gz"); }

} // namespace

TEST_CASE("fashion_mnist: real files: sizes, first labels, pixel range", "[data][fashion_mnist]")
{
    if (!real_data_present()) {
        WARN("SKIPPED: " << default_fashion_mnist_dir() << " not found (Debian package dataset-fashion-mnist)");
        return;
    }
    idx_array lab = read_idx(find_idx_file(default_fashion_mnist_dir(), "train-labels-idx1-ubyte"), 2049);
    REQUIRE(lab.dims == std::vector<index_t>{60000});
    const std::vector<int> first{9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    for (int i = 0; i < 10; ++i) REQUIRE(lab.data[static_cast<std::size_t>(i)] == first[static_cast<std::size_t>(i)]);

    fashion_mnist_options o;
    o.image_size = 28;
    o.random_crop_padding = 0;
    fashion_mnist_dataset train(o);
    REQUIRE(train.size() == 60000);
    REQUIRE(train.num_classes() == 10);
    REQUIRE(train.raw_label(0) == 9);
    std::uint8_t lo = 255, hi = 0;
    double sum = 0;
    for (index_t i = 0; i < 1000; ++i)
        for (int k = 0; k < 784; ++k) {
            std::uint8_t v = train.raw_image(i)[k];
            lo = std::min(lo, v);
            hi = std::max(hi, v);
            sum += v;
        }
    REQUIRE(lo == 0);
    REQUIRE(hi == 255);
    REQUIRE(sum / (1000 * 784 * 255.0) == Approx(0.286).margin(0.02));
    // Sample 0 of the training set: sum of raw pixels is 76247.
    long s0 = 0;
    for (int k = 0; k < 784; ++k) s0 += train.raw_image(0)[k];
    REQUIRE(s0 == 76247);

    o.split = "test";
    fashion_mnist_dataset test(o);
    REQUIRE(test.size() == 10000);
    const std::vector<int> tfirst{9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; ++i) REQUIRE(test.raw_label(i) == tfirst[static_cast<std::size_t>(i)]);

    // Normalised eval sample: (p/255 − 0.2860)/0.3530, range within [-0.81, 2.02].
    std::vector<float> out(28 * 28);
    int label = -1;
    train.get(0, 0, false, out.data(), &label);
    REQUIRE(label == 9);
    for (int k = 0; k < 784; ++k) REQUIRE(out[static_cast<std::size_t>(k)] == Approx((train.raw_image(0)[k] / 255.0 - 0.2860) / 0.3530).margin(1e-5));
}

TEST_CASE("fashion_mnist: truncated files name the file and the expected size", "[data][fashion_mnist]")
{
    fs::path d = temp_dir("trunc");
    // Plain file: header says 5 images, only 3 present.
    std::string data(3 * 784, '\1');
    write_idx(d / "train-images-idx3-ubyte", 2051, {5, 28, 28}, data);
    const std::string p = (d / "train-images-idx3-ubyte").string();
    REQUIRE_THROWS_WITH(read_idx(p, 2051), Catch::Contains(p) && Catch::Contains("truncated") && Catch::Contains("3936 bytes") &&
                                               Catch::Contains("2368 bytes"));
    // Extra bytes after the declared data.
    write_idx(d / "labels", 2049, {4}, std::string(5, '\1'));
    REQUIRE_THROWS_WITH(read_idx((d / "labels").string(), 2049), Catch::Contains("more data than its header"));
    // Truncated inside the header.
    std::ofstream(d / "tiny", std::ios::binary) << std::string("\0\0", 2);
    REQUIRE_THROWS_WITH(read_idx((d / "tiny").string(), 2049), Catch::Contains("tiny") && Catch::Contains("truncated"));

    if (real_data_present()) {
        // First half of the real gzipped label file.
        std::ifstream in(fs::path(default_fashion_mnist_dir()) / "t10k-labels-idx1-ubyte.gz", std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const fs::path gz = d / "t10k-labels-idx1-ubyte.gz";
        std::ofstream(gz, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
        REQUIRE_THROWS_WITH(read_idx(gz.string(), 2049), Catch::Contains(gz.string()) && Catch::Contains("truncated") &&
                                                             Catch::Contains("10008 bytes"));
    } else {
        WARN("SKIPPED gzip truncation check: " << default_fashion_mnist_dir() << " not found");
    }
}

TEST_CASE("fashion_mnist: bad magic, bad labels, mismatched counts, missing files", "[data][fashion_mnist]")
{
    fs::path d = temp_dir("bad");
    write_idx(d / "a", 2049, {2, 28, 28}, std::string(2 * 784, '\0'));
    REQUIRE_THROWS_WITH(read_idx((d / "a").string(), 2051), Catch::Contains("bad magic") && Catch::Contains("2051"));

    fs::path s = synthetic_dir("badlab", 4);
    write_idx(s / "train-labels-idx1-ubyte", 2049, {4}, std::string("\1\2\12\3", 4));
    REQUIRE_THROWS_WITH(fashion_mnist_dataset(fashion_mnist_options{s.string()}),
                        Catch::Contains("label 10 at index 2") && Catch::Contains("train-labels-idx1-ubyte"));
    write_idx(s / "train-labels-idx1-ubyte", 2049, {3}, std::string("\1\2\3", 3));
    REQUIRE_THROWS_WITH(fashion_mnist_dataset(fashion_mnist_options{s.string()}), Catch::Contains("3 labels") && Catch::Contains("4 images"));
    fs::remove(s / "train-labels-idx1-ubyte");
    REQUIRE_THROWS_WITH(fashion_mnist_dataset(fashion_mnist_options{s.string()}), Catch::Contains("train-labels-idx1-ubyte.gz"));
}

TEST_CASE("fashion_mnist: padding, resize, channels, augmentation", "[data][fashion_mnist]")
{
    fs::path s = synthetic_dir("geom", 3);
    fashion_mnist_options o;
    o.dir = s.string();
    o.image_size = 32;
    o.in_chans = 3;
    fashion_mnist_dataset ds(o);
    REQUIRE(ds.sample_shape() == shape_t{32, 32, 3});
    std::vector<float> out(32 * 32 * 3);
    int label = -1;
    ds.get(1, 0, false, out.data(), &label);
    REQUIRE(label == 1);
    const float bg = (0.0f - 0.2860f) / 0.3530f;
    auto at = [&](int y, int x, int c) { return out[static_cast<std::size_t>((y * 32 + x) * 3 + c)]; };
    REQUIRE(at(0, 0, 0) == Approx(bg));
    REQUIRE(at(31, 31, 2) == Approx(bg));
    // Pixel (0,0) of the image lands at (2,2); value (1*7 + 0) = 7.
    REQUIRE(at(2, 2, 0) == Approx((7 / 255.0 - 0.2860) / 0.3530).margin(1e-5));
    REQUIRE(at(2, 2, 1) == at(2, 2, 0));
    REQUIRE(at(5, 9, 2) == Approx(((7 + 3 * 28 + 7) / 255.0 - 0.2860) / 0.3530).margin(1e-5));

    // Train: flip-only augmentation mirrors the eval sample exactly.
    o.in_chans = 1;
    o.random_crop_padding = 0;
    o.hflip = 1.0;
    fashion_mnist_dataset flip(o);
    std::vector<float> e(32 * 32), t(32 * 32);
    flip.get(2, 0, false, e.data(), &label);
    flip.get(2, 99, true, t.data(), &label);
    for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) REQUIRE(t[static_cast<std::size_t>(y * 32 + x)] == e[static_cast<std::size_t>(y * 32 + 31 - x)]);

    // Random crop: the result is a shifted eval image (background fill), same seed → same result.
    o.hflip = 0;
    o.random_crop_padding = 4;
    fashion_mnist_dataset crop(o);
    crop.get(2, 0, false, e.data(), &label);
    std::vector<float> t2(32 * 32);
    crop.get(2, 7, true, t.data(), &label);
    crop.get(2, 7, true, t2.data(), &label);
    REQUIRE(t == t2);
    bool found = false;
    for (int dy = -4; dy <= 4 && !found; ++dy)
        for (int dx = -4; dx <= 4 && !found; ++dx) {
            bool ok = true;
            for (int y = 0; y < 32 && ok; ++y)
                for (int x = 0; x < 32 && ok; ++x) {
                    int sy = y + dy, sx = x + dx;
                    float want = (sy >= 0 && sy < 32 && sx >= 0 && sx < 32) ? e[static_cast<std::size_t>(sy * 32 + sx)] : bg;
                    ok = std::fabs(t[static_cast<std::size_t>(y * 32 + x)] - want) < 1e-6f;
                }
            found = ok;
        }
    REQUIRE(found);

    // Resize path (image_size < 28) stays within the pixel range.
    o.image_size = 16;
    o.random_crop_padding = 0;
    fashion_mnist_dataset small(o);
    std::vector<float> r(16 * 16);
    small.get(0, 0, false, r.data(), &label);
    for (float v : r) REQUIRE((v >= bg - 1e-5f && v <= (1.0f - 0.2860f) / 0.3530f + 1e-5f));

    // Random erasing (re_prob): one box of zeros (re_random_fill off) on the train sample only;
    // every pixel outside it, and the crop/flip draws before it, as without erasing.
    o.image_size = 32;
    o.random_crop_padding = 2;
    o.hflip = 0.5;
    fashion_mnist_dataset plain(o);
    o.re_prob = 1.0;
    o.re_random_fill = false;
    fashion_mnist_dataset erase(o);
    std::vector<float> p(32 * 32), q(32 * 32);
    plain.get(2, 5, true, p.data(), &label);
    erase.get(2, 5, true, q.data(), &label);
    int y0 = 32, y1 = -1, x0 = 32, x1 = -1, changed = 0;
    for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) {
            const std::size_t i = static_cast<std::size_t>(y * 32 + x);
            if (q[i] == p[i]) continue;
            ++changed;
            REQUIRE(q[i] == 0.0f);
            y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
        }
    REQUIRE(changed > 0);
    // The changed pixels lie in one box, and each pixel of the box is either changed or already 0.
    for (int y = y0; y <= y1; ++y)
        for (int x = x0; x <= x1; ++x) REQUIRE((q[static_cast<std::size_t>(y * 32 + x)] == 0.0f));
    erase.get(2, 5, false, q.data(), &label);
    plain.get(2, 5, false, p.data(), &label);
    REQUIRE(q == p);  // evaluation samples are never erased
    o.re_prob = 1.5;
    REQUIRE_THROWS_WITH(fashion_mnist_dataset(o), Catch::Contains("re_prob"));
}

TEST_CASE("batch_loader: same (seed, epoch) gives identical batches with 1 and 2 threads", "[data][batch_loader]")
{
    fs::path s = synthetic_dir("det", 50);
    fashion_mnist_options o;
    o.dir = s.string();
    o.random_crop_padding = 3;
    fashion_mnist_dataset ds(o);
    batch_loader_options lo;
    lo.batch_size = 8;
    lo.seed = 42;
    auto run = [&](int threads, std::int64_t epoch) {
        thread_limit tl(threads);
        batch_loader bl(ds, lo, epoch);
        tensor<float> x;
        std::vector<int> y;
        std::vector<float> all;
        std::vector<int> labels;
        for (index_t b = 0; b < bl.num_batches(); ++b) {
            bl.load(b, x, y);
            REQUIRE(x.shape() == shape_t{8, 32, 32, 1});
            all.insert(all.end(), x.begin(), x.end());
            labels.insert(labels.end(), y.begin(), y.end());
        }
        return std::make_pair(all, labels);
    };
    auto a = run(1, 3), b = run(2, 3), c = run(2, 4);
    REQUIRE(a.first == b.first);
    REQUIRE(a.second == b.second);
    REQUIRE(a.second.size() == 48);  // 50 samples, batch 8, drop_remainder → 6 batches
    REQUIRE(a.first != c.first);     // another epoch: another order and augmentation

    // Labels follow the epoch order.
    batch_loader bl(ds, lo, 3);
    for (std::size_t k = 0; k < a.second.size(); ++k) REQUIRE(a.second[k] == ds.raw_label(bl.indices()[k]));
    // Epoch order: a permutation, pure function of (seed, epoch).
    REQUIRE(epoch_order(50, 42, 3, true) == epoch_order(50, 42, 3, true));
    REQUIRE(epoch_order(50, 42, 3, true) != epoch_order(50, 42, 4, true));
    auto ord = epoch_order(50, 42, 3, true);
    REQUIRE(std::set<index_t>(ord.begin(), ord.end()).size() == 50);
    REQUIRE(epoch_order(5, 42, 3, false) == std::vector<index_t>{0, 1, 2, 3, 4});
}

TEST_CASE("batch_loader: ranks 0/1 of 2 cover the epoch exactly once (DistributedSampler)", "[data][batch_loader]")
{
    fs::path s = synthetic_dir("shard", 20);
    fashion_mnist_options o;
    o.dir = s.string();
    fashion_mnist_dataset ds(o);
    batch_loader_options lo;
    lo.batch_size = 4;
    lo.seed = 7;
    lo.world = 2;
    lo.drop_remainder = false;
    std::multiset<index_t> seen;
    for (int rank = 0; rank < 2; ++rank) {
        lo.rank = rank;
        batch_loader bl(ds, lo, 5);
        REQUIRE(bl.samples_per_rank() == 10);
        REQUIRE(bl.num_batches() == 3);
        REQUIRE(bl.batch_size(2) == 2);
        tensor<float> x;
        std::vector<int> y;
        for (index_t b = 0; b < bl.num_batches(); ++b) {
            bl.load(b, x, y);
            REQUIRE(x.dim(0) == bl.batch_size(b));
        }
        seen.insert(bl.indices().begin(), bl.indices().end());
        // Strided slice of the global order.
        auto ord = epoch_order(20, 7, 5, true);
        for (index_t k = 0; k < 10; ++k) REQUIRE(bl.indices()[static_cast<std::size_t>(k)] == ord[static_cast<std::size_t>(rank + 2 * k)]);
    }
    REQUIRE(seen.size() == 20);
    for (index_t i = 0; i < 20; ++i) REQUIRE(seen.count(i) == 1);

    // Odd size: padded by wrapping, so exactly one sample appears twice.
    fs::path s2 = synthetic_dir("shard_odd", 21);
    o.dir = s2.string();
    fashion_mnist_dataset odd(o);
    std::multiset<index_t> seen2;
    for (int rank = 0; rank < 2; ++rank) {
        lo.rank = rank;
        batch_loader bl(odd, lo, 0);
        REQUIRE(bl.samples_per_rank() == 11);
        seen2.insert(bl.indices().begin(), bl.indices().end());
    }
    REQUIRE(seen2.size() == 22);
    REQUIRE(std::set<index_t>(seen2.begin(), seen2.end()).size() == 21);

    lo.rank = 2;
    REQUIRE_THROWS_WITH(batch_loader(ds, lo), Catch::Contains("rank 2"));
}
