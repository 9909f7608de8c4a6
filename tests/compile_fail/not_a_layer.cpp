// Must NOT compile: a struct without backward() in a sequential<> gives one readable message.
#include <convnextv2/compose/sequential.hpp>
#include <convnextv2/layers/linear.hpp>

struct half_layer {
    using scalar_type = float;
    convnextv2::shape_t setup(const convnextv2::shape_t& s) { return s; }
    void forward(const convnextv2::tensor<float>& x, convnextv2::tensor<float>& y) { y = x; }
    void collect_params(convnextv2::param_list<float>&, const std::string&) {}
};

int main()
{
    convnextv2::sequential<convnextv2::linear<float>, half_layer> s;
    (void)s;
}
