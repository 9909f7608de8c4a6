#include <convnextv2/layers/depthwise_conv.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("depthwise_conv7x7: gradient check including weight and bias", "[layers][depthwise_conv]")
{
    depthwise_conv7x7<double> l;
    testing::gradcheck_options o;
    o.max_checks_per_tensor = 200;
    REQUIRE_GRADCHECK(testing::check_layer(l, {2, 5, 4, 3}, o));
    depthwise_conv7x7<double> l2;
    REQUIRE_GRADCHECK(testing::check_layer(l2, {1, 4, 11, 19}, o));  // four-column path + channel tail
    depthwise_conv7x7<double> l3;
    REQUIRE_GRADCHECK(testing::check_layer(l3, {1, 1, 1, 1}, o));
}

TEST_CASE("depthwise_conv7x7: setup, parameter registration and layout", "[layers][depthwise_conv]")
{
    depthwise_conv7x7<float> l;
    REQUIRE(l.setup({2, 6, 5, 8}) == shape_t{2, 6, 5, 8});
    REQUIRE(l.weight.shape() == shape_t{7, 7, 1, 8});
    REQUIRE(l.bias.shape() == shape_t{8});
    param_list<float> ps;
    l.collect_params(ps, "stages.0.0.dwconv");
    REQUIRE(ps.size() == 2);
    REQUIRE(ps[0].name == "stages.0.0.dwconv.weight");
    REQUIRE(ps[0].torch_shape == shape_t{8, 1, 7, 7});
    REQUIRE(ps[0].perm == std::vector<int>{2, 3, 1, 0});
    for (std::size_t i = 0; i < 4; ++i) REQUIRE(ps[0].value->shape()[i] == ps[0].torch_shape[ps[0].perm[i]]);
    REQUIRE(ps[1].name == "stages.0.0.dwconv.bias");
    REQUIRE(ps[1].torch_shape == shape_t{8});
    REQUIRE(ps[0].grad->shape() == l.weight.shape());
}

TEST_CASE("depthwise_conv7x7: backward accumulates into dx and parameter gradients", "[layers][depthwise_conv]")
{
    const shape_t s{2, 6, 9, 17};
    depthwise_conv7x7<float> l;
    l.setup(s);
    l.weight = test::random_tensor<float>({7, 7, 1, 17}, 3);
    l.bias = test::random_tensor<float>({17}, 4);
    auto x = test::random_tensor<float>(s, 1);
    auto dy = test::random_tensor<float>(s, 2);
    tensor<float> y, dx0(s, 0.f), dx1(s, 2.f);
    l.forward(x, y);
    l.weight_grad.zero();
    l.bias_grad.zero();
    l.backward(dy, &dx0);
    tensor<float> wg1 = l.weight_grad, bg1 = l.bias_grad;
    l.backward(dy, &dx1);
    for (index_t i = 0; i < dx0.size(); ++i) REQUIRE(dx1[i] == Approx(dx0[i] + 2.f).margin(1e-5));
    for (index_t i = 0; i < wg1.size(); ++i) REQUIRE(l.weight_grad[i] == Approx(2 * wg1[i]).margin(1e-4));
    for (index_t i = 0; i < bg1.size(); ++i) REQUIRE(l.bias_grad[i] == Approx(2 * bg1[i]).margin(1e-4));
    l.backward(dy, nullptr);  // parameter gradients only
}

TEST_CASE("depthwise_conv7x7: forward matches the naive reference", "[layers][depthwise_conv]")
{
    const shape_t s{1, 7, 7, 3};
    depthwise_conv7x7<float> l;
    l.setup(s);
    l.weight = test::random_tensor<float>({7, 7, 1, 3}, 5);
    l.bias = test::random_tensor<float>({3}, 6);
    auto x = test::random_tensor<float>(s, 7);
    tensor<float> y, yr(s);
    l.forward(x, y);
    kernels::dwconv7x7_fwd_ref(x.data(), 1, 7, 7, 3, l.weight.data(), l.bias.data(), yr.data());
    REQUIRE(test::max_abs_diff(y, yr) < 1e-5);
}

TEST_CASE("depthwise_conv7x7: wrong shapes are clear errors", "[layers][depthwise_conv]")
{
    depthwise_conv7x7<float> l;
    REQUIRE_THROWS_WITH(l.setup({4, 9, 3}), Catch::Contains("depthwise_conv7x7") && Catch::Contains("rank-4") &&
                                                Catch::Contains("(4, 9, 3)"));
    l.setup({1, 4, 4, 8});
    tensor<float> x({1, 4, 4, 6}), y;
    REQUIRE_THROWS_WITH(l.forward(x, y), Catch::Contains("8 channels") && Catch::Contains("(1, 4, 4, 6)"));
    tensor<float> x2({4, 4, 8});
    REQUIRE_THROWS_WITH(l.forward(x2, y), Catch::Contains("depthwise_conv7x7"));
    tensor<float> ok({1, 4, 4, 8}, 0.f), dy({1, 4, 5, 8}, 0.f);
    l.forward(ok, y);
    REQUIRE_THROWS_WITH(l.backward(dy, nullptr), Catch::Contains("backward expects dy of shape (1, 4, 4, 8)"));
}
