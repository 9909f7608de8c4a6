// Transforms against Pillow golden outputs (tools/make_transform_golden.py; tolerance: max abs
// diff <= 1 on uint8), crop geometry, random erasing statistics and Mixup/CutMix arithmetic.
#include <convnextv2/data/image_folder.hpp>
#include <convnextv2/data/transforms.hpp>
#include <support/fixtures.hpp>

#include <cmath>

using namespace convnextv2;

namespace {

std::string fixture(const std::string& name) { return std::string(CONVNEXTV2_TEST_DATA) + "/transforms/" + name; }

int max_diff(const image_u8& a, const image_u8& b)
{
    REQUIRE(a.height == b.height);
    REQUIRE(a.width == b.width);
    int m = 0;
    for (std::size_t i = 0; i < a.pixels.size(); ++i) m = std::max(m, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
    return m;
}

} // namespace

TEST_CASE("bicubic and bilinear resize match Pillow (max abs diff <= 1)", "[data]")
{
    image_u8 in = decode_image_file(fixture("input.png"));
    REQUIRE(in.width == 64);
    REQUIRE(in.height == 48);
    CHECK(max_diff(resize(in, 20, 15), decode_image_file(fixture("resize_20x15.png"))) <= 1);
    CHECK(max_diff(resize(in, 90, 70), decode_image_file(fixture("resize_90x70.png"))) <= 1);
    CHECK(max_diff(resize(in, 25, 19, resample_filter::bilinear), decode_image_file(fixture("resize_bilinear_25x19.png"))) <= 1);
    CHECK(max_diff(resize(in, 64, 48), in) == 0);
}

TEST_CASE("eval transform (resize short side to floor(size/crop_pct), centre crop) matches torchvision", "[data]")
{
    image_u8 in = decode_image_file(fixture("input.png"));
    CHECK(eval_resize_side(224, 0.875) == 256);
    CHECK(eval_resize_side(384, 1.0) == 0);
    image_u8 out = eval_transform(in, 24, 0.875);
    CHECK(max_diff(out, decode_image_file(fixture("eval_24.png"))) <= 1);
    // >= 384: straight warp to size x size.
    image_u8 big = resize(in, 400, 300);
    CHECK(max_diff(eval_transform(big, 384, 0.875), resize(big, 384, 384)) == 0);
    auto hw = short_side_size(300, 400, 256);
    CHECK(hw[0] == 256);
    CHECK(hw[1] == 341);
    crop_box c = center_crop_box(27, 36, 24, 24);  // round-half-even like Python: 1.5 -> 2, 6 -> 6
    CHECK(c.top == 2);
    CHECK(c.left == 6);
}

TEST_CASE("grayscale and palette PNGs decode to RGB like PIL convert('RGB')", "[data]")
{
    CHECK(max_diff(decode_image_file(fixture("gray.png")), decode_image_file(fixture("gray_rgb.png"))) == 0);
    CHECK(max_diff(decode_image_file(fixture("palette.png")), decode_image_file(fixture("palette_rgb.png"))) == 0);
}

TEST_CASE("RandomResizedCrop parameters stay in range and fall back to a centre crop", "[data]")
{
    for (std::uint64_t s = 0; s < 500; ++s) {
        counter_rng rng(s, 1);
        crop_box b = random_resized_crop_params(100, 150, {0.08, 1.0}, {0.75, 4.0 / 3.0}, rng);
        REQUIRE(b.top >= 0);
        REQUIRE(b.left >= 0);
        REQUIRE(b.top + b.height <= 100);
        REQUIRE(b.left + b.width <= 150);
        double area = double(b.height) * b.width / 15000.0;
        REQUIRE(area >= 0.06);
    }
    // A scale range no crop can satisfy (area > image) -> fallback: ratio clamp, centred.
    counter_rng rng(1, 1);
    crop_box f = random_resized_crop_params(100, 300, {2.0, 3.0}, {0.75, 4.0 / 3.0}, rng);
    CHECK(f.height == 100);
    CHECK(f.width == 133);
    CHECK(f.top == 0);
    CHECK(f.left == 83);
}

TEST_CASE("random erasing: box statistics and per-pixel normal fill", "[data]")
{
    const int H = 64, W = 64;
    int applied = 0;
    double area_sum = 0;
    std::vector<float> img(H * W * 3);
    double sum = 0, sq = 0;
    index_t cnt = 0;
    for (std::uint64_t s = 0; s < 2000; ++s) {
        std::fill(img.begin(), img.end(), 100.0f);
        counter_rng rng(s, 2);
        erase_box e = random_erasing(img.data(), H, W, 3, 0.25, true, rng);
        if (!e.applied) {
            REQUIRE(std::all_of(img.begin(), img.end(), [](float v) { return v == 100.0f; }));
            continue;
        }
        ++applied;
        REQUIRE(e.top + e.height <= H);
        REQUIRE(e.left + e.width <= W);
        REQUIRE(e.height < H);
        REQUIRE(e.width < W);
        const double frac = double(e.height) * e.width / (H * W);
        REQUIRE(frac >= 0.01);
        REQUIRE(frac <= 0.40);
        area_sum += frac;
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x)
                for (int c = 0; c < 3; ++c) {
                    float v = img[(y * W + x) * 3 + c];
                    bool inside = y >= e.top && y < e.top + e.height && x >= e.left && x < e.left + e.width;
                    if (!inside) REQUIRE(v == 100.0f);
                    else {
                        sum += v;
                        sq += double(v) * v;
                        ++cnt;
                    }
                }
    }
    CHECK(applied > 2000 * 0.25 - 80);
    CHECK(applied < 2000 * 0.25 + 80);
    CHECK(area_sum / applied == Approx((0.02 + 1.0 / 3.0) / 2).margin(0.02));  // mean of U(0.02, 1/3)
    const double mean = sum / cnt, var = sq / cnt - mean * mean;
    CHECK(std::fabs(mean) < 0.02);
    CHECK(var == Approx(1.0).margin(0.03));
}

TEST_CASE("Mixup: soft targets are lambda-weighted smoothed one-hots of i and N-1-i", "[data]")
{
    const index_t N = 4, K = 5;
    tensor<float> x({N, 2, 3, 1});
    for (index_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i / 6);  // image n is constant n
    std::vector<int> labels{0, 1, 2, 3};
    mix_options mo;
    mo.mixup_alpha = 0.8;
    mo.smoothing = 0.1;
    tensor<float> t;
    mix_result r = mix_batch(x, labels, K, mo, 7, t);
    REQUIRE_FALSE(r.cutmix);
    REQUIRE(r.lambda > 0);
    REQUIRE(r.lambda < 1);
    const double lam = r.lambda, off = 0.1 / K, on = 1 - 0.1 + off;
    for (index_t i = 0; i < N; ++i) {
        const index_t j = N - 1 - i;
        CHECK(x[i * 6] == Approx(lam * i + (1 - lam) * j).margin(1e-5));
        double rowsum = 0;
        for (index_t k = 0; k < K; ++k) {
            double expect = lam * (k == labels[i] ? on : off) + (1 - lam) * (k == labels[j] ? on : off);
            CHECK(t[i * K + k] == Approx(expect).margin(1e-6));
            rowsum += t[i * K + k];
        }
        CHECK(rowsum == Approx(1.0).margin(1e-5));
    }
}

TEST_CASE("CutMix: lambda is recomputed from the clipped box and the box holds the partner's pixels", "[data]")
{
    const index_t N = 3, H = 10, W = 8, K = 3;
    int seen = 0;
    for (std::uint64_t seed = 0; seed < 50; ++seed) {
        tensor<float> x({N, H, W, 1});
        for (index_t n = 0; n < N; ++n)
            for (index_t p = 0; p < H * W; ++p) x[n * H * W + p] = static_cast<float>(n + 1);
        std::vector<int> labels{0, 1, 2};
        mix_options mo;
        mo.cutmix_alpha = 1.0;
        mo.smoothing = 0.0;
        tensor<float> t;
        mix_result r = mix_batch(x, labels, K, mo, seed, t);
        REQUIRE(r.cutmix);
        const double box = double(r.y1 - r.y0) * (r.x1 - r.x0);
        REQUIRE(r.lambda == Approx(1 - box / (H * W)));
        index_t changed = 0;
        for (index_t p = 0; p < H * W; ++p) changed += x[p] != 1.0f;
        REQUIRE(changed == static_cast<index_t>(box));
        if (box > 0) {
            REQUIRE(x[(r.y0 * W + r.x0)] == 3.0f);           // sample 0 took sample 2's pixels
            REQUIRE(x[2 * H * W + (r.y0 * W + r.x0)] == 1.0f);  // and vice versa
            ++seen;
        }
        CHECK(t[0 * K + 0] == Approx(r.lambda));
        CHECK(t[0 * K + 2] == Approx(1 - r.lambda));
        CHECK(t[1 * K + 1] == Approx(1.0));  // the middle sample mixes with itself
    }
    CHECK(seen > 30);
}

TEST_CASE("mix_batch without mixing gives plain smoothed targets; switch prob picks CutMix about half the time", "[data]")
{
    tensor<float> x({2, 2, 2, 1});
    x.zero();
    std::vector<int> labels{1, 0};
    mix_options mo;
    mo.smoothing = 0.2;
    tensor<float> t;
    mix_result r = mix_batch(x, labels, 4, mo, 1, t);
    CHECK(r.lambda == 1.0);
    CHECK(t[1] == Approx(0.85));
    CHECK(t[0] == Approx(0.05));
    mo.mixup_alpha = 0.8;
    mo.cutmix_alpha = 1.0;
    int cut = 0;
    for (std::uint64_t s = 0; s < 400; ++s) cut += mix_batch(x, labels, 4, mo, s, t).cutmix;
    CHECK(cut > 150);
    CHECK(cut < 250);
    counter_rng rng(3, 3);
    double m = 0;
    for (int i = 0; i < 4000; ++i) m += sample_beta(0.8, 0.8, rng);
    CHECK(m / 4000 == Approx(0.5).margin(0.03));
}
