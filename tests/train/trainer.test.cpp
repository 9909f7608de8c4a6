// Training loop: exact resume, crash-safe checkpoints, NaN stop, and a short real-data run.
#include <convnextv2/train/trainer.hpp>
#include <support/fixtures.hpp>
#include <support/train_fixtures.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace convnextv2;
namespace fs = std::filesystem;
using test::synthetic_set;
using test::tiny_recipe;

namespace {

std::string fresh_dir(const std::string& name)
{
    fs::path p = fs::temp_directory_path() / ("convnextv2_test_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    return p.string();
}

train::train_options options(const recipe& r, std::shared_ptr<const dataset> ds)
{
    train::train_options o;
    o.r = r;
    o.verbose = false;
    o.train_set = ds;
    o.val_set = ds;
    return o;
}

std::vector<std::vector<float>> weights_of(train::trainer& t)
{
    std::vector<std::vector<float>> w;
    for (auto& p : t.model().params()) w.emplace_back(p.value->begin(), p.value->end());
    return w;
}

} // namespace

TEST_CASE("resume: N epochs straight equal a checkpoint + resume, bit for bit", "[train]")
{
    auto ds = std::make_shared<synthetic_set>(16);  // batch 4 -> 4 steps/epoch
    for (int update_freq : {1, 2}) {
        CAPTURE(update_freq);
        recipe r = tiny_recipe(fresh_dir("straight"));
        r.update_freq = update_freq;
        train::trainer straight(options(r, ds));
        auto s1 = straight.run();
        REQUIRE(s1.epochs_done == 3);

        recipe r2 = tiny_recipe(fresh_dir("resumed"));
        r2.update_freq = update_freq;
        {
            auto o = options(r2, ds);
            o.stop_after_epochs = 1;  // "crash" after the first checkpoint
            train::trainer first(o);
            REQUIRE(first.run().epochs_done == 1);
        }
        auto o = options(r2, ds);
        o.resume = "auto";
        train::trainer resumed(o);
        auto s2 = resumed.run();
        REQUIRE(s2.epochs_done == 3);
        auto a = weights_of(straight), b = weights_of(resumed);
        REQUIRE(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == b[i]);
        CHECK(s1.final_eval.top1 == s2.final_eval.top1);
        // The metrics file holds one line per epoch, not duplicates from the interrupted run.
        std::ifstream m(fs::path(r2.ckpt_save_dir) / "metrics.jsonl");
        int lines = 0;
        for (std::string l; std::getline(m, l);) ++lines;
        CHECK(lines == 3);
        CHECK(fs::exists(fs::path(r2.ckpt_save_dir) / "metrics.svg"));
        fs::remove_all(r.ckpt_save_dir);
        fs::remove_all(r2.ckpt_save_dir);
    }
}

TEST_CASE("matmul_precision bf16 trains close to fp32 and is undone after the run", "[train][bf16]")
{
    auto ds = std::make_shared<synthetic_set>(16);
    recipe r = tiny_recipe(fresh_dir("fp32"));
    train::trainer a(options(r, ds));
    a.run();
    recipe r16 = tiny_recipe(fresh_dir("bf16"));
    r16.matmul_precision = "bf16";
    if (!bf16_matmul_available()) {
        train::trainer b(options(r16, ds));
        REQUIRE_THROWS_WITH(b.run(), Catch::Contains("'matmul_precision'") && Catch::Contains("AVX512-BF16"));
        fs::remove_all(r.ckpt_save_dir);
        fs::remove_all(r16.ckpt_save_dir);
        return;
    }
    train::trainer b(options(r16, ds));
    b.run();
    CHECK(get_matmul_precision() == matmul_precision::fp32);  // the run's setting does not leak
    auto wa = weights_of(a), wb = weights_of(b);
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < wa.size(); ++i)
        for (std::size_t j = 0; j < wa[i].size(); ++j) {
            diff += (wa[i][j] - wb[i][j]) * static_cast<double>(wa[i][j] - wb[i][j]);
            norm += wa[i][j] * static_cast<double>(wa[i][j]);
        }
    CHECK(diff > 0);                           // the products ran in bf16
    CHECK(std::sqrt(diff / norm) < 0.02);      // ... and training followed the fp32 run
    fs::remove_all(r.ckpt_save_dir);
    fs::remove_all(r16.ckpt_save_dir);
}

TEST_CASE("a partial temp file from a killed writer never replaces the last good checkpoint", "[train]")
{
    auto ds = std::make_shared<synthetic_set>(16);
    recipe r = tiny_recipe(fresh_dir("killed"));
    auto o = options(r, ds);
    o.stop_after_epochs = 1;
    train::trainer(o).run();
    const std::string good = train::checkpoint_path(r.ckpt_save_dir, r.model, 1);
    REQUIRE(fs::exists(good));
    // What a writer killed mid-write leaves behind: a truncated temp file next to the real one.
    {
        std::ifstream in(good, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), {});
        std::ofstream(good + ".tmp.999.0", std::ios::binary) << bytes.substr(0, bytes.size() / 3);
        std::ofstream(train::checkpoint_path(r.ckpt_save_dir, r.model, 2) + ".tmp.999.1", std::ios::binary) << bytes.substr(0, 100);
    }
    auto all = train::list_checkpoints(r.ckpt_save_dir, r.model);
    REQUIRE(all.size() == 1);
    CHECK(all[0].second == good);
    auto o2 = options(r, ds);
    o2.resume = "auto";
    train::trainer resumed(o2);
    CHECK(resumed.run().epochs_done == 3);
    // A truncated checkpoint is reported with its path, not loaded.
    auto o3 = options(r, ds);
    o3.resume = good + ".tmp.999.0";
    REQUIRE_THROWS_WITH(train::trainer(o3).run(), Catch::Contains(".tmp.999.0"));
    fs::remove_all(r.ckpt_save_dir);
}

TEST_CASE("a NaN loss stops training with the step named and the last checkpoint intact", "[train]")
{
    recipe r = tiny_recipe(fresh_dir("nan"));
    auto ds = std::make_shared<synthetic_set>(16, /*nan_epoch=*/1, static_cast<std::uint64_t>(r.seed));
    train::trainer t(options(r, ds));
    REQUIRE_THROWS_WITH(t.run(), Catch::Contains("loss is nan") && Catch::Contains("epoch 2") &&
                                     Catch::Contains(train::checkpoint_path(r.ckpt_save_dir, r.model, 1)));
    convnextv2_model<float> m(train::model_config_of(r));
    REQUIRE_NOTHROW(io::load_weights(m.params(), train::checkpoint_path(r.ckpt_save_dir, r.model, 1)));
    fs::remove_all(r.ckpt_save_dir);
}

TEST_CASE("an unwritable output directory is a clear error before training", "[train]")
{
    recipe r = tiny_recipe("/proc/convnextv2_cannot_write_here");
    auto ds = std::make_shared<synthetic_set>(16);
    REQUIRE_THROWS_WITH(train::trainer(options(r, ds)), Catch::Contains("/proc/convnextv2_cannot_write_here"));
}

TEST_CASE("short real-data run on Fashion-MNIST: the loss decreases", "[train][data]")
{
    if (!fs::exists(default_fashion_mnist_dir())) {
        WARN("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); skipping the real-data run");
        return;
    }
    fashion_mnist_options fo;
    fo.limit = 512;
    fo.image_size = 32;
    auto train_set = std::make_shared<fashion_mnist_dataset>(fo);
    fo.split = "test";
    fo.limit = 256;
    auto test_set = std::make_shared<fashion_mnist_dataset>(fo);
    recipe r = tiny_recipe(fresh_dir("fmnist"));
    r.num_classes = 10;
    r.depths = {1, 1, 1, 1};
    r.dims = {8, 16, 16, 32};
    r.batch_size = 32;
    r.epoch_size = 4;
    r.ema = false;
    r.drop_path_rate = 0;
    r.lr = 4e-3;
    r.layer_decay = 1.0;
    auto o = options(r, train_set);
    o.val_set = test_set;
    train::trainer t(o);
    auto s = t.run();
    std::ifstream m(t.metrics_path());
    std::vector<double> losses;
    for (std::string l; std::getline(m, l);) losses.push_back(nlohmann::json::parse(l)["train_loss"].get<double>());
    REQUIRE(losses.size() == 4);
    CHECK(losses.back() < losses.front() * 0.8);
    CHECK(s.final_eval.top1 > 30.0);  // 10 classes: chance is 10%
    fs::remove_all(r.ckpt_save_dir);
}

TEST_CASE("flip test-time augmentation averages the probabilities of each image and its mirror", "[train]")
{
    tensor<float> a({1, 1, 3, 2}), f;
    for (index_t i = 0; i < 6; ++i) a.data()[i] = static_cast<float>(i);
    train::hflip_batch(a, f);
    CHECK(std::vector<float>(f.begin(), f.end()) == std::vector<float>{4, 5, 2, 3, 0, 1});

    recipe r = tiny_recipe(fresh_dir("tta"));
    convnextv2_model<float> m(train::model_config_of(r));
    synthetic_set ds(12);
    const index_t n = ds.size(), K = 4;
    // One batch holding every sample, as the manual computation below.
    auto plain = train::evaluate(m, ds, n);
    auto tta = train::evaluate(m, ds, n, nullptr, true);
    CHECK_FALSE(plain.has_hflip);
    REQUIRE(tta.has_hflip);
    CHECK(tta.top1 == plain.top1);
    CHECK(tta.loss == plain.loss);

    tensor<float> x({n, 32, 32, 1}), xf({n, 32, 32, 1}), z, zf;
    std::vector<int> labels(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) ds.get(i, 0, false, x.data() + i * 32 * 32, &labels[static_cast<std::size_t>(i)]);
    for (index_t i = 0; i < n; ++i)
        for (index_t h = 0; h < 32; ++h)
            for (index_t w = 0; w < 32; ++w) xf.data()[(i * 32 + h) * 32 + w] = x.data()[(i * 32 + h) * 32 + 31 - w];
    m.set_training(false);
    m.forward(x, z);
    m.forward(xf, zf);
    double loss = 0;
    int hits = 0;
    bool differs = false;  // the mirror must change some prediction's probabilities, or the test proves nothing
    for (index_t i = 0; i < n; ++i) {
        std::vector<double> p(static_cast<std::size_t>(K), 0.0);
        for (const tensor<float>* t : {&z, &zf}) {
            double s = 0;
            for (index_t j = 0; j < K; ++j) s += std::exp(static_cast<double>(t->data()[i * K + j]));
            for (index_t j = 0; j < K; ++j) p[static_cast<std::size_t>(j)] += 0.5 * std::exp(static_cast<double>(t->data()[i * K + j])) / s;
        }
        for (index_t j = 0; j < K; ++j) differs = differs || z.data()[i * K + j] != zf.data()[i * K + j];
        const int label = labels[static_cast<std::size_t>(i)];
        loss -= std::log(p[static_cast<std::size_t>(label)]);
        hits += std::max_element(p.begin(), p.end()) - p.begin() == label ? 1 : 0;
    }
    CHECK(differs);
    CHECK(tta.hflip_loss == Approx(loss / static_cast<double>(n)).epsilon(1e-9));
    CHECK(tta.hflip_top1 == Approx(100.0 * hits / static_cast<double>(n)));
    CHECK(tta.hflip_top5 == Approx(100.0));  // 4 classes: top-5 is every class
}

TEST_CASE("the summary reuses the last epoch's evaluation (flip pass included) of the weights it reports", "[train]")
{
    auto ds = std::make_shared<synthetic_set>(16);
    for (bool ema : {false, true}) {
        CAPTURE(ema);
        recipe r = tiny_recipe(fresh_dir(ema ? "final_eval_ema" : "final_eval_plain"));
        r.ema = ema;
        r.tta_hflip = true;
        r.epoch_size = 2;
        r.val_interval = 1;
        train::trainer t(options(r, ds));
        const auto s = t.run();
        REQUIRE(s.epochs_done == 2);
        REQUIRE(s.final_eval.has_hflip);
        CHECK(s.final_is_ema == ema);
        // A fresh evaluation of the same weights after the run gives the summary's numbers.
        if (ema) t.ema()->swap_into(t.model().params());
        const auto again = train::evaluate(t.model(), *ds, recipe_eval_batch_size(r), nullptr, true);
        CHECK(again.count == s.final_eval.count);
        CHECK(again.top1 == s.final_eval.top1);
        CHECK(again.loss == s.final_eval.loss);
        CHECK(again.hflip_top1 == s.final_eval.hflip_top1);
        CHECK(again.hflip_loss == s.final_eval.hflip_loss);
        // The metrics file's last row holds the plain numbers of that evaluation.
        std::ifstream m(t.metrics_path());
        nlohmann::json last;
        for (std::string l; std::getline(m, l);) last = nlohmann::json::parse(l);
        CHECK(last[ema ? "ema_val_loss" : "val_loss"].get<double>() == s.final_eval.loss);
        fs::remove_all(r.ckpt_save_dir);
    }
}
