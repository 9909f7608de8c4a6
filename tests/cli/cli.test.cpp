// Runs the built `convnextv2` tool as a user would and checks what it prints and writes.
#include <convnextv2/core/xtensor_interop.hpp>
#include <convnextv2/io/weights.hpp>
#include <convnextv2/models/convnextv2.hpp>
#include <support/fixtures.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

using namespace convnextv2;
namespace fs = std::filesystem;

namespace {
int run(const std::string& args, std::string& out)
{
    std::string cmd = std::string(CONVNEXTV2_CLI) + " " + args + " 2>&1";
    std::FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    out.clear();
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    int status = pclose(p);
    return WEXITSTATUS(status);
}
} // namespace

TEST_CASE("convnextv2 info prints exact parameters and MACs", "[cli]")
{
    std::string out;
    REQUIRE(run("info --model convnextv2_atto", out) == 0);
    CHECK_THAT(out, Catch::Contains("parameters: 3708400"));
    CHECK_THAT(out, Catch::Contains("0.547 GMACs"));
    REQUIRE(run("info --model convnextv2_tinyy", out) != 0);
    CHECK_THAT(out, Catch::Contains("valid models: convnextv2_atto"));
}

TEST_CASE("convnextv2 infer on an NCHW .npy batch equals the in-process forward", "[cli]")
{
    const fs::path dir = fs::temp_directory_path() / ("convnextv2_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    convnextv2_model<float> m(variant_config("atto", 10), 5);
    const std::string w = (dir / "w.safetensors").string(), in = (dir / "x.npy").string(), out_path = (dir / "y.npy").string();
    io::save_weights(m.params(), w);
    auto nchw = test::random_tensor<float>({2, 3, 32, 64}, 4);
    save_npy_f32(in, nchw);
    std::string out;
    REQUIRE(run("infer --model convnextv2_atto --num_classes 10 --weights " + w + " --input " + in + " --output " + out_path, out) == 0);
    tensor<float> y = load_npy_f32(out_path);
    REQUIRE(y.shape() == shape_t{2, 10});
    tensor<float> nhwc({2, 32, 64, 3}), ref;
    for (index_t n = 0; n < 2; ++n)
        for (index_t c = 0; c < 3; ++c)
            for (index_t h = 0; h < 32; ++h)
                for (index_t x = 0; x < 64; ++x) nhwc[((n * 32 + h) * 64 + x) * 3 + c] = nchw[((n * 3 + c) * 32 + h) * 64 + x];
    m.forward(nhwc, ref);
    CHECK(test::max_abs_diff(y, ref) < 1e-5);
    // bf16 forward products: close to the float logits where the CPU path exists, else a clear error.
    const std::string bf16_args = "infer --model convnextv2_atto --num_classes 10 --weights " + w + " --input " + in +
                                  " --output " + out_path + " --matmul_precision bf16";
    if (bf16_matmul_available()) {
        REQUIRE(run(bf16_args, out) == 0);
        tensor<float> y16 = load_npy_f32(out_path);
        double scale = 0;
        for (float v : ref) scale = std::max(scale, static_cast<double>(std::abs(v)));
        CHECK(test::max_abs_diff(y16, ref) > 0.0);
        CHECK(test::max_abs_diff(y16, ref) < 0.05 * scale);
    } else {
        REQUIRE(run(bf16_args, out) != 0);
        CHECK_THAT(out, Catch::Contains("AVX512-BF16"));
    }
    REQUIRE(run("infer --model convnextv2_atto --weights " + w + " --input " + in + " --output " + out_path +
                    " --matmul_precision fp16", out) != 0);
    CHECK_THAT(out, Catch::Contains("fp16"));
    // A weight file for another number of classes is refused with the key and both shapes.
    REQUIRE(run("infer --model convnextv2_atto --num_classes 7 --weights " + w + " --input " + in + " --output " + out_path, out) != 0);
    CHECK_THAT(out, Catch::Contains("head.weight") && Catch::Contains("(10, 320)"));
    fs::remove_all(dir);
}
