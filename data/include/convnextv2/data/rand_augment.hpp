// SPDX-License-Identifier: MIT
// RandAugment as timm implements it (timm/data/auto_augment.py: rand_augment_transform,
// RandAugment, AugmentOp and the PIL op functions), on 8-bit RGB images in HWC order.
//
//  * Policy strings: timm "rand-m9-mstd0.5-inc1" or MindCV "randaug-m9-mstd0.5-inc1"; sections
//    m<int> magnitude (default 10), n<int> ops per image (2), mstd<float> magnitude std (0; > 100
//    means uniform in [0, m]), mmax<int> magnitude clip (10), p<float> per-op probability (0.5),
//    inc<v> the "Increasing" op set. As in timm, any inc value turns it on (Python bool("0") is
//    True). Anything else (weights w/t, unknown or garbled sections) is an error naming the string.
//  * Per image: num_layers ops drawn uniformly with replacement; each runs with probability p;
//    magnitude ~ N(m, mstd) clipped to [0, mmax]; level = magnitude / 10; signed ops are negated
//    with probability 1/2. Every draw comes from the caller's counter_rng.
//  * The ops reproduce the PIL functions timm calls (Pillow 9.4 C code): ImageOps.autocontrast /
//    equalize / invert / posterize / solarize, timm's solarize_add LUT, ImageEnhance.Color /
//    Contrast / Brightness / Sharpness (Image.blend in float, truncating) and Image.transform
//    (AFFINE) / Image.rotate with bilinear or bicubic (a = -1, PIL's Geometry.c) sampling, pixels
//    mapped from outside the image take the fill colour (timm: img_mean, (124, 116, 104) for the
//    ImageNet mean). Golden tests: tests/data_pipeline/rand_augment.test.cpp.
#pragma once
#include "transforms.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace convnextv2 {

// ---- the PIL primitives (arguments as PIL / timm's op functions take them)
namespace augment {

image_u8 auto_contrast(const image_u8& img);                       // ImageOps.autocontrast(img)
image_u8 equalize(const image_u8& img);                            // ImageOps.equalize(img)
image_u8 invert(const image_u8& img);                              // ImageOps.invert(img)
image_u8 posterize(const image_u8& img, int bits_to_keep);         // timm posterize (>= 8: unchanged)
image_u8 solarize(const image_u8& img, int threshold);             // ImageOps.solarize
image_u8 solarize_add(const image_u8& img, int add, int threshold = 128);
image_u8 color(const image_u8& img, double factor);                // ImageEnhance.Color(img).enhance(f)
image_u8 contrast(const image_u8& img, double factor);
image_u8 brightness(const image_u8& img, double factor);
image_u8 sharpness(const image_u8& img, double factor);
// Image.transform(size, AFFINE, m, resample, fillcolor): output (x, y) samples the input at
// (m0·(x+.5) + m1·(y+.5) + m2, m3·(x+.5) + m4·(y+.5) + m5).
image_u8 affine(const image_u8& img, const std::array<double, 6>& m, const std::array<std::uint8_t, 3>& fill,
                resample_filter filter);
image_u8 rotate(const image_u8& img, double degrees, const std::array<std::uint8_t, 3>& fill, resample_filter filter);
image_u8 shear_x(const image_u8& img, double factor, const std::array<std::uint8_t, 3>& fill, resample_filter filter);
image_u8 shear_y(const image_u8& img, double factor, const std::array<std::uint8_t, 3>& fill, resample_filter filter);
image_u8 translate_x_rel(const image_u8& img, double pct, const std::array<std::uint8_t, 3>& fill, resample_filter filter);
image_u8 translate_y_rel(const image_u8& img, double pct, const std::array<std::uint8_t, 3>& fill, resample_filter filter);

} // namespace augment

// Fill colour and resampling of the geometric ops (timm's hparams img_mean and interpolation).
struct rand_augment_params {
    std::array<std::uint8_t, 3> fill{124, 116, 104};  // round(255 · ImageNet mean)
    resample_filter interpolation = resample_filter::bicubic;
    double translate_pct = 0.45;
};

// fill = round(255 · mean), clipped at 255 (timm create_transform's img_mean).
std::array<std::uint8_t, 3> fill_from_mean(const std::array<float, 3>& mean);

// timm's op names: the 15 of _RAND_INCREASING_TRANSFORMS (increasing = true) or of _RAND_TRANSFORMS.
const std::vector<std::string>& rand_augment_ops(bool increasing);
// Whether the op's argument is negated half of the time (Rotate, Shear*, Translate*, *Increasing enhance).
bool rand_augment_op_signed(const std::string& name);

// timm's level_to_arg for `name` at `magnitude` (0..10 scale), with the sign applied when
// `negate` (ignored for unsigned ops): degrees, factor, bits, threshold, pixels-fraction, ...
// Ops without an argument return 0.
double rand_augment_op_arg(const std::string& name, double magnitude, bool negate);

// Applies one op alone: AugmentOp.__call__ without its probability and magnitude noise.
// An unknown name is an error listing the known ones.
image_u8 apply_op(const std::string& name, const image_u8& img, double magnitude, bool negate = false,
                  const rand_augment_params& p = {});

struct rand_augment_policy {
    std::string spec;            // the string it was parsed from
    int num_layers = 2;
    double magnitude = 10;
    double magnitude_std = 0;    // > 0: N(magnitude, std); infinity: U(0, magnitude)
    double magnitude_max = 10;
    double prob = 0.5;
    bool increasing = false;
    std::vector<std::string> ops;
    rand_augment_params params;
};

// Parses a timm/MindCV RandAugment string (see the top of this file); errors name the string.
rand_augment_policy parse_rand_augment(const std::string& spec);

// What one op slot of rand_augment() did (tests, debugging).
struct rand_augment_step {
    std::string op;
    bool applied = false;
    double magnitude = 0;
    bool negate = false;
};

// timm RandAugment.__call__: in place; every random choice from `rng`.
std::vector<rand_augment_step> rand_augment(image_u8& img, const rand_augment_policy& policy, counter_rng& rng);

} // namespace convnextv2
