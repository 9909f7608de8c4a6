// Builds atto from the installed headers, runs one forward pass and checks the output shape.
#include <convnextv2/convnextv2.hpp>

#include <cstdio>

int main()
{
    using namespace convnextv2;
    convnextv2_model<float> model(variant_config("convnextv2_atto", 10));
    tensor<float> x({1, 32, 32, 3}, 0.1f), logits;
    model.forward(x, logits);
    std::printf("consumer: %ld parameters, logits %s\n", (long)model.num_params(), to_string(logits.shape()).c_str());
    return logits.shape() == shape_t{1, 10} && model.num_params() == parameter_count(model.config()) ? 0 : 1;
}
