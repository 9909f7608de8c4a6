// SPDX-License-Identifier: MIT
// Fuzz target: the training-checkpoint loader (train/checkpoint.hpp): safetensors file, tensor
// names and shapes of the model, EMA and AdamW moments, and the metadata (epoch, steps, recipe,
// history) against a tiny model. A rejected file must leave the trainer's state untouched.
#include "fuzz_common.hpp"

#include <convnextv2/train/checkpoint.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace convnextv2;
    static convnextv2_model<float> model(fuzz::tiny_config());
    static adamw<float> opt(model.params());
    static model_ema<float> ema(model.params());
    static const std::vector<float> before = [] {
        std::vector<float> v;
        for (auto& p : model.params()) v.insert(v.end(), p.value->begin(), p.value->end());
        return v;
    }();
    fuzz::mem_file f(data, size);
    try {
        train::checkpoint_state st = train::load_checkpoint(f.path, model.params(), opt, &ema);
        if (st.epochs_done < 0 || st.global_step < 0 || !st.history.is_array() || !st.recipe.is_object()) std::abort();
        // Accepted: restore the reference weights for the next input.
        const float* p0 = before.data();
        for (auto& p : model.params()) {
            std::copy(p0, p0 + p.value->size(), p.value->begin());
            p0 += p.value->size();
        }
    } catch (const error& e) {
        fuzz::rejected(e);
        const float* p0 = before.data();
        for (auto& p : model.params())
            for (index_t i = 0; i < p.value->size(); ++i, ++p0)
                if (std::memcmp(&(*p.value)[i], p0, sizeof(float)) != 0) std::abort();  // staged, then committed
    }
    return 0;
}
