// SPDX-License-Identifier: MIT
// Fuzz target: the safetensors reader (io/safetensors.hpp), dtype conversion and the weight
// loader's name/shape matching (io/weights.hpp) against a tiny model.
#include "fuzz_common.hpp"

#include <convnextv2/io/safetensors.hpp>
#include <convnextv2/io/weights.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace convnextv2;
    static convnextv2_model<float> model(fuzz::tiny_config());
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        io::st_file f = io::read_safetensors_bytes(bytes, "fuzz.safetensors");
        std::size_t values = 0;
        for (const auto& kv : f.tensors)
            if (io::detail::float_dtype(kv.second.dtype)) values += io::to_float(kv.second).size();
        (void)values;
        for (bool ema : {false, true}) {
            io::load_options opt;
            opt.prefer_ema = ema;
            opt.strict = !ema;
            opt.skip_head = ema;
            try {
                io::load_weights_from(model.params(), io::model_view_of_checkpoint(f, ema), "fuzz.safetensors", opt);
            } catch (const error& e) {
                fuzz::rejected(e);
            }
        }
    } catch (const error& e) {
        fuzz::rejected(e);
    }
    return 0;
}
