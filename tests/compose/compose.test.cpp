#include <convnextv2/compose/repeat.hpp>
#include <convnextv2/compose/residual.hpp>
#include <convnextv2/compose/sequential.hpp>
#include <convnextv2/layers/linear.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("sequential, residual and repeat derive a correct backward", "[compose]")
{
    using mlp = sequential<linear<double>, linear<double>>;
    residual<mlp> r;
    r.body.get<0>().out_features = 6;
    r.body.get<1>().out_features = 3;
    REQUIRE_GRADCHECK(testing::check_layer(r, {2, 2, 2, 3}));

    repeat<residual<mlp>> rep(std::vector<residual<mlp>>(3, r));
    REQUIRE_GRADCHECK(testing::check_layer(rep, {1, 2, 3, 3}));
}

TEST_CASE("composites name their parameters by path", "[compose]")
{
    sequential<linear<float>, linear<float>> s;
    s.names = {"pwconv1", "pwconv2"};
    s.get<0>().out_features = 8;
    s.get<1>().out_features = 2;
    s.setup({1, 1, 1, 2});
    repeat<decltype(s)> rep(std::vector<decltype(s)>(2, s));
    param_list<float> ps;
    rep.collect_params(ps, "stages.0");
    REQUIRE(ps.size() == 8);
    CHECK(ps[0].name == "stages.0.0.pwconv1.weight");
    CHECK(ps[7].name == "stages.0.1.pwconv2.bias");
}

TEST_CASE("residual rejects a body that changes the shape", "[compose]")
{
    residual<linear<float>> r;
    r.body.out_features = 5;
    REQUIRE_THROWS_WITH(r.setup({1, 2, 2, 3}), Catch::Contains("must equal its input"));
}
