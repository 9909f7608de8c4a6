#include <convnextv2/convnextv2.hpp>

int odr_b_param_count()
{
    convnextv2::convnextv2_model<float> m(convnextv2::variant_config("atto", 10));
    return static_cast<int>(m.num_params());
}
