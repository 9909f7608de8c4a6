#include <convnextv2/layers/drop_path.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("drop_path: eval and rate 0 are the identity", "[layers][drop_path]")
{
    static_assert(is_layer_v<drop_path<float>>);
    const shape_t s{4, 3, 3, 5};
    auto x = test::random_tensor<float>(s, 1);
    auto dy = test::random_tensor<float>(s, 2);
    for (int mode = 0; mode < 2; ++mode) {
        drop_path<float> dp(mode == 0 ? 0.5 : 0.0);
        REQUIRE(!dp.training);                    // eval by default
        if (mode == 1) set_training(dp, true);    // via the generic detection helper
        REQUIRE(dp.setup(s) == s);
        tensor<float> y, dx(s, 1.f);
        dp.forward(x, y);
        REQUIRE(test::max_abs_diff(x, y) == 0);
        dp.backward(dy, &dx);
        for (index_t i = 0; i < x.size(); ++i) REQUIRE(dx[i] == dy[i] + 1.f);
    }
}

TEST_CASE("drop_path: keeps about 1 - rate of the samples, scaled by 1/p", "[layers][drop_path]")
{
    const index_t N = 20000;
    for (double rate : {0.1, 0.3, 0.7}) {
        CAPTURE(rate);
        drop_path<float> dp(rate);
        dp.set_training(true);
        dp.set_seed(42, 3);
        dp.set_step(11);
        dp.setup({N, 2});
        tensor<float> x({N, 2}, 1.f), y;
        dp.forward(x, y);
        index_t kept = 0;
        const float scale = static_cast<float>(1.0 / (1.0 - rate));
        for (index_t n = 0; n < N; ++n) {
            REQUIRE(y[2 * n] == y[2 * n + 1]);  // one decision per sample
            if (y[2 * n] != 0) {
                REQUIRE(y[2 * n] == scale);
                ++kept;
            }
            REQUIRE((y[2 * n] != 0) == dp.keeps(n));
        }
        const double frac = static_cast<double>(kept) / static_cast<double>(N);
        REQUIRE(std::fabs(frac - (1 - rate)) < 0.02);
    }
}

TEST_CASE("drop_path: decisions are a function of (seed, stream, step, n)", "[layers][drop_path]")
{
    const shape_t s{64, 2, 2, 3};
    auto x = test::random_tensor<float>(s, 1);
    auto run = [&](std::uint64_t seed, std::uint64_t stream, std::uint64_t step) {
        drop_path<float> dp(0.5);
        dp.set_training(true);
        dp.set_seed(seed, stream);
        dp.set_step(step);
        dp.setup(s);
        tensor<float> y;
        dp.forward(x, y);
        dp.forward(x, y);  // repeated forward at the same step: same decisions
        return y;
    };
    auto a = run(1, 2, 5);
    REQUIRE(test::max_abs_diff(a, run(1, 2, 5)) == 0);
    CHECK(test::max_abs_diff(a, run(1, 2, 6)) > 0);  // another step
    CHECK(test::max_abs_diff(a, run(1, 3, 5)) > 0);  // another stream (layer)
    CHECK(test::max_abs_diff(a, run(2, 2, 5)) > 0);  // another seed

    // Backward applies the forward's per-sample factors.
    drop_path<float> dp(0.5);
    dp.set_training(true);
    dp.set_seed(1, 2);
    dp.set_step(5);
    dp.setup(s);
    tensor<float> y, dx(s, 0.25f);
    dp.forward(x, y);
    auto dy = test::random_tensor<float>(s, 9);
    dp.backward(dy, &dx);
    const index_t per = x.size() / 64;
    for (index_t i = 0; i < x.size(); ++i) REQUIRE(dx[i] == 0.25f + dy[i] * dp.sample_scales()[static_cast<std::size_t>(i / per)]);
}

TEST_CASE("drop_path: gradient check in training, rate 0.5, batch 8", "[layers][drop_path]")
{
    drop_path<double> dp(0.5);
    dp.set_training(true);
    dp.set_seed(7, 1);
    dp.set_step(3);
    REQUIRE_GRADCHECK(testing::check_layer(dp, {8, 2, 2, 3}));
    index_t kept = 0;
    for (index_t n = 0; n < 8; ++n) kept += dp.keeps(n) ? 1 : 0;
    INFO("kept " << kept << " of 8");
    REQUIRE(kept > 0);  // the check covered both kept and dropped samples
    REQUIRE(kept < 8);
}

TEST_CASE("drop_path: rate 1 drops everything without dividing by zero", "[layers][drop_path]")
{
    drop_path<float> dp(1.0);
    dp.set_training(true);
    dp.setup({3, 4});
    auto x = test::random_tensor<float>({3, 4}, 1);
    tensor<float> y;
    dp.forward(x, y);
    for (float v : y) REQUIRE(v == 0.f);
    drop_path<float> bad(1.5);
    REQUIRE_THROWS_WITH(bad.setup({3, 4}), Catch::Contains("drop_path: rate"));
}

TEST_CASE("drop_path: forward_add equals forward followed by the skip add, bit for bit", "[layers][drop_path]")
{
    // residual<> uses forward_add; its product must be rounded before the add (no FMA), or the
    // fused pass would differ from the two-pass form in the last bit.
    const shape_t s{6, 5, 3, 37};  // odd sizes: vector body and scalar tails
    auto x = test::random_tensor<float>(s, 3);
    auto skip = test::random_tensor<float>(s, 4);
    for (double rate : {0.0, 0.3}) {
        for (bool training : {false, true}) {
            CAPTURE(rate, training);
            drop_path<float> dp(rate);
            dp.set_training(training);
            dp.set_seed(5, 1);
            dp.set_step(2);
            dp.setup(s);
            tensor<float> u, fused;
            dp.forward(x, u);
            const auto scales = dp.sample_scales();
            dp.forward_add(x, skip, fused);
            REQUIRE(dp.sample_scales() == scales);
            REQUIRE(fused.shape() == s);
            for (index_t i = 0; i < x.size(); ++i) REQUIRE(fused[i] == skip[i] + u[i]);
        }
    }
    drop_path<float> dp(0.3);
    tensor<float> y;
    REQUIRE_THROWS_WITH(dp.forward_add(x, test::random_tensor<float>({6, 5, 3, 36}, 1), y),
                        Catch::Contains("skip input") && Catch::Contains("must match"));
}
