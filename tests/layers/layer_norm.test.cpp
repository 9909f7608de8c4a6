#include <convnextv2/layers/layer_norm.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("layer_norm: parameters, names and init", "[layers][layer_norm]")
{
    layer_norm<float> ln;
    REQUIRE(ln.setup({2, 4, 4, 6}) == shape_t{2, 4, 4, 6});
    param_list<float> ps;
    ln.collect_params(ps, "stages.0.1.norm");
    REQUIRE(ps.size() == 2);
    CHECK(ps[0].name == "stages.0.1.norm.weight");
    CHECK(ps[1].name == "stages.0.1.norm.bias");
    CHECK(ps[0].torch_shape == shape_t{6});
    for (float v : ln.weight) CHECK(v == 1.f);
    for (float v : ln.bias) CHECK(v == 0.f);
    CHECK(ln.eps == 1e-6);
}

TEST_CASE("layer_norm: gradient check on NHWC sites and on vectors", "[layers][layer_norm]")
{
    layer_norm<double> ln;
    REQUIRE_GRADCHECK(testing::check_layer(ln, {2, 3, 2, 5}));
    layer_norm<double> v;
    REQUIRE_GRADCHECK(testing::check_layer(v, {4, 7}));
    layer_norm<double> one;  // a single site
    REQUIRE_GRADCHECK(testing::check_layer(one, {1, 1, 1, 3}));
}

TEST_CASE("layer_norm: dx accumulates", "[layers][layer_norm]")
{
    layer_norm<float> ln;
    ln.setup({2, 3, 3, 17});
    param_list<float> ps;
    ln.collect_params(ps, "");
    auto x = test::random_tensor<float>({2, 3, 3, 17}, 1);
    auto dy = test::random_tensor<float>({2, 3, 3, 17}, 2);
    tensor<float> y, dx0(x.shape(), 0.f), dx1(x.shape(), 3.f);
    ln.forward(x, y);
    ln.backward(dy, &dx0);
    ln.backward(dy, &dx1);
    for (index_t i = 0; i < x.size(); ++i) REQUIRE(dx1[i] == Approx(dx0[i] + 3.f).margin(1e-5));
    // Param grads accumulate too: two backwards = twice one.
    layer_norm<float> l2;
    l2.setup(x.shape());
    param_list<float> p2;
    l2.collect_params(p2, "");
    l2.forward(x, y);
    l2.backward(dy, nullptr);
    for (index_t i = 0; i < 17; ++i) REQUIRE(ln.weight_grad[i] == Approx(2 * l2.weight_grad[i]).margin(1e-5));
}

TEST_CASE("layer_norm: wrong input width is a clear error", "[layers][layer_norm]")
{
    layer_norm<float> ln;
    ln.setup({1, 2, 2, 3});
    tensor<float> x({1, 2, 2, 5}), y;
    REQUIRE_THROWS_WITH(ln.forward(x, y), Catch::Contains("expected last axis 3"));
}
