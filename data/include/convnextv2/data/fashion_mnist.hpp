// SPDX-License-Identifier: MIT
// Fashion-MNIST from IDX files (Debian package dataset-fashion-mnist installs them gzipped under
// /usr/share/datasets/fashion-mnist). The reader accepts "name" or "name.gz" (zlib reads both)
// and is strict: magic (2051 images / 2049 labels, unsigned-byte type), dimensions, and the data
// length implied by the header are checked, and every error names the file and what is wrong.
//
// fashion_mnist_dataset turns the 28×28 grayscale images into image_size × image_size × in_chans
// floats normalised with mean 0.2860, std 0.3530:
//  * image_size >= 28 (default): the image sits at the centre of a black canvas (pixel value 0,
//    Fashion-MNIST's background) with offset ⌊(image_size − 28)/2⌋; with `resize` set, or when
//    image_size < 28, it is resampled bilinearly instead (half-pixel centres, edge clamp).
//  * in_chans 3 replicates the gray channel.
//  * train-time augmentation (get(..., train = true)): torchvision-style RandomCrop(image_size,
//    padding = random_crop_padding, zero fill) followed by a horizontal flip with probability
//    hflip, then (re_prob > 0) timm RandomErasing on the normalised image, all drawn from
//    counter_rng(epoch_seed, index).
#pragma once
#include "dataset.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace convnextv2 {

inline const char* default_fashion_mnist_dir() { return "/usr/share/datasets/fashion-mnist"; }

// A decoded IDX file of unsigned bytes.
struct idx_array {
    std::string path;           // the file actually read
    std::vector<index_t> dims;  // e.g. {60000, 28, 28} or {60000}
    std::vector<std::uint8_t> data;
};

// Reads an IDX ubyte file (plain or gzip). expected_magic: 2051 for images, 2049 for labels.
idx_array read_idx(const std::string& path, std::uint32_t expected_magic);

// dir/stem if it exists, else dir/stem.gz; an error naming both when neither exists.
std::string find_idx_file(const std::string& dir, const std::string& stem);

struct fashion_mnist_options {
    std::string dir = default_fashion_mnist_dir();
    std::string split = "train";  // "train" (60000, train-*) or "test" (10000, t10k-*)
    int image_size = 32;
    bool resize = false;          // resample to image_size instead of padding
    int in_chans = 1;             // 1, or 3 (replicated)
    float mean = 0.2860f;
    float std = 0.3530f;
    int random_crop_padding = 2;  // train-time only; 0 disables the random crop
    double hflip = 0.5;           // train-time only
    double re_prob = 0.0;         // train-time only: random-erasing probability
    bool re_random_fill = true;   // erased pixels: N(0, 1) per pixel (timm "pixel"), else 0
    index_t limit = 0;            // use only the first `limit` samples (0: all)
};

class fashion_mnist_dataset : public dataset {
public:
    explicit fashion_mnist_dataset(fashion_mnist_options opt = {});

    index_t size() const override { return count_; }
    index_t num_classes() const override { return 10; }
    shape_t sample_shape() const override { return {opt_.image_size, opt_.image_size, opt_.in_chans}; }
    void get(index_t i, std::uint64_t epoch_seed, bool train, float* out_hwc, int* label) const override;

    const fashion_mnist_options& options() const { return opt_; }
    // Raw 28×28 pixels of sample i and its label.
    const std::uint8_t* raw_image(index_t i) const { return pixels_.data() + i * 28 * 28; }
    int raw_label(index_t i) const { return labels_[static_cast<std::size_t>(i)]; }

    static const char* class_name(int label);

private:
    fashion_mnist_options opt_;
    index_t count_ = 0;
    std::vector<std::uint8_t> pixels_;
    std::vector<std::uint8_t> labels_;
};

} // namespace convnextv2
