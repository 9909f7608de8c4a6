#include <convnextv2/layers/gelu.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("gelu: layer contract and no parameters", "[layers][gelu]")
{
    static_assert(is_layer_v<gelu<float>>);
    gelu<float> g;
    REQUIRE(g.setup({2, 5, 5, 12}) == shape_t{2, 5, 5, 12});
    param_list<float> ps;
    g.collect_params(ps, "x");
    REQUIRE(ps.empty());
}

TEST_CASE("gelu: gradient check", "[layers][gelu]")
{
    gelu<double> g;
    testing::gradcheck_options o;
    REQUIRE_GRADCHECK(testing::check_layer(g, {2, 3, 3, 4}, o));
    gelu<double> v;
    REQUIRE_GRADCHECK(testing::check_layer(v, {3, 9}, o));
}

TEST_CASE("gelu: dx accumulates", "[layers][gelu]")
{
    gelu<float> g;
    g.setup({2, 3, 3, 5});
    auto x = test::random_tensor<float>({2, 3, 3, 5}, 1, -3, 3);
    auto dy = test::random_tensor<float>({2, 3, 3, 5}, 2);
    tensor<float> y, dx0(x.shape(), 0.f), dx1(x.shape(), -2.f);
    g.forward(x, y);
    g.backward(dy, &dx0);
    g.backward(dy, &dx1);
    for (index_t i = 0; i < x.size(); ++i) REQUIRE(dx1[i] == Approx(dx0[i] - 2.f).margin(1e-6));
}
