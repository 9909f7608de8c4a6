#include <convnextv2/models/convnextv2.hpp>
#include <support/fixtures.hpp>

#include <map>

using namespace convnextv2;

TEST_CASE("exact parameter counts of all eight variants (SPEC §2)", "[models]")
{
    const std::vector<std::pair<std::string, index_t>> expected = {
        {"atto", 3708400},     {"femto", 5233240},    {"pico", 9066280},      {"nano", 15623800},
        {"tiny", 28635496},    {"base", 88717800},    {"large", 197956840},   {"huge", 660289640}};
    for (auto& [name, count] : expected) {
        CAPTURE(name);
        CHECK(parameter_count(variant_config(name)) == count);
    }
    // The built models agree with the formula and have the official tensor counts (20 + 10·Σdepths).
    for (std::string name : {"atto", "femto", "pico", "nano", "tiny"}) {
        CAPTURE(name);
        convnextv2_model<float> m(variant_config(name));
        CHECK(m.num_params() == parameter_count(m.config()));
        int blocks = 0;
        for (int d : m.config().depths) blocks += d;
        CHECK(m.params().size() == static_cast<std::size_t>(20 + 10 * blocks));
    }
}

TEST_CASE("official parameter names and shapes", "[models]")
{
    convnextv2_model<float> m(variant_config("atto", 10));
    std::map<std::string, shape_t> by_name;
    for (auto& p : m.params()) by_name[p.name] = p.torch_shape;
    CHECK(by_name.at("downsample_layers.0.0.weight") == shape_t{40, 3, 4, 4});
    CHECK(by_name.at("downsample_layers.0.1.weight") == shape_t{40});
    CHECK(by_name.at("downsample_layers.1.0.weight") == shape_t{40});
    CHECK(by_name.at("downsample_layers.1.1.weight") == shape_t{80, 40, 2, 2});
    CHECK(by_name.at("stages.2.5.dwconv.weight") == shape_t{160, 1, 7, 7});
    CHECK(by_name.at("stages.2.5.pwconv1.weight") == shape_t{640, 160});
    CHECK(by_name.at("stages.2.5.grn.gamma") == shape_t{1, 1, 1, 640});
    CHECK(by_name.at("stages.3.1.pwconv2.bias") == shape_t{320});
    CHECK(by_name.at("norm.weight") == shape_t{320});
    CHECK(by_name.at("head.weight") == shape_t{10, 320});
}

TEST_CASE("multiply-accumulates at 224 match SPEC §2", "[models]")
{
    CHECK(count_macs(variant_config("atto"), 224).total() / 1e9 == Approx(0.547).margin(0.0015));
    CHECK(count_macs(variant_config("tiny"), 224).total() / 1e9 == Approx(4.456).margin(0.0015));
    CHECK(count_macs(variant_config("huge"), 224).total() / 1e9 == Approx(114.922).margin(0.0015));
    // Sides the strides do not divide shrink as in PyTorch: 227 -> 56, 28, 14, 7 (as 224).
    CHECK(count_macs(variant_config("atto"), 227).total() == count_macs(variant_config("atto"), 224).total());
}

TEST_CASE("forward shapes, stage outputs, and input errors", "[models]")
{
    convnextv2_model<float> m(variant_config("atto", 7));
    auto x = test::random_tensor<float>({2, 64, 32, 3}, 1);
    tensor<float> y;
    m.forward(x, y);
    CHECK(y.shape() == shape_t{2, 7});
    CHECK(m.features().shape() == shape_t{2, 320});
    CHECK(m.stage_output(0).shape() == shape_t{2, 16, 8, 40});
    CHECK(m.stage_output(3).shape() == shape_t{2, 2, 1, 320});
    // 40x32 is fine (PyTorch floors: 10x8, 5x4, 2x2, 1x1); below the total stride is an error.
    tensor<float> odd = test::random_tensor<float>({1, 40, 32, 3}, 2);
    m.forward(odd, y);
    CHECK(m.stage_output(2).shape() == shape_t{1, 2, 2, 160});
    CHECK(m.stage_output(3).shape() == shape_t{1, 1, 1, 320});
    tensor<float> bad({1, 31, 32, 3});
    REQUIRE_THROWS_WITH(m.forward(bad, y), Catch::Contains("at least 32") && Catch::Contains("(1, 31, 32, 3)"));
    tensor<float> gray({1, 32, 32, 1});
    REQUIRE_THROWS_WITH(m.forward(gray, y), Catch::Contains("in_chans = 3"));
    REQUIRE_THROWS_WITH(variant_config("tinyy"), Catch::Contains("convnextv2_tiny"));
}

TEST_CASE("initialisation follows SPEC §1.7 and is reproducible", "[models]")
{
    model_config c = variant_config("atto", 10);
    c.head_init_scale = 0.001;
    convnextv2_model<float> a(c, 42), b(c, 42);
    for (std::size_t i = 0; i < a.params().size(); ++i) REQUIRE(test::max_abs_diff(*a.params()[i].value, *b.params()[i].value) == 0);
    double sum2 = 0;
    index_t n = 0;
    for (auto& p : a.params()) {
        if (p.name == "stages.2.0.pwconv1.weight")
            for (float v : *p.value) { sum2 += double(v) * v; ++n; }
        if (p.name == "stages.0.0.grn.gamma" || p.name == "stages.0.0.pwconv1.bias")
            for (float v : *p.value) REQUIRE(v == 0.f);
        if (p.name == "stages.0.0.norm.weight")
            for (float v : *p.value) REQUIRE(v == 1.f);
        if (p.name == "head.weight") {
            double s = 0;
            for (float v : *p.value) s += double(v) * v;
            CHECK(std::sqrt(s / p.value->size()) == Approx(0.02 * 0.001).epsilon(0.1));
        }
    }
    CHECK(std::sqrt(sum2 / n) == Approx(0.02).epsilon(0.02));
}
