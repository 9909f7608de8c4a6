// Data pipeline throughput per core at 224: decode (TurboJPEG) + RandomResizedCrop + flip +
// normalise + random erasing (train) and decode + resize 256 + centre crop (eval), on 500×375
// JPEGs (ImageNet's typical size) synthesised and encoded with TurboJPEG at start-up.
// The same with RandAugment (rand-m9-mstd0.5-inc1, timm's order: after crop + flip), and
// RandAugment alone on 224x224 images. Also the batch_loader rate with all cores. Reported as
// items_per_second.
#include <convnextv2/data/image_folder.hpp>

#include <benchmark/benchmark.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace convnextv2;
namespace fs = std::filesystem;

namespace {

// Photo-like content: smooth low-frequency colour fields, edges and mild sensor noise.
image_u8 photo_like(int h, int w, int k)
{
    image_u8 img(h, w);
    counter_rng rng(static_cast<std::uint64_t>(k), 77);
    const double f1 = rng.uniform(2, 6), f2 = rng.uniform(2, 6), ph = rng.uniform(0, 6.28);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const double u = double(x) / w, v = double(y) / h;
            const bool disc = (u - 0.5) * (u - 0.5) + (v - 0.45) * (v - 0.45) < 0.04;
            for (int c = 0; c < 3; ++c) {
                double val = 128 + 70 * std::sin(f1 * u * 6.28 + ph + c) * std::cos(f2 * v * 6.28 - c) + (disc ? 60 - 40 * c : 0) +
                             rng.uniform(-12, 12);
                img.row(y)[x * 3 + c] = static_cast<std::uint8_t>(std::clamp(val, 0.0, 255.0));
            }
        }
    return img;
}

struct folder {
    std::string root;
    double mean_bytes = 0;
    folder()
    {
        root = (fs::temp_directory_path() / ("convnextv2_bench_data_" + std::to_string(::getpid()))).string();
        double total = 0;
        for (const char* split : {"train", "val"})
            for (int c = 0; c < 4; ++c) {
                fs::path d = fs::path(root) / split / ("class" + std::to_string(c));
                fs::create_directories(d);
                for (int k = 0; k < 8; ++k) {
                    const bool portrait = k % 4 == 3;
                    auto jpg = encode_jpeg(photo_like(portrait ? 500 : 375, portrait ? 375 : 500, c * 8 + k), 90);
                    total += static_cast<double>(jpg.size());
                    std::ofstream(d / ("img" + std::to_string(k) + ".jpg"), std::ios::binary)
                        .write(reinterpret_cast<const char*>(jpg.data()), static_cast<std::streamsize>(jpg.size()));
                }
            }
        mean_bytes = total / 64;
    }
    ~folder() { fs::remove_all(root); }
};

const folder& data()
{
    static folder f;
    return f;
}

image_folder_options options(bool dct, bool randaug = false)
{
    image_folder_options o;
    o.root = data().root;
    o.image_size = 224;
    o.dct_scaling = dct;
    if (randaug) o.auto_augment = "rand-m9-mstd0.5-inc1";
    return o;
}

void BM_decode_augment_train(benchmark::State& state)
{
    image_folder_dataset ds(options(state.range(0) != 0, state.range(1) != 0));
    std::vector<float> out(224 * 224 * 3);
    int lab;
    index_t i = 0;
    std::uint64_t epoch = 0;
    for (auto _ : state) {
        ds.get(i, epoch, true, out.data(), &lab);
        if (++i == ds.size()) i = 0, ++epoch;
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["jpeg_kB"] = data().mean_bytes / 1024;
}
BENCHMARK(BM_decode_augment_train)->Args({1, 0})->Args({0, 0})->Args({1, 1})->ArgNames({"dct", "randaug"})->Unit(benchmark::kMillisecond);

// RandAugment alone on 224x224 crops (2 ops, p 0.5 each: on average one op per image).
void BM_rand_augment_224(benchmark::State& state)
{
    const rand_augment_policy p = parse_rand_augment("rand-m9-mstd0.5-inc1");
    const image_u8 img = resize(photo_like(375, 500, 1), 224, 224);
    std::uint64_t k = 0;
    for (auto _ : state) {
        image_u8 x = img;
        counter_rng rng(7, k++);
        rand_augment(x, p, rng);
        benchmark::DoNotOptimize(x.pixels.data());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_rand_augment_224)->Unit(benchmark::kMillisecond);

// Each of the 15 ops alone at magnitude 9 on a 224x224 image (bicubic for the geometric ones).
void BM_rand_augment_op(benchmark::State& state)
{
    const std::string op = rand_augment_ops(true)[static_cast<std::size_t>(state.range(0))];
    const image_u8 img = resize(photo_like(375, 500, 1), 224, 224);
    for (auto _ : state) {
        image_u8 x = apply_op(op, img, 9, state.iterations() % 2 == 1);
        benchmark::DoNotOptimize(x.pixels.data());
    }
    state.SetLabel(op);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_rand_augment_op)->DenseRange(0, 14)->Unit(benchmark::kMillisecond);

void BM_decode_eval(benchmark::State& state)
{
    image_folder_options o = options(true);
    o.split = "val";
    image_folder_dataset ds(o);
    std::vector<float> out(224 * 224 * 3);
    int lab;
    index_t i = 0;
    for (auto _ : state) {
        ds.get(i, 0, false, out.data(), &lab);
        if (++i == ds.size()) i = 0;
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_decode_eval)->Unit(benchmark::kMillisecond);

void BM_decode_only(benchmark::State& state)
{
    image_folder_dataset ds(options(false));
    std::vector<std::vector<std::uint8_t>> files;
    for (index_t i = 0; i < ds.size(); ++i) files.push_back(read_file_bytes(ds.file(i)));
    std::size_t i = 0;
    for (auto _ : state) {
        image_u8 img = decode_image(files[i], "bench");
        benchmark::DoNotOptimize(img.pixels.data());
        if (++i == files.size()) i = 0;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_decode_only)->Unit(benchmark::kMillisecond);

// Whole batches of 32 with every core (batch_loader's parallel_for), a new epoch each time.
void BM_batch_loader_all_cores(benchmark::State& state)
{
    image_folder_dataset ds(options(true, state.range(0) != 0));
    batch_loader_options lo;
    lo.batch_size = 32;
    batch_loader loader(ds, lo, 0);
    tensor<float> x;
    std::vector<int> labels;
    std::int64_t epoch = 0;
    for (auto _ : state) {
        loader.set_epoch(epoch++);  // fresh crops and ops every time (one batch = the whole split)
        loader.load(0, x, labels);
        benchmark::DoNotOptimize(x.data());
    }
    state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_batch_loader_all_cores)->Arg(0)->Arg(1)->ArgName("randaug")->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace
