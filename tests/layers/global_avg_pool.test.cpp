#include <convnextv2/layers/global_avg_pool.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

#include <array>

using namespace convnextv2;

TEST_CASE("global_avg_pool kernels equal their _ref twins", "[kernels][pooling]")
{
    for (auto [N, S, C] : {std::array<index_t, 3>{1, 1, 1}, {2, 49, 17}, {3, 6, 130}, {1, 3136, 3}}) {
        CAPTURE(N, S, C);
        auto x = test::random_tensor<float>({N, S, C}, 7);
        auto dy = test::random_tensor<float>({N, C}, 8);
        tensor<float> y({N, C}), yr({N, C});
        kernels::global_avg_pool_fwd(x.data(), N, S, C, y.data());
        kernels::global_avg_pool_fwd_ref(x.data(), N, S, C, yr.data());
        REQUIRE(test::max_abs_diff(y, yr) < 1e-6);
        tensor<float> dx({N, S, C}, 0.5f), dxr({N, S, C}, 0.5f);
        kernels::global_avg_pool_bwd(dy.data(), N, S, C, dx.data());
        kernels::global_avg_pool_bwd_ref(dy.data(), N, S, C, dxr.data());
        REQUIRE(test::max_abs_diff(dx, dxr) < 1e-6);
    }
}

TEST_CASE("global_avg_pool: shapes and a hand-computed mean", "[layers][global_avg_pool]")
{
    global_avg_pool<float> p;
    REQUIRE(p.setup({2, 3, 5, 4}) == shape_t{2, 4});
    // 1x2x2x2: channel 0 = 1, 2, 3, 4 -> 2.5; channel 1 = -1, 0, 0, 5 -> 1
    tensor<float> x({1, 2, 2, 2}), y;
    const float xv[8] = {1, -1, 2, 0, 3, 0, 4, 5};
    std::copy(xv, xv + 8, x.data());
    p.setup(x.shape());
    p.forward(x, y);
    REQUIRE(y.shape() == shape_t{1, 2});
    REQUIRE(y[0] == 2.5f);
    REQUIRE(y[1] == 1.f);
    tensor<float> dy({1, 2}), dx(x.shape(), 0.f);
    dy[0] = 4.f;
    dy[1] = -8.f;
    p.backward(dy, &dx);
    for (index_t s = 0; s < 4; ++s) {
        REQUIRE(dx[s * 2 + 0] == 1.f);
        REQUIRE(dx[s * 2 + 1] == -2.f);
    }
}

TEST_CASE("global_avg_pool: gradient check", "[layers][global_avg_pool]")
{
    global_avg_pool<double> p;
    REQUIRE_GRADCHECK(testing::check_layer(p, {2, 3, 5, 7}));
    REQUIRE_GRADCHECK(testing::check_layer(p, {1, 1, 1, 3}));
}

TEST_CASE("global_avg_pool: backward accumulates into dx", "[layers][global_avg_pool]")
{
    global_avg_pool<float> p;
    p.setup({2, 3, 4, 5});
    auto x = test::random_tensor<float>({2, 3, 4, 5}, 1);
    auto dy = test::random_tensor<float>({2, 5}, 2);
    tensor<float> y, dx0(x.shape(), 0.f), dx1(x.shape(), 3.f);
    p.forward(x, y);
    p.backward(dy, &dx0);
    p.backward(dy, &dx1);
    for (index_t i = 0; i < x.size(); ++i) REQUIRE(dx1[i] == Approx(dx0[i] + 3.f).margin(1e-6));
    p.backward(dy, nullptr);  // no input gradient requested: fine
}

TEST_CASE("global_avg_pool: wrong shapes are clear errors", "[layers][global_avg_pool]")
{
    global_avg_pool<float> p;
    REQUIRE_THROWS_WITH(p.setup({4, 7}), Catch::Contains("global_avg_pool") && Catch::Contains("(4, 7)"));
    p.setup({1, 2, 2, 3});
    tensor<float> x({2, 3}), y;
    REQUIRE_THROWS_WITH(p.forward(x, y), Catch::Contains("rank-4"));
}
