// ImageFolder: a small folder tree encoded here with TurboJPEG/libpng (no downloads), error paths,
// corrupt-file skipping, decoding, thread-count determinism and a short train + validate run.
#include <convnextv2/data/image_folder.hpp>
#include <convnextv2/train/trainer.hpp>
#include <support/fixtures.hpp>

#include <tbb/task_arena.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace convnextv2;
namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& name)
{
    fs::path p = fs::temp_directory_path() / ("convnextv2_if_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

// Class c: a colour ramp tinted by class, with noise; sizes vary per image.
image_u8 synthetic_image(int c, int k, int h, int w)
{
    image_u8 img(h, w);
    counter_rng rng(static_cast<std::uint64_t>(c * 1000 + k), 9);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int ch = 0; ch < 3; ++ch) {
                double base = ch == c % 3 ? 200 : 40;
                double v = base + 30.0 * (ch == 0 ? x : y) / w + rng.uniform(-20, 20);
                img.row(y)[x * 3 + ch] = static_cast<std::uint8_t>(std::clamp(v, 0.0, 255.0));
            }
    return img;
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& b)
{
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

const std::vector<std::string> class_names{"cat", "Dog", "bird"};  // sorted: Dog, bird, cat

// root/{train,val}/<class>/ with per_class images each, mixing .JPG, .jpeg and .png.
void make_folder(const std::string& root, int per_class_train, int per_class_val)
{
    for (const char* split : {"train", "val"}) {
        const int n = std::string(split) == "train" ? per_class_train : per_class_val;
        for (std::size_t c = 0; c < class_names.size(); ++c) {
            fs::path d = fs::path(root) / split / class_names[c];
            fs::create_directories(d);
            for (int k = 0; k < n; ++k) {
                image_u8 img = synthetic_image(static_cast<int>(c), k + (split[0] == 'v') * 100, 36 + k % 3 * 8, 44 - k % 2 * 6);
                const std::string stem = (d / ("img" + std::to_string(k))).string();
                if (k % 3 == 0) write_bytes(stem + ".JPG", encode_jpeg(img, 92));
                else if (k % 3 == 1) write_bytes(stem + ".jpeg", encode_jpeg(img, 92));
                else write_png(stem + ".png", img);
            }
            std::ofstream(d / "notes.txt") << "ignored";
        }
    }
}

image_folder_options opts(const std::string& root, const std::string& split = "train")
{
    image_folder_options o;
    o.root = root;
    o.split = split;
    o.image_size = 32;
    return o;
}

} // namespace

TEST_CASE("image folder: classes sorted, labels, extensions case-insensitive, classes.json", "[data]")
{
    const std::string root = fresh_dir("scan");
    make_folder(root, 4, 2);
    image_folder_dataset ds(opts(root));
    REQUIRE(ds.num_classes() == 3);
    CHECK(ds.classes() == std::vector<std::string>{"Dog", "bird", "cat"});
    REQUIRE(ds.size() == 12);
    CHECK(ds.label(0) == 0);
    CHECK(ds.label(11) == 2);
    CHECK(ds.file(0).find("/train/Dog/img0.JPG") != std::string::npos);
    image_folder_dataset val(opts(root, "val"));
    CHECK(val.size() == 6);
    std::string p = write_classes_json(root, ds.classes());
    CHECK(read_classes_json(p) == ds.classes());
    fs::remove_all(root);
}

TEST_CASE("image folder: missing folders and empty classes are errors naming the path", "[data]")
{
    const std::string root = fresh_dir("errors");
    CHECK_THROWS_WITH(image_folder_dataset(opts(root + "/nope")), Catch::Contains(root + "/nope"));
    CHECK_THROWS_WITH(image_folder_dataset(opts(root)), Catch::Contains(root + "/train") && Catch::Contains("not found"));
    fs::create_directories(root + "/train");
    CHECK_THROWS_WITH(image_folder_dataset(opts(root)), Catch::Contains("no class folders"));
    make_folder(root, 2, 1);
    fs::create_directories(root + "/train/empty_class");
    std::ofstream(root + "/train/empty_class/readme.md") << "x";
    CHECK_THROWS_WITH(image_folder_dataset(opts(root)), Catch::Contains(root + "/train/empty_class") && Catch::Contains("no .jpg"));
    image_folder_options o = opts(root, "val");
    o.auto_augment = "rand-m9-mstd0.5-inc1";
    CHECK_NOTHROW(image_folder_dataset(o));
    o.auto_augment = "autoaug-m9";
    CHECK_THROWS_WITH(image_folder_dataset(o), Catch::Contains("auto_augment 'autoaug-m9'"));
    fs::remove_all(root);
}

TEST_CASE("image folder: truncated JPEG, bad-CRC PNG and a text .jpg are skipped, counted, or fatal", "[data]")
{
    const std::string root = fresh_dir("corrupt");
    make_folder(root, 3, 1);
    const fs::path d = fs::path(root) / "train" / "bird";
    auto jpg = encode_jpeg(synthetic_image(1, 7, 40, 40), 90);
    jpg.resize(jpg.size() / 2);
    write_bytes((d / "truncated.jpg").string(), jpg);
    write_png((d / "badcrc.png").string(), synthetic_image(1, 8, 40, 40));
    {
        auto b = read_file_bytes((d / "badcrc.png").string());
        // Corrupt the CRC of the first IDAT chunk.
        std::size_t pos = 8;
        while (pos + 8 <= b.size() && std::string(b.begin() + pos + 4, b.begin() + pos + 8) != "IDAT")
            pos += 12 + (std::size_t(b[pos]) << 24 | std::size_t(b[pos + 1]) << 16 | std::size_t(b[pos + 2]) << 8 | b[pos + 3]);
        REQUIRE(pos + 8 <= b.size());
        const std::size_t len = std::size_t(b[pos]) << 24 | std::size_t(b[pos + 1]) << 16 | std::size_t(b[pos + 2]) << 8 | b[pos + 3];
        b[pos + 8 + len] ^= 0x55;
        write_bytes((d / "badcrc.png").string(), b);
    }
    std::ofstream(d / "text.jpg") << "this is not an image\n";

    CHECK_THROWS_WITH(decode_image_file((d / "truncated.jpg").string()), Catch::Contains("truncated.jpg"));
    CHECK_THROWS_WITH(decode_image_file((d / "badcrc.png").string()), Catch::Contains("badcrc.png"));
    CHECK_THROWS_WITH(decode_image_file((d / "text.jpg").string()), Catch::Contains("text.jpg") && Catch::Contains("not a JPEG or PNG"));

    image_folder_dataset ds(opts(root));
    REQUIRE(ds.size() == 12);
    std::vector<float> out(32 * 32 * 3);
    for (index_t i = 0; i < ds.size(); ++i) {
        int lab = -1;
        ds.get(i, 1, true, out.data(), &lab);
        ds.get(i, 1, false, out.data(), &lab);
        CHECK(lab >= 0);
    }
    CHECK(ds.skipped_count() == 3);

    image_folder_options o = opts(root);
    o.fatal_corrupt = true;
    image_folder_dataset strict(o);
    bool threw = false;
    for (index_t i = 0; i < strict.size(); ++i) {
        int lab;
        try {
            strict.get(i, 1, false, out.data(), &lab);
        } catch (const std::exception& e) {
            threw = true;
            CHECK(std::string(e.what()).find("/train/bird/") != std::string::npos);
        }
    }
    CHECK(threw);
    fs::remove_all(root);
}

TEST_CASE("decoding: PNG is lossless, JPEG is close, DCT scaling shrinks large JPEGs", "[data]")
{
    const std::string root = fresh_dir("decode");
    image_u8 img = synthetic_image(2, 1, 64, 80);
    write_png(root + "/a.png", img);
    image_u8 back = decode_image_file(root + "/a.png");
    REQUIRE(back.width == 80);
    REQUIRE(back.height == 64);
    CHECK(back.pixels == img.pixels);
    auto jpg = encode_jpeg(img, 98);
    image_u8 dj = decode_image(jpg, "mem.jpg");
    double sum = 0;
    for (std::size_t i = 0; i < img.pixels.size(); ++i) sum += std::abs(int(dj.pixels[i]) - int(img.pixels[i]));
    CHECK(sum / img.pixels.size() < 8);
    auto hw = read_image_size(jpg, "mem.jpg");
    CHECK(hw[0] == 64);
    CHECK(hw[1] == 80);
    image_u8 half = decode_image(jpg, "mem.jpg", 2.0);
    CHECK(half.width == 40);
    CHECK(half.height == 32);
    image_u8 quarter = decode_image(jpg, "mem.jpg", 4.5);
    CHECK(quarter.width == 20);
    fs::remove_all(root);
}

TEST_CASE("image folder batches (RandAugment on) are bitwise identical with 1 and 2 threads", "[data]")
{
    const std::string root = fresh_dir("determinism");
    make_folder(root, 4, 2);
    image_folder_options ro = opts(root);
    ro.auto_augment = "rand-m9-mstd0.5-inc1";
    image_folder_dataset ds(ro);
    {
        // RandAugment runs after crop + flip (same stream as without it) and changes some samples.
        image_folder_dataset plain(opts(root));
        int differ = 0;
        for (index_t i = 0; i < ds.size(); ++i) {
            const image_u8 a = ds.transformed(i, 9, true), b = plain.transformed(i, 9, true);
            REQUIRE(a.width == b.width);
            differ += a.pixels != b.pixels;
        }
        CHECK(differ >= 3);  // P(no op applied to an image) = 1/4
    }
    batch_loader_options lo;
    lo.batch_size = 6;
    lo.seed = 11;
    auto load = [&](int threads, bool train) {
        tensor<float> x;
        std::vector<int> labels;
        tbb::task_arena arena(threads);
        arena.execute([&] {
            lo.train = train;
            batch_loader loader(ds, lo, 2);
            loader.load(1, x, labels);
        });
        return std::make_pair(std::vector<float>(x.begin(), x.end()), labels);
    };
    for (bool train : {true, false}) {
        auto a = load(1, train), b = load(2, train);
        CHECK(a.first == b.first);
        CHECK(a.second == b.second);
    }
    // The background prefetcher hands out the same bytes, with 1 and 2 threads.
    lo.train = true;
    const auto want = load(1, true);
    for (int threads : {1, 2}) {
        tensor<float> x;
        std::vector<int> labels;
        batch_loader loader(ds, lo, 2);
        tbb::task_arena arena(threads);
        arena.execute([&] {
            batch_prefetcher p(loader, {1, 0}, 2);
            REQUIRE(p.next(x, labels) == 1);
        });
        CHECK(std::vector<float>(x.begin(), x.end()) == want.first);
        CHECK(labels == want.second);
    }
    // Another epoch gives different augmentation.
    tensor<float> x1, x2;
    std::vector<int> l1, l2;
    batch_loader l(ds, lo, 0);
    l.load(0, x1, l1);
    l.set_epoch(1);
    l.load(0, x2, l2);
    CHECK(std::vector<float>(x1.begin(), x1.end()) != std::vector<float>(x2.begin(), x2.end()));
    fs::remove_all(root);
}

TEST_CASE("end to end: train a few steps with mixup/cutmix on a generated ImageFolder, then validate", "[data][train]")
{
    const std::string root = fresh_dir("e2e");
    make_folder(root, 6, 3);
    recipe r;
    r.model = "tiny_if";
    r.depths = {1, 1, 1, 1};
    r.dims = {4, 8, 8, 8};
    r.num_classes = 3;
    r.in_chans = 3;
    r.image_resize = 32;
    r.stem_kernel = 4;
    r.dataset = "imagefolder";
    r.data_dir = root;
    r.mixup = 0.8;
    r.cutmix = 1.0;
    r.batch_size = 6;
    r.epoch_size = 2;
    r.lr = 5e-3;
    r.warmup_epochs = 1;
    r.head_init_scale = 1.0;
    r.seed = 5;
    r.log_interval = 0;
    r.keep_checkpoint_max = 0;
    r.ckpt_save_dir = root + "/out";
    train::train_options o;
    o.r = r;
    o.verbose = false;
    train::trainer t(o);
    auto s = t.run();
    CHECK(s.epochs_done == 2);
    CHECK(s.final_eval.count == 9);
    CHECK(read_classes_json(root + "/out/classes.json") == std::vector<std::string>{"Dog", "bird", "cat"});
    std::ifstream m(root + "/out/metrics.jsonl");
    std::string line;
    int rows = 0;
    while (std::getline(m, line)) {
        auto j = nlohmann::json::parse(line);
        CHECK(std::isfinite(j["train_loss"].get<double>()));
        CHECK(j["skipped_images"].get<int>() == 0);
        CHECK(j["data_wait_fraction"].get<double>() >= 0.0);
        CHECK(j["data_wait_fraction"].get<double>() <= 1.0);
        ++rows;
    }
    CHECK(rows == 2);
    auto val = train::make_dataset(r, root, false);
    auto ev = train::evaluate(t.model(), *val, 4);
    CHECK(ev.count == 9);
    CHECK(std::isfinite(ev.loss));
    fs::remove_all(root);
}

TEST_CASE("trainer: prefetch on/off and thread count give bit-identical training, with aug_repeats 3", "[data][train]")
{
    const std::string root = fresh_dir("prefetch");
    make_folder(root, 6, 1);
    auto run = [&](int prefetch, int threads) {
        recipe r;
        r.model = "tiny_pf";
        r.depths = {1, 1, 1, 1};
        r.dims = {4, 8, 8, 8};
        r.num_classes = 3;
        r.image_resize = 32;
        r.dataset = "imagefolder";
        r.data_dir = root;
        r.aug_repeats = 3;
        r.prefetch_batches = prefetch;
        r.batch_size = 3;
        r.epoch_size = 1;
        r.val_while_train = false;
        r.seed = 2;
        r.log_interval = 0;
        r.keep_checkpoint_max = 0;
        r.ckpt_save_dir = root + "/out_" + std::to_string(prefetch) + "_" + std::to_string(threads);
        train::train_options o;
        o.r = r;
        o.verbose = false;
        std::vector<float> w;
        tbb::task_arena arena(threads);
        arena.execute([&] {
            train::trainer t(o);
            t.run();
            for (auto& p : t.model().params()) w.insert(w.end(), p.value->begin(), p.value->end());
        });
        std::ifstream m(r.ckpt_save_dir + "/metrics.jsonl");
        std::string line;
        std::getline(m, line);
        auto j = nlohmann::json::parse(line);
        CHECK(j["data_wait_fraction"].get<double>() >= 0.0);
        CHECK(j["global_step"].get<int>() == 6);  // 18 images (< 256: the whole set) / batch 3
        return std::make_pair(w, j["train_loss"].get<double>());
    };
    const auto off = run(0, 1), on1 = run(2, 1), on2 = run(2, 2);
    CHECK(off.first == on1.first);
    CHECK(off.first == on2.first);
    CHECK(off.second == on1.second);
    fs::remove_all(root);
}
