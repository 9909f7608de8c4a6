// SPDX-License-Identifier: MIT
// The ConvNeXt V2 variants (SPEC §2): depths and dims per stage; everything else is shared.
// A model_config also carries the custom knobs (custom depths/dims, stem kernel for small inputs).
#pragma once
#include "../core/config.hpp"

#include <array>
#include <string>
#include <vector>

namespace convnextv2 {

struct model_config {
    std::string name = "custom";
    std::vector<int> depths;       // blocks per stage (4 stages)
    std::vector<index_t> dims;     // channels per stage
    index_t in_chans = 3;
    index_t num_classes = 1000;
    double drop_path_rate = 0.0;
    double head_init_scale = 1.0;
    index_t stem_kernel = 4;       // official: 4 (stride-4 patchify). 2 suits 32x32 inputs.

    // Total stride of the network: inputs must be multiples of this.
    index_t total_stride() const { return stem_kernel * 8; }
};

struct variant_info {
    const char* name;
    std::array<int, 4> depths;
    std::array<index_t, 4> dims;
};

inline const std::array<variant_info, 8>& variants()
{
    static const std::array<variant_info, 8> v{{
        {"atto", {2, 2, 6, 2}, {40, 80, 160, 320}},
        {"femto", {2, 2, 6, 2}, {48, 96, 192, 384}},
        {"pico", {2, 2, 6, 2}, {64, 128, 256, 512}},
        {"nano", {2, 2, 8, 2}, {80, 160, 320, 640}},
        {"tiny", {3, 3, 9, 3}, {96, 192, 384, 768}},
        {"base", {3, 3, 27, 3}, {128, 256, 512, 1024}},
        {"large", {3, 3, 27, 3}, {192, 384, 768, 1536}},
        {"huge", {3, 3, 27, 3}, {352, 704, 1408, 2816}},
    }};
    return v;
}

inline std::string variant_names()
{
    std::string s;
    for (auto& v : variants()) s += (s.empty() ? "" : ", ") + std::string("convnextv2_") + v.name;
    return s;
}

// "atto", "convnextv2_atto" (and timm's "convnextv2_atto.fcmae_ft_in1k"-style tags) -> config.
inline model_config variant_config(const std::string& name, index_t num_classes = 1000)
{
    std::string n = name;
    if (auto dot = n.find('.'); dot != std::string::npos) n = n.substr(0, dot);
    if (n.rfind("convnextv2_", 0) == 0) n = n.substr(11);
    for (auto& v : variants()) {
        if (n == v.name) {
            model_config c;
            c.name = std::string("convnextv2_") + v.name;
            c.depths.assign(v.depths.begin(), v.depths.end());
            c.dims.assign(v.dims.begin(), v.dims.end());
            c.num_classes = num_classes;
            return c;
        }
    }
    detail::throw_error("", "unknown model '", name, "'; valid models: ", variant_names());
}

// Exact parameter count from the architecture (SPEC §2): block 8C²+65C, stem, downsamples, head.
inline index_t parameter_count(const model_config& c)
{
    index_t k = c.stem_kernel;
    index_t n = c.dims[0] * c.in_chans * k * k + c.dims[0] + 2 * c.dims[0];
    for (std::size_t i = 0; i < 4; ++i) {
        index_t C = c.dims[i];
        if (i > 0) n += 2 * c.dims[i - 1] + C * c.dims[i - 1] * 4 + C;
        n += static_cast<index_t>(c.depths[i]) * (8 * C * C + 65 * C);
    }
    n += 2 * c.dims[3] + c.dims[3] * c.num_classes + c.num_classes;
    return n;
}

} // namespace convnextv2
