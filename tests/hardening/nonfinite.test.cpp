// check_finite: a NaN/Inf loss names the first layer whose output is not finite (official
// names), the input batch when that is where it starts, and the parameters holding NaN/Inf.
#include <convnextv2/train/trainer.hpp>
#include <support/fixtures.hpp>
#include <support/train_fixtures.hpp>

#include <filesystem>
#include <limits>

using namespace convnextv2;
namespace fs = std::filesystem;

namespace {

model_config small_config()
{
    model_config c;
    c.depths = {1, 1, 2, 1};
    c.dims = {4, 8, 8, 8};
    c.in_chans = 1;
    c.num_classes = 4;
    return c;
}

void poison(param_list<float>& params, const std::string& name, float v)
{
    for (auto& p : params)
        if (p.name == name) { (*p.value)[p.value->size() / 2] = v; return; }
    FAIL("no parameter " << name);
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

} // namespace

TEST_CASE("locate_non_finite names the first non-finite layer output by its official name", "[nonfinite]")
{
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    struct probe_case {
        const char* param;
        float value;
        const char* layer;
    };
    for (const probe_case& pc : {probe_case{"stages.2.1.grn.gamma", nan, "stages.2.1.grn"},
                                 probe_case{"downsample_layers.1.1.weight", nan, "downsample_layers.1.1"},
                                 probe_case{"stages.0.0.pwconv1.weight", inf, "stages.0.0.pwconv1"},
                                 probe_case{"downsample_layers.0.1.bias", nan, "downsample_layers.0.1"},
                                 probe_case{"head.bias", inf, "head"}}) {
        CAPTURE(pc.param);
        convnextv2_model<float> m(small_config(), 1);
        m.set_training(true);
        auto x = test::random_tensor<float>({2, 32, 32, 1}, 3);
        tensor<float> logits;
        m.forward(x, logits);
        for (float v : logits) REQUIRE(std::isfinite(v));
        REQUIRE(train::locate_non_finite(m, x).text().find("every activation is finite") != std::string::npos);
        poison(m.params(), pc.param, pc.value);
        auto rep = train::locate_non_finite(m, x);
        CHECK(rep.input_finite);
        CHECK(rep.first_bad_layer == pc.layer);
        REQUIRE(rep.bad_params.size() == 1);
        CHECK(rep.bad_params[0] == pc.param);
        // The probe is the model's own forward, layer by layer: the logits agree.
        m.forward(x, logits);
        bool any_bad = false;
        for (float v : logits) any_bad = any_bad || !std::isfinite(v);
        CHECK(any_bad);
    }
}

TEST_CASE("a NaN weight stops training with the step and the first non-finite layer named", "[nonfinite][train]")
{
    test::temp_dir dir("convnextv2_nonfinite");
    recipe r = test::tiny_recipe(dir / "run");
    r.depths = {1, 1, 2, 1};
    auto ds = std::make_shared<test::synthetic_set>(16);
    {
        train::trainer t(options(r, ds));
        poison(t.model().params(), "stages.2.1.grn.gamma", std::numeric_limits<float>::quiet_NaN());
        REQUIRE_THROWS_WITH(t.run(), Catch::Contains("loss is nan at epoch 1, step 1") &&
                                         Catch::Contains("first non-finite activation: output of 'stages.2.1.grn'") &&
                                         Catch::Contains("non-finite parameters: stages.2.1.grn.gamma"));
    }
    {
        r.check_finite = false;  // the option switches the re-run off
        train::trainer t(options(r, ds));
        poison(t.model().params(), "stages.2.1.grn.gamma", std::numeric_limits<float>::quiet_NaN());
        REQUIRE_THROWS_WITH(t.run(), Catch::Contains("loss is nan at epoch 1, step 1") && !Catch::Contains("stages.2.1.grn"));
    }
}

TEST_CASE("a NaN pixel is reported as a non-finite input batch, not as a layer", "[nonfinite][train]")
{
    test::temp_dir dir("convnextv2_nonfinite_input");
    recipe r = test::tiny_recipe(dir / "run");
    auto ds = std::make_shared<test::synthetic_set>(16, /*nan_epoch=*/0, static_cast<std::uint64_t>(r.seed));
    train::trainer t(options(r, ds));
    REQUIRE_THROWS_WITH(t.run(), Catch::Contains("loss is nan at epoch 1") && Catch::Contains("the input batch has non-finite values"));
}
