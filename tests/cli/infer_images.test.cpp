// `convnextv2 infer --image a.jpg b.png --weights W --model NAME --labels classes.json`, run as a
// user would: the printed top-5 (class names from the labels file, probabilities) must equal an
// in-process eval transform + forward + softmax, and missing or corrupt images are errors that
// name the file.
#include <convnextv2/data/image_folder.hpp>
#include <convnextv2/io/weights.hpp>
#include <convnextv2/models/convnextv2.hpp>
#include <support/fixtures.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>
#include <sys/wait.h>

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
    return WEXITSTATUS(pclose(p));
}

image_u8 picture(int h, int w, std::uint64_t seed)
{
    image_u8 img(h, w);
    counter_rng rng(seed, 1);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c)
                img.row(y)[x * 3 + c] = static_cast<std::uint8_t>((x * (c + 2) * 3 + y * (3 - c) * 4 + static_cast<int>(rng.below(40))) % 256);
    return img;
}

struct top5 {
    std::vector<std::string> names;
    std::vector<double> percent;
};

// The lines after `path` in the tool's output: "  r. pp.pp%  name".
top5 parse_block(const std::string& out, const std::string& path)
{
    top5 t;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line) && line != path) {}
    for (int r = 1; r <= 5 && std::getline(in, line); ++r) {
        std::istringstream l(line);
        std::string rank, pct, name;
        l >> rank >> pct >> name;
        CHECK(rank == std::to_string(r) + ".");
        REQUIRE(!pct.empty());
        CHECK(pct.back() == '%');
        t.percent.push_back(std::stod(pct.substr(0, pct.size() - 1)));
        t.names.push_back(name);
    }
    return t;
}

} // namespace

TEST_CASE("convnextv2 infer --image prints the top-5 class names and probabilities; bad images are named errors", "[cli]")
{
    test::temp_dir dir("convnextv2_cli_images");
    const std::vector<std::string> classes{"airplane", "bicycle", "cat", "dog", "eel", "fox", "goose"};
    const index_t K = static_cast<index_t>(classes.size());
    convnextv2_model<float> m(variant_config("convnextv2_atto", K), 3);
    for (auto& p : m.params())  // a head that prefers class "dog", so the ranking is not a tie
        if (p.name == "head.bias") (*p.value)[3] = 2.0f;
    const std::string w = (dir.path / "w.safetensors").string();
    io::save_weights(m.params(), w);
    const std::string labels = write_classes_json(dir.path.string(), classes);
    const std::string a = (dir.path / "a.jpg").string(), b = (dir.path / "b.png").string();
    {
        const auto jpg = encode_jpeg(picture(60, 80, 1), 90);
        std::ofstream(a, std::ios::binary).write(reinterpret_cast<const char*>(jpg.data()), static_cast<std::streamsize>(jpg.size()));
    }
    write_png(b, picture(96, 72, 2));

    std::string out;
    const std::string base = "infer --model convnextv2_atto --weights " + w + " --labels " + labels + " --image_size 64 --image ";
    REQUIRE(run(base + a + " " + b, out) == 0);
    INFO(out);

    // The same pipeline in process: decode, eval transform (64, crop_pct 0.875), normalise, forward.
    m.set_training(false);
    tensor<float> x({2, 64, 64, 3}), logits;
    const std::string files[2] = {a, b};
    for (index_t i = 0; i < 2; ++i)
        normalize(eval_transform(decode_image_file(files[i]), 64, 0.875), imagenet_mean, imagenet_std, x.data() + i * 64 * 64 * 3);
    m.forward(x, logits);
    for (index_t i = 0; i < 2; ++i) {
        const top5 got = parse_block(out, files[i]);
        REQUIRE(got.names.size() == 5);
        const float* l = logits.data() + i * K;
        std::vector<double> p(static_cast<std::size_t>(K));
        const double mx = *std::max_element(l, l + K);
        double z = 0;
        for (index_t k = 0; k < K; ++k) z += p[static_cast<std::size_t>(k)] = std::exp(l[k] - mx);
        std::vector<index_t> order(static_cast<std::size_t>(K));
        std::iota(order.begin(), order.end(), index_t{0});
        std::sort(order.begin(), order.end(), [&](index_t u, index_t v) { return p[static_cast<std::size_t>(u)] > p[static_cast<std::size_t>(v)]; });
        CHECK(got.names[0] == "dog");
        double sum = 0;
        for (std::size_t r = 0; r < 5; ++r) {
            CHECK(got.names[r] == classes[static_cast<std::size_t>(order[r])]);
            CHECK(got.percent[r] == Approx(100.0 * p[static_cast<std::size_t>(order[r])] / z).margin(0.006));  // printed with 2 decimals
            if (r > 0) CHECK(got.percent[r] <= got.percent[r - 1]);
            sum += got.percent[r];
        }
        // 5 of 7 classes: less than 100%, more than 5/7 of it (the top 5 are the largest).
        CHECK(sum <= 100.0 + 0.03);
        CHECK(sum >= 100.0 * 5 / 7 - 0.03);
    }

    // A missing image, a truncated JPEG and a text file called .png: exit status 1, file named.
    const std::string missing = (dir.path / "nope.jpg").string();
    CHECK(run(base + missing, out) == 1);
    CHECK_THAT(out, Catch::Contains("convnextv2: error:") && Catch::Contains(missing) && Catch::Contains("cannot open"));
    const std::string truncated = (dir.path / "truncated.jpg").string();
    {
        auto jpg = encode_jpeg(picture(60, 80, 3), 90);
        jpg.resize(jpg.size() / 2);
        std::ofstream(truncated, std::ios::binary).write(reinterpret_cast<const char*>(jpg.data()), static_cast<std::streamsize>(jpg.size()));
    }
    CHECK(run(base + a + " " + truncated, out) == 1);
    CHECK_THAT(out, Catch::Contains(truncated) && Catch::Contains("JPEG"));
    const std::string text = (dir.path / "notes.png").string();
    std::ofstream(text) << "not an image\n";
    CHECK(run(base + text, out) == 1);
    CHECK_THAT(out, Catch::Contains(text) && Catch::Contains("not a JPEG or PNG"));
    // A labels file with the wrong number of classes is refused.
    fs::create_directories(dir.path / "two");
    const std::string two = write_classes_json((dir.path / "two").string(), {"a", "b"});
    CHECK(run("infer --model convnextv2_atto --num_classes 7 --weights " + w + " --labels " + two + " --image_size 64 --image " + a, out) == 1);
    CHECK_THAT(out, Catch::Contains("2 class names") && Catch::Contains("7 classes"));
}
