#include <convnextv2/models/convnextv2.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("whole-model backward (derived by composition) passes a gradient check in double", "[models][gradcheck]")
{
    model_config c;
    c.depths = {1, 1, 2, 1};
    c.dims = {4, 8, 8, 12};
    c.num_classes = 3;
    c.drop_path_rate = 0.3;
    convnextv2_model<double> m(c, 7);
    m.set_training(true);  // drop path active, decisions fixed for the step
    m.set_step(3);
    testing::gradcheck_options o;
    o.max_checks_per_tensor = 12;
    o.param_scale = 0.3;
    o.rtol = 1e-4;
    counter_rng rng(1, 2);
    tensor<double> x({2, 32, 64, 3});
    for (auto& v : x) v = rng.uniform(-1, 1);
    REQUIRE_GRADCHECK(testing::check_gradients(m.net(), x, o));
}
