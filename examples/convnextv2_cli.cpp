// convnextv2: model information and inference on .npy inputs.
//   convnextv2 info  --model NAME [--num_classes K] [--image_size S]
//   convnextv2 infer --model NAME [--num_classes K] --weights W.safetensors --input X.npy --output Y.npy
//                    [--layout nchw|nhwc] [--features] [--num_threads T]
//   convnextv2 infer --model NAME [--num_classes K] --weights W --image a.jpg [b.png ...]
//                    [--labels classes.json] [--image_size 224] [--crop_pct 0.875]   (top-5 per image)
#include <convnextv2/convnextv2.hpp>
#include <convnextv2/core/xtensor_interop.hpp>
#include <convnextv2/data/image_folder.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

using namespace convnextv2;

static int run_info(const std::string& model, index_t num_classes, index_t image_size)
{
    model_config cfg = variant_config(model, num_classes);
    CONVNEXTV2_CHECK(image_size >= cfg.total_stride(), "--image_size must be at least ", cfg.total_stride(),
                     " (the total stride), got ", image_size);
    convnextv2_model<float> m(cfg);
    auto macs = count_macs(cfg, image_size);
    std::printf("%s  depths (%d, %d, %d, %d)  dims (%ld, %ld, %ld, %ld)  classes %ld\n", cfg.name.c_str(), cfg.depths[0],
                cfg.depths[1], cfg.depths[2], cfg.depths[3], (long)cfg.dims[0], (long)cfg.dims[1], (long)cfg.dims[2],
                (long)cfg.dims[3], (long)cfg.num_classes);
    std::printf("parameters: %ld (%.2f M), %zu tensors\n", (long)m.num_params(), m.num_params() / 1e6, m.params().size());
    std::printf("multiply-accumulates at %ldx%ld (conv + linear):\n", (long)image_size, (long)image_size);
    index_t side = image_size / cfg.stem_kernel;
    for (int i = 0; i < 4; ++i, side /= 2)
        std::printf("  stage %d  %3ldx%-3ld x %4ld  %8.3f GMACs\n", i, (long)side, (long)side, (long)cfg.dims[i], macs.stage[i] / 1e9);
    std::printf("  head                        %8.6f GMACs\n", macs.head / 1e9);
    std::printf("  total                       %8.3f GMACs\n", macs.total() / 1e9);
    return 0;
}

static int run_infer(const std::string& model, index_t num_classes, const std::string& weights, const std::string& input,
                     const std::string& output, const std::string& layout, bool features)
{
    convnextv2_model<float> m(variant_config(model, num_classes));
    io::load_weights(m.params(), weights);
    tensor<float> x = load_npy_f32(input);
    CONVNEXTV2_CHECK(x.rank() == 4, input, ": expected a 4-D array, got shape ", to_string(x.shape()));
    if (layout == "nchw") {  // PyTorch layout -> NHWC
        index_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
        tensor<float> t({N, H, W, C});
        for (index_t n = 0; n < N; ++n)
            for (index_t c = 0; c < C; ++c)
                for (index_t h = 0; h < H; ++h)
                    for (index_t w = 0; w < W; ++w) t[((n * H + h) * W + w) * C + c] = x[((n * C + c) * H + h) * W + w];
        x = std::move(t);
    }
    m.set_training(false);
    tensor<float> logits;
    m.forward(x, logits);
    tensor<float> out = features ? m.features() : logits;
    save_npy_f32(output, out);
    std::printf("wrote %s %s\n", output.c_str(), to_string(out.shape()).c_str());
    return 0;
}

// The official eval transform on each image, then the top-5 softmax probabilities.
static int run_infer_images(const std::string& model, index_t num_classes, const std::string& weights,
                            const std::vector<std::string>& images, const std::string& labels_path, int image_size, double crop_pct)
{
    std::vector<std::string> names;
    if (!labels_path.empty()) {
        names = read_classes_json(labels_path);
        if (num_classes == 1000 && static_cast<index_t>(names.size()) != 1000) num_classes = static_cast<index_t>(names.size());
        CONVNEXTV2_CHECK(static_cast<index_t>(names.size()) == num_classes, labels_path, " has ", names.size(),
                         " class names but the model has ", num_classes, " classes");
    }
    convnextv2_model<float> m(variant_config(model, num_classes));
    io::load_weights(m.params(), weights);
    m.set_training(false);
    const index_t S = image_size, N = static_cast<index_t>(images.size());
    tensor<float> x({N, S, S, 3}), logits;
    for (index_t i = 0; i < N; ++i) {
        image_u8 img = eval_transform(decode_image_file(images[static_cast<std::size_t>(i)]), image_size, crop_pct);
        normalize(img, imagenet_mean, imagenet_std, x.data() + i * S * S * 3);
    }
    m.forward(x, logits);
    for (index_t i = 0; i < N; ++i) {
        const float* l = logits.data() + i * num_classes;
        const float mx = *std::max_element(l, l + num_classes);
        std::vector<double> p(static_cast<std::size_t>(num_classes));
        double z = 0;
        for (index_t k = 0; k < num_classes; ++k) z += p[static_cast<std::size_t>(k)] = std::exp(static_cast<double>(l[k] - mx));
        std::vector<index_t> order(static_cast<std::size_t>(num_classes));
        for (index_t k = 0; k < num_classes; ++k) order[static_cast<std::size_t>(k)] = k;
        const index_t top = std::min<index_t>(5, num_classes);
        std::partial_sort(order.begin(), order.begin() + top, order.end(),
                          [&](index_t a, index_t b) { return p[static_cast<std::size_t>(a)] > p[static_cast<std::size_t>(b)]; });
        std::printf("%s\n", images[static_cast<std::size_t>(i)].c_str());
        for (index_t r = 0; r < top; ++r) {
            const index_t k = order[static_cast<std::size_t>(r)];
            std::printf("  %ld. %6.2f%%  %s\n", (long)(r + 1), 100.0 * p[static_cast<std::size_t>(k)] / z,
                        names.empty() ? ("class " + std::to_string(k)).c_str() : names[static_cast<std::size_t>(k)].c_str());
        }
    }
    return 0;
}

int main(int argc, char** argv)
{
    CLI::App app{"convnextv2: ConvNeXt V2 model information and inference"};
    app.require_subcommand(1);
    std::string model, weights, input, output, layout = "nchw", precision = "fp32";
    index_t num_classes = 1000, image_size = 224;
    std::vector<std::string> images;
    std::string labels;
    double crop_pct = 0.875;
    int threads = 0;
    bool features = false;

    auto* info = app.add_subcommand("info", "parameters and multiply-accumulates per stage");
    info->add_option("--model", model, "model name, e.g. convnextv2_atto")->required();
    info->add_option("--num_classes", num_classes, "classifier outputs");
    info->add_option("--image_size", image_size, "input side in pixels");

    auto* infer = app.add_subcommand("infer", "logits (or pooled features) for a float32 .npy batch");
    infer->add_option("--model", model, "model name, e.g. convnextv2_atto")->required();
    infer->add_option("--num_classes", num_classes, "classifier outputs");
    infer->add_option("--weights", weights, "safetensors weights (official, timm or HF names)")->required();
    auto* in_opt = infer->add_option("--input", input, "float32 .npy, (N,3,H,W) or with --layout nhwc (N,H,W,3)");
    auto* out_opt = infer->add_option("--output", output, "where to write float32 .npy logits (N,K)");
    auto* img_opt = infer->add_option("--image", images, "JPEG/PNG images: print the top-5 classes (eval transform)");
    in_opt->needs(out_opt);
    img_opt->excludes(in_opt);
    infer->add_option("--labels", labels, "classes.json written by train (class names)");
    infer->add_option("--image_size", image_size, "input side for --image");
    infer->add_option("--crop_pct", crop_pct, "centre-crop fraction for --image (sizes < 384)");
    infer->add_option("--layout", layout, "nchw (PyTorch) or nhwc")->check(CLI::IsMember({"nchw", "nhwc"}));
    infer->add_flag("--features", features, "write pooled+normed features (N, dims[3]) instead of logits");
    infer->add_option("--matmul_precision", precision, "forward GEMMs in fp32 (default) or bf16 (needs AVX512-BF16)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    app.add_option("--num_threads", threads, "worker threads (0 = all cores)");

    CLI11_PARSE(app, argc, argv);
    thread_limit limit(threads);
    try {
        if (*info) return run_info(model, num_classes, image_size);
        set_matmul_precision(precision == "bf16" ? matmul_precision::bf16 : matmul_precision::fp32);
        if (!images.empty()) return run_infer_images(model, num_classes, weights, images, labels, static_cast<int>(image_size), crop_pct);
        CONVNEXTV2_CHECK(!input.empty(), "infer: give --image files or --input X.npy --output Y.npy");
        return run_infer(model, num_classes, weights, input, output, layout, features);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "convnextv2: error: %s\n", e.what());
        return 1;
    }
}
