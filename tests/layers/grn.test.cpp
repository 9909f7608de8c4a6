#include <convnextv2/layers/grn.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("grn: parameters, names, checkpoint shapes and zero init", "[layers][grn]")
{
    static_assert(is_layer_v<grn<float>>);
    grn<float> g;
    REQUIRE(g.setup({2, 7, 7, 12}) == shape_t{2, 7, 7, 12});
    param_list<float> ps;
    g.collect_params(ps, "stages.3.0.grn");
    REQUIRE(ps.size() == 2);
    CHECK(ps[0].name == "stages.3.0.grn.gamma");
    CHECK(ps[1].name == "stages.3.0.grn.beta");
    CHECK(ps[0].torch_shape == shape_t{1, 1, 1, 12});
    CHECK(ps[1].torch_shape == shape_t{1, 1, 1, 12});
    CHECK(ps[0].value->shape() == shape_t{12});
    CHECK(ps[0].grad->shape() == shape_t{12});
    for (float v : g.gamma) CHECK(v == 0.f);
    for (float v : g.beta) CHECK(v == 0.f);

    // Identity at init.
    auto x = test::random_tensor<float>({2, 7, 7, 12}, 1);
    tensor<float> y;
    g.forward(x, y);
    REQUIRE(test::max_abs_diff(x, y) == 0);
}

TEST_CASE("grn: rejects non-NHWC input", "[layers][grn]")
{
    grn<float> g;
    REQUIRE_THROWS_WITH(g.setup({4, 12}), Catch::Contains("grn: expected an NHWC input"));
    g.setup({1, 2, 2, 3});
    tensor<float> x({1, 2, 2, 5}), y;
    REQUIRE_THROWS_WITH(g.forward(x, y), Catch::Contains("grn: expected input"));
}

TEST_CASE("grn: gradient check with non-zero gamma/beta", "[layers][grn]")
{
    grn<double> g;  // check_layer fills gamma/beta with U(-0.5, 0.5)
    REQUIRE_GRADCHECK(testing::check_layer(g, {2, 3, 2, 5}));
    grn<double> one;  // 1x1 maps: G = |x|
    REQUIRE_GRADCHECK(testing::check_layer(one, {3, 1, 1, 4}));
}

TEST_CASE("grn: gradient check with an all-zero channel (G = 0)", "[layers][grn]")
{
    const shape_t s{2, 3, 3, 6};
    grn<double> g;
    g.setup(s);
    auto x = test::random_tensor<double>(s, 3);
    for (index_t n = 0; n < 2; ++n)
        for (index_t i = 0; i < 9; ++i) x[(n * 9 + i) * 6 + 1] = 0;  // channel 1 of every sample
    for (index_t i = 0; i < 9; ++i) x[i * 6 + 4] = 0;                 // channel 4 of sample 0
    testing::gradcheck_options o;
    o.param_scale = 1.0;
    auto r = testing::check_gradients(g, x, o);
    REQUIRE_GRADCHECK(r);
    REQUIRE(g.stats().G[1] == 0);
    REQUIRE(g.stats().G[4] == 0);
}

TEST_CASE("grn: dx accumulates", "[layers][grn]")
{
    const shape_t s{2, 4, 3, 9};
    grn<float> g;
    g.setup(s);
    param_list<float> ps;
    g.collect_params(ps, "");
    g.gamma = test::random_tensor<float>({9}, 7);
    g.beta = test::random_tensor<float>({9}, 8);
    auto x = test::random_tensor<float>(s, 1);
    auto dy = test::random_tensor<float>(s, 2);
    tensor<float> y, dx0(s, 0.f), dx1(s, 1.5f);
    g.forward(x, y);
    g.backward(dy, &dx0);
    g.backward(dy, &dx1);
    for (index_t i = 0; i < x.size(); ++i) REQUIRE(dx1[i] == Approx(dx0[i] + 1.5f).margin(1e-5));
}
