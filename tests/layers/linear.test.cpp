#include <convnextv2/layers/linear.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("linear: gradient check on NHWC sites and on vectors", "[layers][linear]")
{
    linear<double> l(5);
    REQUIRE_GRADCHECK(testing::check_layer(l, {2, 3, 2, 4}));
    linear<double> v(3);
    REQUIRE_GRADCHECK(testing::check_layer(v, {4, 7}));
}

TEST_CASE("linear: wrong input width is a clear error", "[layers][linear]")
{
    linear<float> l(4);
    l.setup({1, 2, 2, 3});
    tensor<float> x({1, 2, 2, 5}), y;
    REQUIRE_THROWS_WITH(l.forward(x, y), Catch::Contains("expected last axis 3"));
}
