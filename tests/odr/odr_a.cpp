#include <catch2/catch.hpp>
#include <convnextv2/convnextv2.hpp>

int odr_b_param_count();

TEST_CASE("two translation units including convnextv2.hpp link together", "[odr]")
{
    convnextv2::convnextv2_model<float> m(convnextv2::variant_config("atto", 10));
    REQUIRE(odr_b_param_count() == m.num_params());
}
