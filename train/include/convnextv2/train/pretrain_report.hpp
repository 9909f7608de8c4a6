// SPDX-License-Identifier: MIT
// The reconstruction picture of FCMAE pretraining (the official visualisation, SPEC §6): one row
// per image — original | masked input (masked patches grey) | reconstruction | reconstruction with
// the visible patches pasted back — de-normalised to 8-bit RGB and written as PNG. Small images
// are enlarged (nearest) so a 28–32 px Fashion-MNIST digit stays visible.
#pragma once
#include <convnextv2/data/image_folder.hpp>
#include <convnextv2/fcmae/mask.hpp>

#include <algorithm>
#include <array>
#include <cmath>

namespace convnextv2::train {

struct pixel_denorm {
    std::array<float, 3> mean{0.f, 0.f, 0.f};
    std::array<float, 3> std{1.f, 1.f, 1.f};
};

// x, rec, rec_paste: (N, S, S, C) with C = 1 or 3 in the dataset's normalisation.
inline void write_reconstruction_grid(const std::string& path, const tensor<float>& x, const fcmae_mask& mask, index_t patch,
                                      const tensor<float>& rec, const tensor<float>& rec_paste, const pixel_denorm& dn)
{
    const index_t N = x.dim(0), S = x.dim(1), C = x.dim(3);
    CONVNEXTV2_CHECK(C == 1 || C == 3, path, ": reconstructions need 1 or 3 channels, got ", C);
    const int zoom = static_cast<int>(std::max<index_t>(1, 96 / S)), gap = 4, cols = 4;
    const int cell = static_cast<int>(S) * zoom;
    image_u8 img(static_cast<int>(N) * (cell + gap) + gap, cols * (cell + gap) + gap);
    std::fill(img.pixels.begin(), img.pixels.end(), std::uint8_t{255});
    auto to_u8 = [&](float v, index_t c) {
        const float p = (v * dn.std[static_cast<std::size_t>(C == 3 ? c : 0)] + dn.mean[static_cast<std::size_t>(C == 3 ? c : 0)]) * 255.f;
        return static_cast<std::uint8_t>(std::clamp(std::lround(p), 0L, 255L));
    };
    const tensor<float>* srcs[cols] = {&x, &x, &rec, &rec_paste};
    for (index_t n = 0; n < N; ++n)
        for (int col = 0; col < cols; ++col)
            for (index_t h = 0; h < S; ++h)
                for (index_t w = 0; w < S; ++w) {
                    const bool hidden = col == 1 && mask.is_masked(n, h / patch, w / patch);
                    std::uint8_t rgb[3];
                    for (index_t k = 0; k < 3; ++k) {
                        const index_t c = C == 3 ? k : 0;
                        rgb[k] = hidden ? std::uint8_t{128} : to_u8((*srcs[col])[((n * S + h) * S + w) * C + c], c);
                    }
                    for (int dy = 0; dy < zoom; ++dy)
                        for (int dx = 0; dx < zoom; ++dx) {
                            const int y = gap + static_cast<int>(n) * (cell + gap) + static_cast<int>(h) * zoom + dy;
                            const int xx = gap + col * (cell + gap) + static_cast<int>(w) * zoom + dx;
                            std::copy(rgb, rgb + 3, img.row(y) + 3 * xx);
                        }
                }
    const std::string tmp = path + ".tmp.png";
    write_png(tmp, img);
    CONVNEXTV2_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": cannot rename ", tmp, " into place");
}

} // namespace convnextv2::train
