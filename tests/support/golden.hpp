// Golden fixtures written by tools/make_golden.py and tools/make_fcmae_golden.py: the shared
// parameter formula (golden_param_value, identical to the Python one) and a safetensors reader.
#pragma once
#include <catch2/catch.hpp>
#include <convnextv2/io/safetensors.hpp>
#include <convnextv2/io/weights.hpp>
#include <convnextv2/models/variants.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>

namespace test {

using namespace convnextv2;


// Same formula as golden_param_value in tools/make_golden.py (values in PyTorch layout).
inline double golden_param_value(const std::string& name, const shape_t& shape, index_t i)
{
    auto ends_with = [&](const char* s) {
        std::string t(s);
        return name.size() >= t.size() && name.compare(name.size() - t.size(), t.size(), t) == 0;
    };
    int bytes = 0;
    for (unsigned char ch : name) bytes += ch;
    double s = std::sin(0.37 * static_cast<double>(i) + (bytes % 1000) * 0.001);
    if (ends_with("gamma") || ends_with("beta")) return 0.1 * s;
    if (shape.size() == 1 && ends_with("weight")) return 1.0 + 0.1 * s;
    if (ends_with("bias")) return 0.05 * s;
    index_t fan_in = 1;
    for (std::size_t d = 1; d < shape.size(); ++d) fan_in *= shape[d];
    return s / std::sqrt(static_cast<double>(fan_in));
}

template <class T>
void fill_golden_params(param_list<T>& params)
{
    for (auto& p : params) {
        std::vector<float> torch_values(static_cast<std::size_t>(numel(p.torch_shape)));
        for (std::size_t i = 0; i < torch_values.size(); ++i)
            torch_values[i] = static_cast<float>(golden_param_value(p.name, p.torch_shape, static_cast<index_t>(i)));
        io::permute_to_internal(torch_values.data(), p.torch_shape, p.perm, p.value->data());
    }
}

struct golden_fixture {
    io::st_file file;
    explicit golden_fixture(const std::string& name) : file(io::read_safetensors(std::string(CONVNEXTV2_TEST_DATA) + "/" + name)) {}
    tensor<float> get(const std::string& key) const
    {
        auto it = file.tensors.find(key);
        REQUIRE(it != file.tensors.end());
        tensor<float> t(it->second.shape.empty() ? shape_t{1} : it->second.shape);
        auto v = io::to_float(it->second);
        std::copy(v.begin(), v.end(), t.begin());
        return t;
    }
    // depths, dims, in_chans, stem_kernel from the metadata (no num_classes: FCMAE fixtures).
    model_config config_without_classes() const
    {
        model_config c;
        auto depths = nlohmann::json::parse(file.metadata.at("depths"));
        auto dims = nlohmann::json::parse(file.metadata.at("dims"));
        for (auto& d : depths) c.depths.push_back(d.get<int>());
        for (auto& d : dims) c.dims.push_back(d.get<index_t>());
        c.in_chans = std::stol(file.metadata.at("in_chans"));
        c.stem_kernel = std::stol(file.metadata.at("stem_kernel"));
        return c;
    }
    model_config config() const
    {
        model_config c = config_without_classes();
        c.num_classes = std::stol(file.metadata.at("num_classes"));
        return c;
    }
};

// Torch-layout gradient of a parameter (inverse of the internal permutation).
inline std::vector<float> torch_grad(const param_ref<float>& p)
{
    std::vector<float> out(static_cast<std::size_t>(p.grad->size()));
    io::permute_to_torch(p.grad->data(), p.torch_shape, p.perm, out.data());
    return out;
}

} // namespace test
