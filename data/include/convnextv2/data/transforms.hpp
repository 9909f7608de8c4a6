// SPDX-License-Identifier: MIT
// Image transforms of the ImageNet pipeline (SPEC §4.5, §4.6), on 8-bit RGB images in HWC order.
//  * resize(): Pillow's two-pass separable resampling (horizontal, then vertical, 8-bit rounding
//    between passes, 22-bit fixed-point weights): the filter support is scaled by the downscale
//    factor (antialiasing), bicubic a = -0.5. Output matches PIL Image.resize bit for bit in our
//    tests (tolerance stated there: max abs diff <= 1).
//  * random_resized_crop_params(): torchvision RandomResizedCrop.get_params (10 attempts, then the
//    centre-crop fallback); Python's round-half-even is reproduced with nearbyint.
//  * eval_transform(): official datasets.py — size < 384: resize the short side to
//    floor(size / crop_pct) and centre-crop; size >= 384: resize straight to size × size.
//  * random_erasing(): timm RandomErasing(mode "pixel", count 1) on the normalised float image.
//  * mix_batch(): timm Mixup in batch mode (partner = reversed batch), soft targets with label
//    smoothing folded in, CutMix λ recomputed from the clipped box.
// All randomness comes from a caller-supplied counter_rng / seed, never from global state.
#pragma once
#include <convnextv2/core/rng.hpp>
#include <convnextv2/core/tensor.hpp>

#include <array>
#include <cstdint>
#include <vector>

namespace convnextv2 {

// 8-bit RGB image, HWC, row-major.
struct image_u8 {
    int height = 0, width = 0;
    std::vector<std::uint8_t> pixels;  // height·width·3
    image_u8() = default;
    image_u8(int h, int w) : height(h), width(w), pixels(static_cast<std::size_t>(h) * static_cast<std::size_t>(w) * 3) {}
    std::uint8_t* row(int y) { return pixels.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(width) * 3; }
    const std::uint8_t* row(int y) const { return pixels.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(width) * 3; }
};

enum class resample_filter { bicubic, bilinear };

// Parses "bicubic" / "bilinear"; anything else is an error naming the value.
resample_filter parse_resample_filter(const std::string& name);

// PIL Image.resize((out_w, out_h), filter) of the whole image.
image_u8 resize(const image_u8& in, int out_w, int out_h, resample_filter f = resample_filter::bicubic);

struct crop_box {
    int top = 0, left = 0, height = 0, width = 0;
};

// A copy of the region (must lie inside the image).
image_u8 crop(const image_u8& in, const crop_box& b);

// torchvision RandomResizedCrop.get_params on an image of height × width.
crop_box random_resized_crop_params(int height, int width, std::array<double, 2> scale, std::array<double, 2> ratio,
                                    counter_rng& rng);

// torchvision CenterCrop geometry (top = round((h − th)/2), half to even); target must fit.
crop_box center_crop_box(int height, int width, int th, int tw);

// torchvision Resize(int): the short side becomes `short_side`, the long side int(short·long/short).
std::array<int, 2> short_side_size(int height, int width, int short_side);  // {h, w}

// The official evaluation transform (see the top of this file); output is size × size.
image_u8 eval_transform(const image_u8& in, int size, double crop_pct, resample_filter f = resample_filter::bicubic);
// The side the short edge is resized to before the centre crop (0 when resizing straight to size×size).
int eval_resize_side(int size, double crop_pct);

void hflip(image_u8& img);

// (pixel/255 − mean)/std into out_hwc (H·W·3 floats).
void normalize(const image_u8& img, const std::array<float, 3>& mean, const std::array<float, 3>& std, float* out_hwc);

inline constexpr std::array<float, 3> imagenet_mean{0.485f, 0.456f, 0.406f};
inline constexpr std::array<float, 3> imagenet_std{0.229f, 0.224f, 0.225f};

struct erase_box {
    bool applied = false;
    int top = 0, left = 0, height = 0, width = 0;
};

// timm RandomErasing (count 1, area U(0.02, 1/3), log-uniform aspect in [0.3, 1/0.3], 10 attempts):
// with probability `prob`, fills one box with per-pixel N(0, 1) (random_fill) or zeros.
erase_box random_erasing(float* hwc, int height, int width, int channels, double prob, bool random_fill, counter_rng& rng);

// Beta(a, a) from two Gamma draws (Marsaglia–Tsang).
double sample_beta(double a, double b, counter_rng& rng);

struct mix_options {
    double mixup_alpha = 0.0;   // 0: off
    double cutmix_alpha = 0.0;  // 0: off
    double prob = 1.0;          // probability of mixing a batch at all
    double switch_prob = 0.5;   // with both enabled: probability of CutMix
    double smoothing = 0.0;     // label smoothing folded into the soft targets
};

struct mix_result {
    double lambda = 1.0;        // weight of the sample's own label (after CutMix correction)
    bool cutmix = false;
    int y0 = 0, y1 = 0, x0 = 0, x1 = 0;  // CutMix box [y0, y1) × [x0, x1)
};

// Mixes images [N, H, W, C] in place with the reversed batch and writes soft_targets [N, K]:
// λ·smooth(y_i) + (1 − λ)·smooth(y_{N−1−i}). Deterministic in `seed`.
mix_result mix_batch(tensor<float>& images, const std::vector<int>& labels, index_t K, const mix_options& opt,
                     std::uint64_t seed, tensor<float>& soft_targets);

} // namespace convnextv2
