// FCMAE pretraining loop: exact resume, outputs (metrics, plot, reconstructions, encoder export
// that the classifier loads), sparse == dense-masked losses, NaN stop.
#include <convnextv2/train/pretrainer.hpp>
#include <support/fixtures.hpp>
#include <support/train_fixtures.hpp>

#include <filesystem>
#include <fstream>

using namespace convnextv2;
namespace fs = std::filesystem;
using test::synthetic_set;

namespace {

recipe fcmae_recipe(const std::string& dir) { return test::tiny_fcmae_recipe(dir); }

train::pretrain_options options(const recipe& r, std::shared_ptr<const dataset> ds)
{
    train::pretrain_options o;
    o.r = r;
    o.verbose = false;
    o.train_set = ds;
    o.val_set = ds;
    return o;
}

template <class Mode>
std::vector<std::vector<float>> weights_of(train::pretrainer<Mode>& t)
{
    std::vector<std::vector<float>> w;
    for (auto& p : t.model().params()) w.emplace_back(p.value->begin(), p.value->end());
    return w;
}

std::vector<double> losses_in(const fs::path& metrics, const char* key)
{
    std::vector<double> v;
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) v.push_back(nlohmann::json::parse(line).at(key).get<double>());
    return v;
}

} // namespace

TEST_CASE("pretrain: resume equals the uninterrupted run bit for bit; outputs are written", "[train][fcmae]")
{
    auto ds = std::make_shared<synthetic_set>(16);
    for (int update_freq : {1, 2}) {
        CAPTURE(update_freq);
        test::temp_dir d1, d2;
        recipe r = fcmae_recipe(d1.path.string());
        r.update_freq = update_freq;
        train::pretrainer<sparse_sites> straight(options(r, ds));
        auto s1 = straight.run();
        REQUIRE(s1.epochs_done == 3);

        recipe r2 = fcmae_recipe(d2.path.string());
        r2.update_freq = update_freq;
        {
            auto o = options(r2, ds);
            o.stop_after_epochs = 1;
            REQUIRE(train::pretrainer<sparse_sites>(o).run().epochs_done == 1);
        }
        auto o = options(r2, ds);
        o.resume = "auto";
        train::pretrainer<sparse_sites> resumed(o);
        auto s2 = resumed.run();
        REQUIRE(s2.epochs_done == 3);
        auto a = weights_of(straight), b = weights_of(resumed);
        REQUIRE(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == b[i]);
        CHECK(losses_in(d1.path / "metrics.jsonl", "train_loss") == losses_in(d2.path / "metrics.jsonl", "train_loss"));
        CHECK(losses_in(d2.path / "metrics.jsonl", "val_loss").size() == 3);
        CHECK(fs::exists(d2.path / "metrics.svg"));
        CHECK(fs::exists(d2.path / "reconstruction-epoch2.png"));
        // The picture: 3 rows of 4 cells of 96 px (32 px zoomed 3x) plus 4 px gaps.
        image_u8 pic = decode_image_file((d2.path / "reconstruction.png").string());
        CHECK(pic.height == 3 * (96 + 4) + 4);
        CHECK(pic.width == 4 * (96 + 4) + 4);
        CHECK(train::list_checkpoints(d2.path.string(), train::pretrain_name(r2)).size() == 3);

        // The export: official dense names, loads into the classifier with only norm/head missing.
        REQUIRE(s2.encoder_path == resumed.encoder_path());
        model_config mc = train::model_config_of(r2);
        convnextv2_model<float> cls(mc, 1);
        io::load_options lo;
        lo.allow_missing_head = true;
        auto rep = io::load_weights(cls.params(), s2.encoder_path, lo);
        CHECK(rep.unexpected.empty());
        CHECK(rep.missing == std::vector<std::string>{"norm.weight", "norm.bias", "head.weight", "head.bias"});
        for (auto& p : cls.params())
            if (p.name == "stages.3.0.grn.gamma")
                for (auto& q : resumed.model().params())
                    if (q.name == "encoder.stages.3.0.grn.gamma") CHECK(std::vector<float>(p.value->begin(), p.value->end()) == std::vector<float>(q.value->begin(), q.value->end()));
    }
}

TEST_CASE("pretrain: the dense-masked emulation gives the sparse encoder's losses", "[train][fcmae]")
{
    auto ds = std::make_shared<synthetic_set>(16);
    test::temp_dir d1, d2;
    recipe r = fcmae_recipe(d1.path.string());
    r.epoch_size = 2;
    r.recon_images = 0;
    auto s = train::pretrainer<sparse_sites>(options(r, ds)).run();
    r.ckpt_save_dir = d2.path.string();
    r.encoder_mode = "dense_masked";
    auto m = train::run_pretrain(options(r, ds));
    CHECK(m.encoder_mode == "dense_masked");
    auto a = losses_in(d1.path / "metrics.jsonl", "train_loss"), b = losses_in(d2.path / "metrics.jsonl", "train_loss");
    REQUIRE(a.size() == 2);
    REQUIRE(b.size() == 2);
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == Approx(b[i]).epsilon(1e-4));
    CHECK(s.val_loss == Approx(m.val_loss).epsilon(1e-4));
}

TEST_CASE("pretrain: a NaN loss stops with the step named and the last checkpoint intact", "[train][fcmae]")
{
    auto ds = std::make_shared<synthetic_set>(16, /*nan_epoch=*/1, /*seed=*/3);
    test::temp_dir d;
    recipe r = fcmae_recipe(d.path.string());
    r.recon_images = 0;
    // Sample 3's NaN pixel is inside its visible patch or not depending on the mask; the norm-pix
    // target of its patch is NaN either way when it is masked, and the encoder sees it otherwise.
    CHECK_THROWS_WITH(train::pretrainer<sparse_sites>(options(r, ds)).run(), Catch::Contains("at epoch 2") && Catch::Contains("pretraining stopped"));
    auto ck = train::list_checkpoints(d.path.string(), train::pretrain_name(r));
    REQUIRE(ck.size() == 1);
    CHECK_NOTHROW(io::read_safetensors(ck.back().second));
}
