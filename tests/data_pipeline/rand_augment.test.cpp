// RandAugment (timm rand-m9-mstd0.5-inc1) against Pillow golden outputs made by
// tools/make_randaug_golden.py (timm's op functions re-implemented with PIL), plus the policy
// parser, the per-image sampling and determinism.
//
// Tolerances (max |ours - PIL| on uint8):
//  * point ops (AutoContrast, Equalize, Invert, Posterize*, Solarize*, SolarizeAdd) and the
//    enhance ops (Color*, Contrast*, Brightness*, Sharpness*): 0. They are integer LUTs or PIL's
//    float Image.blend / 3x3 filter reproduced operation by operation.
//  * geometric ops (Rotate, ShearX/Y, TranslateX/YRel; bicubic and bilinear): 0 as well. We run
//    PIL's Geometry.c arithmetic in the same double-precision order (the file is built with
//    -ffp-contract=off) and Python's round(cos, 15) through printf/strtod, so no truncation
//    boundary can fall differently: measured max abs diff 0 for every case with Pillow 9.4.
#include <convnextv2/data/image_folder.hpp>
#include <convnextv2/data/rand_augment.hpp>
#include <support/fixtures.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

using namespace convnextv2;

namespace {

std::string fixture(const std::string& name) { return std::string(CONVNEXTV2_TEST_DATA) + "/transforms/" + name; }

struct diff_stats {
    int max = 0;
    std::size_t over1 = 0;  // values differing by more than 1
};

diff_stats compare(const image_u8& a, const image_u8& b)
{
    REQUIRE(a.height == b.height);
    REQUIRE(a.width == b.width);
    diff_stats d;
    for (std::size_t i = 0; i < a.pixels.size(); ++i) {
        const int e = std::abs(int(a.pixels[i]) - int(b.pixels[i]));
        d.max = std::max(d.max, e);
        d.over1 += e > 1;
    }
    return d;
}

bool geometric(const std::string& op)
{
    return op == "Rotate" || op == "ShearX" || op == "ShearY" || op == "TranslateXRel" || op == "TranslateYRel";
}

// The cases make_randaug_golden.py writes for `op` (kept in the same order).
struct golden_case {
    double magnitude;
    bool negate;
    resample_filter filter;
    std::string file;
};

std::vector<golden_case> cases_for(const std::string& op)
{
    std::vector<golden_case> c{{9, false, resample_filter::bicubic, ""}};
    if (rand_augment_op_signed(op)) c.push_back({9, true, resample_filter::bicubic, ""});
    if (geometric(op)) {
        c.push_back({9, false, resample_filter::bilinear, "_bilinear"});
        c.push_back({6.5, true, resample_filter::bicubic, ""});
    }
    for (auto& k : c) {
        char m[16];
        std::snprintf(m, sizeof m, "%g", k.magnitude);
        std::string ms = m;
        for (auto& ch : ms)
            if (ch == '.') ch = 'p';
        k.file = "randaug/" + op + "_m" + ms + (k.negate ? "_neg" : "_pos") + k.file + ".png";
    }
    return c;
}

void check_op_against_pil(const std::string& op)
{
    const image_u8 in = decode_image_file(fixture("input.png"));
    REQUIRE(in.width == 64);
    REQUIRE(in.height == 48);
    auto cases = cases_for(op);
    REQUIRE(!cases.empty());
    int changed = 0;
    for (const auto& c : cases) {
        INFO(c.file);
        rand_augment_params p;  // fill (124, 116, 104)
        p.interpolation = c.filter;
        const image_u8 ours = apply_op(op, in, c.magnitude, c.negate, p);
        const image_u8 pil = decode_image_file(fixture(c.file));
        const diff_stats d = compare(ours, pil);
        INFO("max abs diff " << d.max << ", values off by > 1: " << d.over1);
        CHECK(d.max == 0);
        changed += ours.pixels != in.pixels;
    }
    if (op == "AutoContrast" || op == "Equalize") {
        // input.png spans 0..255 in every channel (AutoContrast is the identity there): a
        // low-contrast copy (60 + v / 3) as well.
        const image_u8 low = decode_image_file(fixture("randaug/low_contrast.png"));
        const image_u8 ours = apply_op(op, low, 9);
        const diff_stats d = compare(ours, decode_image_file(fixture("randaug/" + op + "_low_contrast.png")));
        INFO("low contrast input: max abs diff " << d.max);
        CHECK(d.max == 0);
        changed += ours.pixels != low.pixels;
    }
    // The op must change the picture in at least one case (else the comparison proves little).
    CHECK(changed >= 1);
}

} // namespace

#define RANDAUG_GOLDEN_TEST(OP)                                                             \
    TEST_CASE("RandAugment op " OP " matches PIL (timm's op function), max abs diff 0", "[data][randaug]") \
    {                                                                                         \
        check_op_against_pil(OP);                                                             \
    }

RANDAUG_GOLDEN_TEST("AutoContrast")
RANDAUG_GOLDEN_TEST("Equalize")
RANDAUG_GOLDEN_TEST("Invert")
RANDAUG_GOLDEN_TEST("Rotate")
RANDAUG_GOLDEN_TEST("PosterizeIncreasing")
RANDAUG_GOLDEN_TEST("SolarizeIncreasing")
RANDAUG_GOLDEN_TEST("SolarizeAdd")
RANDAUG_GOLDEN_TEST("ColorIncreasing")
RANDAUG_GOLDEN_TEST("ContrastIncreasing")
RANDAUG_GOLDEN_TEST("BrightnessIncreasing")
RANDAUG_GOLDEN_TEST("SharpnessIncreasing")
RANDAUG_GOLDEN_TEST("ShearX")
RANDAUG_GOLDEN_TEST("ShearY")
RANDAUG_GOLDEN_TEST("TranslateXRel")
RANDAUG_GOLDEN_TEST("TranslateYRel")
// The plain (non-increasing) variants timm uses without inc1.
RANDAUG_GOLDEN_TEST("Posterize")
RANDAUG_GOLDEN_TEST("Solarize")
RANDAUG_GOLDEN_TEST("Color")
RANDAUG_GOLDEN_TEST("Contrast")
RANDAUG_GOLDEN_TEST("Brightness")
RANDAUG_GOLDEN_TEST("Sharpness")

TEST_CASE("RandAugment level-to-argument mapping follows timm at magnitude 9", "[data][randaug]")
{
    CHECK(rand_augment_op_arg("Rotate", 9, false) == Approx(27.0));
    CHECK(rand_augment_op_arg("Rotate", 9, true) == Approx(-27.0));
    CHECK(rand_augment_op_arg("ShearX", 9, true) == Approx(-0.27));
    CHECK(rand_augment_op_arg("TranslateYRel", 9, false) == Approx(0.405));
    CHECK(rand_augment_op_arg("PosterizeIncreasing", 9, false) == 1);   // 4 - int(3.6)
    CHECK(rand_augment_op_arg("PosterizeIncreasing", 10, false) == 0);
    CHECK(rand_augment_op_arg("SolarizeIncreasing", 9, false) == 26);   // 256 - int(230.4)
    CHECK(rand_augment_op_arg("SolarizeAdd", 9, false) == 99);          // int(99.0)
    CHECK(rand_augment_op_arg("SolarizeAdd", 10, false) == 110);
    CHECK(rand_augment_op_arg("ColorIncreasing", 9, false) == Approx(1.81));
    CHECK(rand_augment_op_arg("ColorIncreasing", 9, true) == Approx(0.19));
    CHECK(rand_augment_op_arg("ContrastIncreasing", 10, true) == Approx(0.1));  // max(0.1, 1 - 0.9)
    CHECK(rand_augment_op_arg("Sharpness", 9, false) == Approx(1.72));
    CHECK(rand_augment_op_arg("Invert", 9, true) == 0);
    CHECK_FALSE(rand_augment_op_signed("SolarizeAdd"));
    CHECK(rand_augment_op_signed("BrightnessIncreasing"));
    CHECK_THROWS_WITH(rand_augment_op_arg("Cutout", 9, false), Catch::Contains("'Cutout'") && Catch::Contains("TranslateXRel"));
    image_u8 img(4, 4);
    CHECK_THROWS_WITH(apply_op("rotate", img, 9), Catch::Contains("'rotate' is unknown"));
}

TEST_CASE("RandAugment policy parser: timm and MindCV spellings, errors name the string", "[data][randaug]")
{
    for (const char* s : {"rand-m9-mstd0.5-inc1", "randaug-m9-mstd0.5-inc1"}) {
        INFO(s);
        rand_augment_policy p = parse_rand_augment(s);
        CHECK(p.spec == s);
        CHECK(p.num_layers == 2);
        CHECK(p.magnitude == 9);
        CHECK(p.magnitude_std == 0.5);
        CHECK(p.magnitude_max == 10);
        CHECK(p.prob == 0.5);
        CHECK(p.increasing);
        REQUIRE(p.ops.size() == 15);
        CHECK(p.ops == rand_augment_ops(true));
        CHECK(p.ops[4] == "PosterizeIncreasing");
    }
    rand_augment_policy q = parse_rand_augment("rand-n3-m7-mstd101-mmax15-p0.8");
    CHECK(q.num_layers == 3);
    CHECK(q.magnitude == 7);
    CHECK(std::isinf(q.magnitude_std));
    CHECK(q.magnitude_max == 15);
    CHECK(q.prob == 0.8);
    CHECK_FALSE(q.increasing);
    CHECK(q.ops[4] == "Posterize");
    CHECK(parse_rand_augment("rand").magnitude == 10);  // timm defaults
    for (const char* bad : {"rand-m9-mstd0.5-inc1-", "rand-mx9", "rand-m9.5", "rand-m9-foo3", "randaugment-m9", "augmix-m5",
                            "rand-m9-mstd0.5x", "rand-w0-m9", "rand-m9-p1.5", "m9-rand"}) {
        INFO(bad);
        CHECK_THROWS_WITH(parse_rand_augment(bad), Catch::Contains(std::string("'") + bad + "'"));
    }
}

TEST_CASE("RandAugment sampling: 2 ops with replacement, p 0.5, magnitude N(9, 0.5) clipped, signs 50/50", "[data][randaug]")
{
    rand_augment_policy p = parse_rand_augment("rand-m9-mstd0.5-inc1");
    image_u8 img(8, 8);
    for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<std::uint8_t>(i * 7);
    int applied = 0, slots = 0, negated = 0, signed_applied = 0;
    double msum = 0, m2sum = 0;
    std::map<std::string, int> seen;
    const int draws = 4000;
    for (int i = 0; i < draws; ++i) {
        image_u8 x = img;
        counter_rng rng(77, static_cast<std::uint64_t>(i));
        for (const auto& s : rand_augment(x, p, rng)) {
            ++slots;
            ++seen[s.op];
            if (!s.applied) continue;
            ++applied;
            CHECK(s.magnitude >= 0.0);
            CHECK(s.magnitude <= 10.0);
            msum += s.magnitude;
            m2sum += s.magnitude * s.magnitude;
            if (rand_augment_op_signed(s.op)) {
                ++signed_applied;
                negated += s.negate;
            }
        }
    }
    CHECK(slots == 2 * draws);
    CHECK(seen.size() == 15);
    for (auto& kv : seen) CHECK(std::abs(kv.second - 2 * draws / 15.0) < 5 * std::sqrt(2 * draws / 15.0));
    CHECK(std::abs(applied / double(slots) - 0.5) < 0.02);
    const double mean = msum / applied, sd = std::sqrt(m2sum / applied - mean * mean);
    CHECK(mean == Approx(9.0).margin(0.03));
    CHECK(sd == Approx(0.5).margin(0.03));
    CHECK(std::abs(negated / double(signed_applied) - 0.5) < 0.04);
    // mstd > 100: uniform in [0, m].
    rand_augment_policy u = parse_rand_augment("rand-m8-mstd200-p1");
    double lo = 10, hi = 0;
    for (int i = 0; i < 500; ++i) {
        image_u8 x = img;
        counter_rng rng(5, static_cast<std::uint64_t>(i));
        for (const auto& s : rand_augment(x, u, rng)) {
            CHECK(s.applied);
            lo = std::min(lo, s.magnitude);
            hi = std::max(hi, s.magnitude);
        }
    }
    CHECK(lo < 0.2);
    CHECK(hi > 7.8);
    CHECK(hi <= 8.0);
}

TEST_CASE("RandAugment is a pure function of the caller's rng; p0 and n0 leave the image alone", "[data][randaug]")
{
    const image_u8 in = decode_image_file(fixture("input.png"));
    rand_augment_policy p = parse_rand_augment("rand-m9-mstd0.5-inc1");
    auto run = [&](std::uint64_t seed, std::uint64_t index) {
        image_u8 x = in;
        counter_rng rng(seed, index);
        rand_augment(x, p, rng);
        return x.pixels;
    };
    int changed = 0;
    for (std::uint64_t i = 0; i < 20; ++i) {
        CHECK(run(3, i) == run(3, i));
        changed += run(3, i) != in.pixels;
    }
    CHECK(changed >= 10);  // P(no op applied) = 1/4 per image
    CHECK(run(3, 1) != run(3, 2));
    for (const char* s : {"rand-m9-p0", "rand-m9-n0"}) {
        image_u8 x = in;
        counter_rng rng(1, 2);
        rand_augment(x, parse_rand_augment(s), rng);
        CHECK(x.pixels == in.pixels);
    }
    CHECK(fill_from_mean(imagenet_mean) == std::array<std::uint8_t, 3>{124, 116, 104});
}
