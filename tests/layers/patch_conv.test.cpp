#include <convnextv2/layers/patch_conv.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("patch_conv: gradient check for stem (k=4) and downsample (k=2)", "[layers][patch_conv]")
{
    testing::gradcheck_options o;
    o.max_checks_per_tensor = 200;
    patch_conv<double> stem(5, 4);
    REQUIRE_GRADCHECK(testing::check_layer(stem, {2, 8, 4, 3}, o));
    patch_conv<double> down(7, 2);
    REQUIRE_GRADCHECK(testing::check_layer(down, {1, 4, 6, 5}, o));
    patch_conv<double> one(1, 2);
    REQUIRE_GRADCHECK(testing::check_layer(one, {1, 2, 2, 1}, o));
    // sides the kernel does not divide: the last row/column is dropped (nn.Conv2d floors)
    patch_conv<double> odd_stem(3, 4);
    REQUIRE_GRADCHECK(testing::check_layer(odd_stem, {2, 9, 6, 2}, o));
    patch_conv<double> odd_down(4, 2);
    REQUIRE_GRADCHECK(testing::check_layer(odd_down, {1, 7, 5, 3}, o));
}

TEST_CASE("patch_conv: sides not divisible by k match the naive reference; dropped sites get no gradient", "[layers][patch_conv]")
{
    const shape_t s{2, 9, 14, 3};  // k = 4: output 2 x 3; row 8 and columns 12, 13 are past the last window
    patch_conv<float> l(5, 4);
    REQUIRE(l.setup(s) == shape_t{2, 2, 3, 5});
    l.weight = test::random_tensor<float>({5, 4, 4, 3}, 3);
    l.bias = test::random_tensor<float>({5}, 4);
    auto x = test::random_tensor<float>(s, 1);
    tensor<float> y, yr({2, 2, 3, 5}, 0.f);
    l.forward(x, y);
    REQUIRE(y.shape() == shape_t{2, 2, 3, 5});
    kernels::patch_conv_fwd_ref(x.data(), 2, 9, 14, 3, 4, l.weight.data(), l.bias.data(), 5, yr.data());
    CHECK(test::max_abs_diff(y, yr) < 1e-5);

    auto dy = test::random_tensor<float>({2, 2, 3, 5}, 2);
    tensor<float> dx(s, -1.f), dxr(s, -1.f);
    l.backward(dy, &dx);
    kernels::patch_conv_bwd_data_ref(dy.data(), 2, 9, 14, 3, 4, l.weight.data(), 5, dxr.data());
    CHECK(test::max_abs_diff(dx, dxr) < 1e-5);
    for (index_t n = 0; n < 2; ++n)
        for (index_t h = 0; h < 9; ++h)
            for (index_t w = 0; w < 14; ++w)
                if (h >= 8 || w >= 12)
                    for (index_t c = 0; c < 3; ++c) REQUIRE(dx[((n * 9 + h) * 14 + w) * 3 + c] == -1.f);
}

TEST_CASE("patch_conv: setup, parameter registration and layout", "[layers][patch_conv]")
{
    patch_conv<float> l(96, 4);
    REQUIRE(l.setup({2, 224, 224, 3}) == shape_t{2, 56, 56, 96});
    REQUIRE(l.weight.shape() == shape_t{96, 4, 4, 3});
    param_list<float> ps;
    l.collect_params(ps, "downsample_layers.0.0");
    REQUIRE(ps.size() == 2);
    REQUIRE(ps[0].name == "downsample_layers.0.0.weight");
    REQUIRE(ps[0].torch_shape == shape_t{96, 3, 4, 4});
    REQUIRE(ps[0].perm == std::vector<int>{0, 2, 3, 1});
    for (std::size_t i = 0; i < 4; ++i) REQUIRE(ps[0].value->shape()[i] == ps[0].torch_shape[ps[0].perm[i]]);
    REQUIRE(ps[1].name == "downsample_layers.0.0.bias");
    REQUIRE(ps[1].torch_shape == shape_t{96});
    patch_conv<float> d;
    d.out_channels = 192;
    d.kernel = 2;
    REQUIRE(d.setup({1, 56, 56, 96}) == shape_t{1, 28, 28, 192});
}

TEST_CASE("patch_conv: hand-computed output", "[layers][patch_conv]")
{
    // 1x2x4x2 input, k = 2, two output channels; output site j covers columns 2j, 2j+1.
    // channel o=0 weight: 1 at (kh=0,kw=0,c=0) and 1 at (1,1,1); o=1: all 0.5; bias (1, -1).
    patch_conv<float> l(2, 2);
    l.setup({1, 2, 4, 2});
    l.weight.zero();
    l.weight[((0 * 2 + 0) * 2 + 0) * 2 + 0] = 1.f;
    l.weight[((0 * 2 + 1) * 2 + 1) * 2 + 1] = 1.f;
    for (index_t i = 8; i < 16; ++i) l.weight[i] = 0.5f;
    l.bias[0] = 1.f;
    l.bias[1] = -1.f;
    tensor<float> x({1, 2, 4, 2}), y;
    for (index_t i = 0; i < 16; ++i) x[i] = static_cast<float>(i);  // x[h,w,c] = (h*4 + w)*2 + c
    l.forward(x, y);
    REQUIRE(y.shape() == shape_t{1, 1, 2, 2});
    // j=0: x[0,0,0] + x[1,1,1] + 1 = 0 + 11 + 1; j=1: x[0,2,0] + x[1,3,1] + 1 = 4 + 15 + 1
    REQUIRE(y[0] == 12.f);
    REQUIRE(y[2] == 20.f);
    // o=1: 0.5·(patch sum) − 1; patch j=0 = {0,1,2,3,8,9,10,11} = 44, j=1 = {4..7,12..15} = 76
    REQUIRE(y[1] == 21.f);
    REQUIRE(y[3] == 37.f);
}

TEST_CASE("patch_conv: backward accumulates into dx and parameter gradients", "[layers][patch_conv]")
{
    const shape_t s{2, 8, 12, 5};
    patch_conv<float> l(6, 4);
    l.setup(s);
    l.weight = test::random_tensor<float>({6, 4, 4, 5}, 3);
    l.bias = test::random_tensor<float>({6}, 4);
    auto x = test::random_tensor<float>(s, 1);
    auto dy = test::random_tensor<float>({2, 2, 3, 6}, 2);
    tensor<float> y, dx0(s, 0.f), dx1(s, -1.f);
    l.forward(x, y);
    l.weight_grad.zero();
    l.bias_grad.zero();
    l.backward(dy, &dx0);
    tensor<float> wg1 = l.weight_grad, bg1 = l.bias_grad;
    l.backward(dy, &dx1);  // a second backward without forward: patches are re-gathered from x
    for (index_t i = 0; i < dx0.size(); ++i) REQUIRE(dx1[i] == Approx(dx0[i] - 1.f).margin(1e-5));
    for (index_t i = 0; i < wg1.size(); ++i) REQUIRE(l.weight_grad[i] == Approx(2 * wg1[i]).margin(1e-4));
    for (index_t i = 0; i < bg1.size(); ++i) REQUIRE(l.bias_grad[i] == Approx(2 * bg1[i]).margin(1e-4));

    // and both equal the naive reference
    tensor<float> dxr(s, 0.f), dwr({6, 4, 4, 5}, 0.f), dbr({6}, 0.f);
    kernels::patch_conv_bwd_data_ref(dy.data(), 2, 8, 12, 5, 4, l.weight.data(), 6, dxr.data());
    kernels::patch_conv_bwd_weight_ref(dy.data(), x.data(), 2, 8, 12, 5, 4, 6, dwr.data(), dbr.data());
    REQUIRE(test::max_abs_diff(dx0, dxr) < 1e-5);
    REQUIRE(test::rel_l2(wg1, dwr) < 1e-5);
    REQUIRE(test::rel_l2(bg1, dbr) < 1e-5);
}

TEST_CASE("patch_conv: reuses its scratch once shapes are stable", "[layers][patch_conv]")
{
    const shape_t s{1, 8, 8, 3};
    patch_conv<float> l(4, 4);
    l.setup(s);
    auto x = test::random_tensor<float>(s, 1);
    tensor<float> y, dy({1, 2, 2, 4}, 1.f), dx(s, 0.f);
    l.forward(x, y);
    l.backward(dy, &dx);
    const float* yp = y.data();
    l.forward(x, y);
    l.backward(dy, &dx);
    REQUIRE(y.data() == yp);
}

TEST_CASE("patch_conv: wrong shapes are clear errors", "[layers][patch_conv]")
{
    patch_conv<float> l(8, 4);
    REQUIRE_THROWS_WITH(l.setup({1, 10, 3, 3}), Catch::Contains("patch_conv") && Catch::Contains("at least 4") &&
                                                   Catch::Contains("(1, 10, 3, 3)"));
    REQUIRE_THROWS_WITH(l.setup({8, 8, 3}), Catch::Contains("rank-4") && Catch::Contains("(8, 8, 3)"));
    patch_conv<float> none;
    none.out_channels = 0;
    REQUIRE_THROWS_WITH(none.setup({1, 8, 8, 3}), Catch::Contains("out_channels > 0"));
    l.setup({1, 8, 8, 3});
    tensor<float> x({1, 8, 8, 4}), y;
    REQUIRE_THROWS_WITH(l.forward(x, y), Catch::Contains("expected 3 input channels") && Catch::Contains("(1, 8, 8, 4)"));
    tensor<float> x2({1, 2, 6, 3});
    REQUIRE_THROWS_WITH(l.forward(x2, y), Catch::Contains("at least 4"));
    tensor<float> ok({1, 8, 8, 3}, 0.f), dy({1, 2, 3, 8}, 0.f);
    l.forward(ok, y);
    REQUIRE_THROWS_WITH(l.backward(dy, nullptr), Catch::Contains("backward expects dy of shape (1, 2, 2, 8)"));
}
