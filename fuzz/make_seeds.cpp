// SPDX-License-Identifier: MIT
// Writes the seeds that depend on the library's own writers into fuzz/corpus (run by hand:
// `build/fuzz/fuzz_make_seeds fuzz/corpus`; fuzz/make_seeds.py writes the image, IDX, .npy and
// recipe seeds). Seeds are valid files: the fuzzer mutates them into invalid ones.
#include "fuzz_common.hpp"

#include <convnextv2/io/weights.hpp>
#include <convnextv2/train/checkpoint.hpp>

#include <cstdio>
#include <filesystem>

int main(int argc, char** argv)
{
    using namespace convnextv2;
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir / "safetensors");
    std::filesystem::create_directories(dir / "checkpoint");
    convnextv2_model<float> model(fuzz::tiny_config(), 1);
    io::save_weights(model.params(), (dir / "safetensors" / "tiny_model.safetensors").string(), {{"note", "seed"}});
    adamw<float> opt(model.params());
    model_ema<float> ema(model.params());
    train::checkpoint_state st;
    st.epochs_done = 1;
    st.global_step = 4;
    st.recipe = nlohmann::json{{"model", "fuzz_tiny"}, {"lr", 0.001}};
    st.history = nlohmann::json::array({nlohmann::json{{"epoch", 1}, {"train_loss", 1.25}, {"val_top1", 50.0}}});
    train::save_checkpoint((dir / "checkpoint" / "tiny-1.safetensors").string(), model.params(), opt, &ema, st);
    std::printf("wrote seeds under %s\n", dir.c_str());
    return 0;
}
