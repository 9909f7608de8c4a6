// SPDX-License-Identifier: MIT
// Fuzz target: the float32 .npy reader used by `convnextv2 infer --input` (core/xtensor_interop.hpp).
#include "fuzz_common.hpp"

#include <convnextv2/core/xtensor_interop.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace convnextv2;
    fuzz::mem_file f(data, size);
    try {
        tensor<float> t = load_npy_f32(f.path);
        double s = 0;
        for (index_t i = 0; i < t.size(); ++i) s += static_cast<double>(t[i]);
        (void)s;
    } catch (const error& e) {
        fuzz::rejected(e);
    }
    return 0;
}
