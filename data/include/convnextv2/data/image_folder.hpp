// SPDX-License-Identifier: MIT
// ImageFolder datasets: root/{train,val}/<class>/*.{jpg,jpeg,png} (extensions case-insensitive),
// classes = sorted sub-folder names, labels = their positions. Missing split or class folders, a
// class without images or an empty split are errors naming the path.
//
// Decoding: JPEG with TurboJPEG (DCT-scaled decoding when the image will afterwards be
// downscaled by more than 2× — we keep at least 2× for the antialiased resize to work on),
// PNG with libpng; grayscale, palette, CMYK and alpha inputs all become 8-bit RGB (alpha dropped,
// as PIL's convert("RGB")).
//
// get(): train = true applies RandomResizedCrop (bicubic) → hflip → RandAugment (auto_augment,
// rand_augment.hpp) → normalise → random erasing (timm's order), all drawn from
// counter_rng(epoch_seed, index) streams; train = false applies the eval transform.
// A corrupt or unreadable image is reported once on stderr (naming the file), counted in
// skipped_count(), and replaced by the next readable sample of the split; with fatal_corrupt it
// throws instead.
#pragma once
#include "dataset.hpp"
#include "rand_augment.hpp"
#include "transforms.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace convnextv2 {

// Decoders and read_image_size() refuse images with more pixels than this, before allocating
// (default 178,956,970 = 2 x Pillow's MAX_IMAGE_PIXELS, where Pillow itself raises). A PNG
// whose dimensions cannot fit in its compressed size (deflate expands at most 1032:1) is
// rejected too. Process-wide; tests and fuzzers lower it.
std::int64_t max_image_pixels();
void set_max_image_pixels(std::int64_t pixels);

// Size of an encoded JPEG/PNG without decoding it; throws on anything else.
std::array<int, 2> read_image_size(const std::vector<std::uint8_t>& bytes, const std::string& name);  // {h, w}

// Decodes a JPEG or PNG to RGB. max_downscale > 1 lets a JPEG be DCT-scaled by up to that factor
// (the result is then smaller than the stored size). Throws convnextv2::error naming `name`.
image_u8 decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name, double max_downscale = 1.0);
image_u8 decode_image_file(const std::string& path, double max_downscale = 1.0);
std::vector<std::uint8_t> read_file_bytes(const std::string& path);

// Encoders (tests, benchmarks, examples): quality 1..100; PNG is lossless.
std::vector<std::uint8_t> encode_jpeg(const image_u8& img, int quality = 90);
void write_png(const std::string& path, const image_u8& img);

struct image_folder_options {
    std::string root;              // the folder holding train/ and val/
    std::string split = "train";
    int image_size = 224;
    std::array<double, 2> scale{0.08, 1.0};
    std::array<double, 2> ratio{0.75, 4.0 / 3.0};
    std::string interpolation = "bicubic";
    double hflip = 0.5;
    double re_prob = 0.25;
    std::string re_value = "random";  // "random" (per-pixel N(0,1)) or "0"
    double crop_pct = 0.875;
    std::string auto_augment;         // "" (off) or a RandAugment policy: "rand-m9-mstd0.5-inc1" / "randaug-..."
    bool dct_scaling = true;
    bool fatal_corrupt = false;
    std::array<float, 3> mean = imagenet_mean;
    std::array<float, 3> std = imagenet_std;
};

struct image_folder_index {
    std::vector<std::string> classes;
    std::vector<std::string> files;
    std::vector<int> labels;
};

// Lists split_dir/<class>/<image> (sorted classes, sorted files per class).
image_folder_index scan_image_folder(const std::string& split_dir);

// Writes classes as a JSON array to <output_dir>/classes.json and returns the path.
std::string write_classes_json(const std::string& output_dir, const std::vector<std::string>& classes);
// Reads such a file back.
std::vector<std::string> read_classes_json(const std::string& path);

class image_folder_dataset : public dataset {
public:
    explicit image_folder_dataset(image_folder_options opt);

    index_t size() const override { return static_cast<index_t>(index_.files.size()); }
    index_t num_classes() const override { return static_cast<index_t>(index_.classes.size()); }
    shape_t sample_shape() const override { return {opt_.image_size, opt_.image_size, 3}; }
    void get(index_t i, std::uint64_t epoch_seed, bool train, float* out_hwc, int* label) const override;

    // The 8-bit image of sample i after the geometric transforms (before normalisation).
    image_u8 transformed(index_t i, std::uint64_t epoch_seed, bool train) const;

    const std::vector<std::string>& classes() const { return index_.classes; }
    const std::string& file(index_t i) const { return index_.files[static_cast<std::size_t>(i)]; }
    int label(index_t i) const { return index_.labels[static_cast<std::size_t>(i)]; }
    const image_folder_options& options() const { return opt_; }
    // Distinct files found corrupt so far.
    index_t skipped_count() const { return skipped_.load(); }

private:
    image_u8 load(index_t i, std::uint64_t epoch_seed, bool train) const;
    void report_corrupt(index_t i, const std::string& why) const;

    image_folder_options opt_;
    resample_filter filter_;
    std::optional<rand_augment_policy> randaug_;  // fill = round(255·mean), resample = interpolation
    image_folder_index index_;
    mutable std::atomic<index_t> skipped_{0};
    mutable std::mutex bad_mutex_;
    mutable std::set<index_t> bad_;
};

} // namespace convnextv2
