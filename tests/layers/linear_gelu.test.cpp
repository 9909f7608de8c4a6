#include <convnextv2/layers/gelu.hpp>
#include <convnextv2/layers/linear_gelu.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("linear_gelu: gradient check, one reduction chunk and several", "[layers][linear_gelu]")
{
    linear_gelu<double> small(5);
    REQUIRE_GRADCHECK(testing::check_layer(small, {2, 3, 2, 4}));
    // 2·24·24 = 1152 rows: past one 1024-row chunk, so dh is made block by block
    linear_gelu<double> big(3);
    REQUIRE_GRADCHECK(testing::check_layer(big, {2, 24, 24, 2}));
}

TEST_CASE("linear_gelu equals linear followed by gelu, forward and backward", "[layers][linear_gelu]")
{
    const shape_t s{4, 20, 20, 16};  // 1600 rows
    linear_gelu<float> fused(64);
    linear<float> lin(64);
    gelu<float> act;
    fused.setup(s);
    lin.setup(s);
    act.setup({4, 20, 20, 64});
    fused.weight = test::random_tensor<float>({64, 16}, 1);
    fused.bias = test::random_tensor<float>({64}, 2);
    lin.weight = fused.weight;
    lin.bias = fused.bias;
    param_list<float> pf, pl;
    fused.collect_params(pf, "pwconv1");
    lin.collect_params(pl, "pwconv1");
    REQUIRE(pf.size() == 2);
    REQUIRE(pf[0].name == "pwconv1.weight");
    REQUIRE(pf[1].name == "pwconv1.bias");

    const auto x = test::random_tensor<float>(s, 3);
    const auto dy = test::random_tensor<float>({4, 20, 20, 64}, 4);
    tensor<float> y, h, y_ref;
    fused.forward(x, y);
    lin.forward(x, h);
    act.forward(h, y_ref);
    REQUIRE(test::max_abs_diff(y, y_ref) < 1e-6);
    REQUIRE(test::max_abs_diff(fused.pre_activation(), h) < 1e-6);

    tensor<float> dx(s, 0.5f), dx_ref(s, 0.5f), dh({4, 20, 20, 64});
    zero_grads(pf);
    zero_grads(pl);
    fused.backward(dy, &dx);
    act.backward(dy, &dh, false);
    lin.backward(dh, &dx_ref);
    REQUIRE(test::rel_l2(dx, dx_ref) < 1e-6);
    REQUIRE(test::rel_l2(fused.weight_grad, lin.weight_grad) < 1e-6);
    REQUIRE(test::rel_l2(fused.bias_grad, lin.bias_grad) < 1e-6);
}

TEST_CASE("linear_gelu: wrong input width is a clear error", "[layers][linear_gelu]")
{
    linear_gelu<float> l(4);
    l.setup({1, 2, 2, 3});
    tensor<float> x({1, 2, 2, 5}), y;
    REQUIRE_THROWS_WITH(l.forward(x, y), Catch::Contains("linear_gelu: expected last axis 3"));
}
