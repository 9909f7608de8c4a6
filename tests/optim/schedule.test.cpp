#include <convnextv2/optim/schedule.hpp>
#include <support/fixtures.hpp>

#include <cmath>

using namespace convnextv2;

TEST_CASE("schedule: SPEC 4.3 worked points", "[optim][schedule]")
{
    // Base fine-tuning: peak 2.5e-3, warmup 20, 100 epochs, min 1e-6.
    auto ft = [](double e) { return warmup_cosine_lr(e, 2.5e-3, 1e-6, 20, 100); };
    REQUIRE(ft(0) == 0.0);
    REQUIRE(ft(10) == Approx(1.25e-3).epsilon(1e-12));
    REQUIRE(ft(20) == Approx(2.5e-3).epsilon(1e-12));
    REQUIRE(ft(60) == Approx(1.2505e-3).epsilon(1e-12));
    REQUIRE(ft(100) == Approx(1e-6).epsilon(1e-12));
    REQUIRE(ft(120) == Approx(1e-6).epsilon(1e-12));
    // Pretraining base: peak 2.4e-3, warmup 40, 1600 epochs, min 0.
    auto pt = [](double e) { return warmup_cosine_lr(e, 2.4e-3, 0.0, 40, 1600); };
    REQUIRE(pt(20) == Approx(1.2e-3).epsilon(1e-12));
    REQUIRE(pt(820) == Approx(1.2e-3).epsilon(1e-12));
    REQUIRE(std::fabs(pt(1600)) < 1e-18);
    // Monotone within warmup and within the cosine part.
    REQUIRE(ft(19.5) < ft(20));
    REQUIRE(ft(60.5) < ft(60));
}

TEST_CASE("schedule: MindCV warmup_factor start and no-warmup case", "[optim][schedule]")
{
    // MindCV tiny: lr 2e-3, warmup 20 starting at lr·1.75e-5, cosine over decay_epochs 430 to 3e-7.
    const double start = 2e-3 * 1.75e-5;
    auto lr = [&](double e) { return warmup_cosine_lr(e, 2e-3, 3e-7, 20, 450, start); };
    REQUIRE(lr(0) == Approx(start).epsilon(1e-12));
    REQUIRE(lr(10) == Approx(start + (2e-3 - start) * 0.5).epsilon(1e-12));
    REQUIRE(lr(20) == Approx(2e-3).epsilon(1e-12));
    REQUIRE(lr(235) == Approx(3e-7 + (2e-3 - 3e-7) * 0.5).epsilon(1e-12));
    REQUIRE(lr(450) == Approx(3e-7).epsilon(1e-12));
    // Atto fine-tuning: warmup 0 starts at the peak.
    REQUIRE(warmup_cosine_lr(0, 8e-4, 1e-6, 0, 600) == Approx(8e-4));
}

TEST_CASE("schedule: layer-decay ids and scales, atto single", "[optim][schedule][layer_decay]")
{
    const std::vector<int> atto{2, 2, 6, 2};
    auto id = [&](const std::string& n) { return layer_id_single(n, atto); };
    REQUIRE(id("downsample_layers.0.0.weight") == 1);
    REQUIRE(id("downsample_layers.0.1.bias") == 1);
    REQUIRE(id("stages.0.0.dwconv.weight") == 1);
    REQUIRE(id("stages.0.1.grn.gamma") == 2);
    REQUIRE(id("downsample_layers.1.0.weight") == 3);
    REQUIRE(id("stages.1.0.pwconv1.weight") == 3);
    REQUIRE(id("stages.1.1.pwconv2.bias") == 4);
    REQUIRE(id("downsample_layers.2.1.weight") == 5);
    for (int b = 0; b < 6; ++b) REQUIRE(id("stages.2." + std::to_string(b) + ".norm.weight") == 5 + b);
    REQUIRE(id("downsample_layers.3.0.bias") == 11);
    REQUIRE(id("stages.3.0.dwconv.bias") == 11);
    REQUIRE(id("stages.3.1.dwconv.bias") == 12);
    REQUIRE(id("norm.weight") == 13);
    REQUIRE(id("head.weight") == 13);
    REQUIRE(id("head.bias") == 13);

    const int n = layer_decay_num_layers("single", atto);
    REQUIRE(n == 12);
    REQUIRE(layer_scale(1, n, 0.9) == Approx(0.2824).margin(5e-5));
    REQUIRE(layer_scale(2, n, 0.9) == Approx(0.3138).margin(5e-5));
    REQUIRE(layer_scale(12, n, 0.9) == Approx(0.9));
    REQUIRE(layer_scale(13, n, 0.9) == 1.0);
    REQUIRE(layer_decay_scale("stages.0.0.dwconv.weight", atto, 0.9) == Approx(std::pow(0.9, 12)));
    REQUIRE(layer_decay_scale("head.weight", atto, 0.9) == 1.0);
    REQUIRE(layer_decay_scale("stages.0.0.dwconv.weight", atto, 1.0) == 1.0);

    // Tiny: 18 blocks, head id 19, id1 scale 0.9^18.
    const std::vector<int> tiny{3, 3, 9, 3};
    REQUIRE(layer_id_single("head.bias", tiny) == 19);
    REQUIRE(layer_id_single("stages.3.2.pwconv1.weight", tiny) == 18);
    REQUIRE(layer_scale(1, layer_decay_num_layers("single", tiny), 0.9) == Approx(0.1501).margin(5e-5));

    REQUIRE_THROWS_WITH(layer_id_single("stages.x.0.weight", atto), Catch::Contains("stages.x.0.weight"));
    REQUIRE_THROWS_WITH(layer_id_single("stages.7.0.weight", atto), Catch::Contains("out of range"));
    REQUIRE_THROWS_WITH(layer_decay_num_layers("triple", atto), Catch::Contains("triple"));
}

TEST_CASE("schedule: layer-decay ids and scales, base group", "[optim][schedule][layer_decay]")
{
    const std::vector<int> base{3, 3, 27, 3};
    auto id = [&](const std::string& n) { return layer_id_group(n, base); };
    REQUIRE(id("downsample_layers.0.0.weight") == 0);
    REQUIRE(id("downsample_layers.1.0.weight") == 2);
    REQUIRE(id("downsample_layers.2.1.bias") == 3);
    REQUIRE(id("downsample_layers.3.1.weight") == 12);
    REQUIRE(id("stages.0.2.grn.beta") == 1);
    REQUIRE(id("stages.1.0.dwconv.weight") == 2);
    REQUIRE(id("stages.2.0.dwconv.weight") == 3);
    REQUIRE(id("stages.2.2.dwconv.weight") == 3);
    REQUIRE(id("stages.2.3.dwconv.weight") == 4);
    REQUIRE(id("stages.2.26.pwconv2.weight") == 11);
    REQUIRE(id("stages.3.1.norm.bias") == 12);
    REQUIRE(id("norm.bias") == 13);
    REQUIRE(id("head.weight") == 13);

    const int n = layer_decay_num_layers("group", base);
    REQUIRE(n == 12);
    const double want[14] = {0.001306, 0.002177, 0.003628, 0.006047, 0.01008, 0.0168, 0.02799,
                             0.04666,  0.07776,  0.1296,   0.216,    0.36,    0.6,    1.0};
    for (int i = 0; i <= 13; ++i) {
        INFO("id " << i);
        REQUIRE(layer_scale(i, n, 0.6) == Approx(want[i]).epsilon(2e-3));
    }
    // stage 2 block 5 → id 3 + ⌊5/3⌋ = 4 → 0.6^(13−4).
    REQUIRE(layer_decay_scale("stages.2.5.pwconv1.weight", base, 0.6, "group") == Approx(std::pow(0.6, 9)).epsilon(1e-12));
}

TEST_CASE("schedule: drop-path rates", "[optim][schedule][drop_path]")
{
    auto r = drop_path_rates({3, 3, 9, 3}, 0.2);
    REQUIRE(r.size() == 18);
    REQUIRE(r[0] == 0.0);
    REQUIRE(r[1] == Approx(0.011765).epsilon(1e-4));
    REQUIRE(r[2] == Approx(0.023529).epsilon(1e-4));
    REQUIRE(r[16] == Approx(0.188235).epsilon(1e-5));
    REQUIRE(r[17] == Approx(0.2));
    for (std::size_t k = 1; k < r.size(); ++k) REQUIRE(r[k] - r[k - 1] == Approx(0.2 / 17));
    REQUIRE(drop_path_rates({2, 2, 6, 2}, 0.0) == std::vector<double>(12, 0.0));
    REQUIRE(drop_path_rates({1, 0, 0, 0}, 0.3) == std::vector<double>{0.0});
}
