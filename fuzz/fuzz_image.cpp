// SPDX-License-Identifier: MIT
// Fuzz target: JPEG/PNG decoding (data/src/image_folder.cpp) and the transforms the ImageFolder
// pipeline applies afterwards (data/src/transforms.cpp): the train path (size probe,
// RandomResizedCrop box, DCT-scaled decode, crop, bicubic resize, flip, normalise, random
// erasing) and the eval path (short-side resize + centre crop). The first byte picks options.
#include "fuzz_common.hpp"

#include <convnextv2/data/image_folder.hpp>
#include <convnextv2/data/transforms.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace convnextv2;
    if (size < 1) return 0;
    // Keep decoded images small enough for the fuzzer's memory limit (the default allows ~179 MP).
    static const bool limited = (set_max_image_pixels(std::int64_t{1} << 22), true);
    (void)limited;
    const std::uint8_t opt = data[0];
    const std::vector<std::uint8_t> bytes(data + 1, data + size);
    const int S = 8 + (opt & 7) * 4;
    const resample_filter filt = (opt & 8) ? resample_filter::bilinear : resample_filter::bicubic;
    try {
        const auto hw = read_image_size(bytes, "fuzz");
        counter_rng rng(opt, 1);
        const crop_box b = random_resized_crop_params(hw[0], hw[1], {0.08, 1.0}, {0.75, 4.0 / 3.0}, rng);
        const double down = (opt & 16) ? std::min(b.width, b.height) / (2.0 * S) : 1.0;
        image_u8 img = decode_image(bytes, "fuzz", down);
        if (img.width != hw[1] || img.height != hw[0]) {  // DCT-scaled: map the box as image_folder_dataset does
            if (down <= 1) std::abort();
            crop_box c;
            const double sx = static_cast<double>(img.width) / hw[1], sy = static_cast<double>(img.height) / hw[0];
            c.left = std::min(static_cast<int>(std::lround(b.left * sx)), img.width - 1);
            c.top = std::min(static_cast<int>(std::lround(b.top * sy)), img.height - 1);
            c.width = std::clamp(static_cast<int>(std::lround(b.width * sx)), 1, img.width - c.left);
            c.height = std::clamp(static_cast<int>(std::lround(b.height * sy)), 1, img.height - c.top);
            img = crop(img, c);
        } else {
            img = crop(img, b);
        }
        image_u8 out = resize(img, S, S, filt);
        if (opt & 32) hflip(out);
        std::vector<float> hwc(static_cast<std::size_t>(S) * S * 3);
        normalize(out, imagenet_mean, imagenet_std, hwc.data());
        random_erasing(hwc.data(), S, S, 3, 1.0, (opt & 64) != 0, rng);
        image_u8 ev = eval_transform(decode_image(bytes, "fuzz"), S, (opt & 128) ? 1.0 : 0.875, filt);
        if (ev.width != S || ev.height != S) std::abort();
    } catch (const error& e) {
        fuzz::rejected(e);
    }
    return 0;
}
