// SPDX-License-Identifier: MIT
// Pillow-compatible resampling, torchvision crop geometry, timm random erasing and Mixup/CutMix.
#include <convnextv2/data/transforms.hpp>

#include <algorithm>
#include <cmath>

namespace convnextv2 {

namespace {

constexpr int precision_bits = 32 - 8 - 2;  // Pillow's fixed-point weights

double bicubic_filter(double x)
{
    constexpr double a = -0.5;
    if (x < 0) x = -x;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

double bilinear_filter(double x)
{
    if (x < 0) x = -x;
    return x < 1 ? 1 - x : 0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis.
struct axis_coeffs {
    int ksize = 0;
    std::vector<int> bounds;  // per output: xmin, count
    std::vector<int> k;       // out_size × ksize fixed-point weights
};

axis_coeffs precompute(int in_size, double in0, double in1, int out_size, resample_filter f)
{
    const double support0 = f == resample_filter::bicubic ? 2.0 : 1.0;
    const double scale = (in1 - in0) / out_size;
    const double filterscale = std::max(scale, 1.0);
    const double support = support0 * filterscale;
    axis_coeffs c;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.bounds.resize(static_cast<std::size_t>(out_size) * 2);
    c.k.assign(static_cast<std::size_t>(out_size) * static_cast<std::size_t>(c.ksize), 0);
    std::vector<double> kk(static_cast<std::size_t>(c.ksize));
    const double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = in0 + (xx + 0.5) * scale;
        int xmin = static_cast<int>(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0;
        for (int x = 0; x < xmax; ++x) {
            const double t = (x + xmin - center + 0.5) * ss;
            const double w = f == resample_filter::bicubic ? bicubic_filter(t) : bilinear_filter(t);
            kk[static_cast<std::size_t>(x)] = w;
            ww += w;
        }
        int* out = c.k.data() + static_cast<std::size_t>(xx) * static_cast<std::size_t>(c.ksize);
        for (int x = 0; x < xmax; ++x) {
            const double v = ww != 0.0 ? kk[static_cast<std::size_t>(x)] / ww : kk[static_cast<std::size_t>(x)];
            out[x] = v < 0 ? static_cast<int>(-0.5 + v * (1 << precision_bits)) : static_cast<int>(0.5 + v * (1 << precision_bits));
        }
        c.bounds[static_cast<std::size_t>(xx) * 2] = xmin;
        c.bounds[static_cast<std::size_t>(xx) * 2 + 1] = xmax;
    }
    return c;
}

inline std::uint8_t clip8(std::int64_t acc)
{
    std::int64_t v = acc >> precision_bits;
    return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

} // namespace

resample_filter parse_resample_filter(const std::string& name)
{
    if (name == "bicubic") return resample_filter::bicubic;
    if (name == "bilinear") return resample_filter::bilinear;
    detail::throw_error("", "interpolation '", name, "' is not supported by the image pipeline (use bicubic or bilinear)");
}

image_u8 resize(const image_u8& in, int out_w, int out_h, resample_filter f)
{
    CONVNEXTV2_CHECK(out_w > 0 && out_h > 0 && in.width > 0 && in.height > 0, "resize: bad sizes ", in.width, "x", in.height, " -> ",
                     out_w, "x", out_h);
    const bool need_h = out_w != in.width, need_v = out_h != in.height;
    // Horizontal pass (all rows), then vertical pass, as Pillow's ImagingResampleInner.
    image_u8 tmp;
    const image_u8* src = &in;
    if (need_h) {
        axis_coeffs cx = precompute(in.width, 0, in.width, out_w, f);
        tmp = image_u8(in.height, out_w);
        for (int y = 0; y < in.height; ++y) {
            const std::uint8_t* ir = in.row(y);
            std::uint8_t* orow = tmp.row(y);
            for (int xx = 0; xx < out_w; ++xx) {
                const int xmin = cx.bounds[static_cast<std::size_t>(xx) * 2], n = cx.bounds[static_cast<std::size_t>(xx) * 2 + 1];
                const int* k = cx.k.data() + static_cast<std::size_t>(xx) * static_cast<std::size_t>(cx.ksize);
                std::int64_t a0 = 1 << (precision_bits - 1), a1 = a0, a2 = a0;
                const std::uint8_t* p = ir + xmin * 3;
                for (int x = 0; x < n; ++x) {
                    a0 += std::int64_t{p[x * 3]} * k[x];
                    a1 += std::int64_t{p[x * 3 + 1]} * k[x];
                    a2 += std::int64_t{p[x * 3 + 2]} * k[x];
                }
                orow[xx * 3] = clip8(a0);
                orow[xx * 3 + 1] = clip8(a1);
                orow[xx * 3 + 2] = clip8(a2);
            }
        }
        src = &tmp;
    }
    if (!need_v) return need_h ? tmp : in;
    axis_coeffs cy = precompute(src->height, 0, src->height, out_h, f);
    image_u8 out(out_h, src->width);
    const int W3 = src->width * 3;
    std::vector<std::int64_t> acc(static_cast<std::size_t>(W3));
    for (int yy = 0; yy < out_h; ++yy) {
        const int ymin = cy.bounds[static_cast<std::size_t>(yy) * 2], n = cy.bounds[static_cast<std::size_t>(yy) * 2 + 1];
        const int* k = cy.k.data() + static_cast<std::size_t>(yy) * static_cast<std::size_t>(cy.ksize);
        std::fill(acc.begin(), acc.end(), std::int64_t{1} << (precision_bits - 1));
        for (int y = 0; y < n; ++y) {
            const std::uint8_t* r = src->row(ymin + y);
            const std::int64_t w = k[y];
            for (int i = 0; i < W3; ++i) acc[static_cast<std::size_t>(i)] += r[i] * w;
        }
        std::uint8_t* orow = out.row(yy);
        for (int i = 0; i < W3; ++i) orow[i] = clip8(acc[static_cast<std::size_t>(i)]);
    }
    return out;
}

image_u8 crop(const image_u8& in, const crop_box& b)
{
    CONVNEXTV2_CHECK(b.top >= 0 && b.left >= 0 && b.height > 0 && b.width > 0 && b.top + b.height <= in.height &&
                         b.left + b.width <= in.width,
                     "crop: box (top ", b.top, ", left ", b.left, ", ", b.height, "x", b.width, ") outside the ", in.height, "x",
                     in.width, " image");
    image_u8 out(b.height, b.width);
    for (int y = 0; y < b.height; ++y)
        std::copy_n(in.row(b.top + y) + b.left * 3, b.width * 3, out.row(y));
    return out;
}

crop_box random_resized_crop_params(int height, int width, std::array<double, 2> scale, std::array<double, 2> ratio,
                                    counter_rng& rng)
{
    const double area = static_cast<double>(height) * width;
    const double lr0 = std::log(ratio[0]), lr1 = std::log(ratio[1]);
    for (int attempt = 0; attempt < 10; ++attempt) {
        const double target = area * rng.uniform(scale[0], scale[1]);
        const double ar = std::exp(rng.uniform(lr0, lr1));
        const int w = static_cast<int>(std::nearbyint(std::sqrt(target * ar)));
        const int h = static_cast<int>(std::nearbyint(std::sqrt(target / ar)));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            crop_box b;
            b.height = h;
            b.width = w;
            b.top = static_cast<int>(rng.below(static_cast<std::uint64_t>(height - h + 1)));
            b.left = static_cast<int>(rng.below(static_cast<std::uint64_t>(width - w + 1)));
            return b;
        }
    }
    const double in_ratio = static_cast<double>(width) / height;
    crop_box b;
    if (in_ratio < std::min(ratio[0], ratio[1])) {
        b.width = width;
        b.height = static_cast<int>(std::nearbyint(width / std::min(ratio[0], ratio[1])));
    } else if (in_ratio > std::max(ratio[0], ratio[1])) {
        b.height = height;
        b.width = static_cast<int>(std::nearbyint(height * std::max(ratio[0], ratio[1])));
    } else {
        b.width = width;
        b.height = height;
    }
    b.top = (height - b.height) / 2;
    b.left = (width - b.width) / 2;
    return b;
}

crop_box center_crop_box(int height, int width, int th, int tw)
{
    CONVNEXTV2_CHECK(th <= height && tw <= width, "center crop ", th, "x", tw, " larger than the ", height, "x", width, " image");
    crop_box b;
    b.height = th;
    b.width = tw;
    b.top = static_cast<int>(std::nearbyint((height - th) / 2.0));
    b.left = static_cast<int>(std::nearbyint((width - tw) / 2.0));
    return b;
}

std::array<int, 2> short_side_size(int height, int width, int short_side)
{
    if (width <= height) return {static_cast<int>(static_cast<long long>(short_side) * height / width), short_side};
    return {short_side, static_cast<int>(static_cast<long long>(short_side) * width / height)};
}

int eval_resize_side(int size, double crop_pct)
{
    if (size >= 384) return 0;
    return static_cast<int>(std::floor(size / crop_pct));
}

image_u8 eval_transform(const image_u8& in, int size, double crop_pct, resample_filter f)
{
    const int side = eval_resize_side(size, crop_pct);
    if (side == 0) return resize(in, size, size, f);
    auto hw = short_side_size(in.height, in.width, side);
    image_u8 r = resize(in, hw[1], hw[0], f);
    return crop(r, center_crop_box(r.height, r.width, size, size));
}

void hflip(image_u8& img)
{
    for (int y = 0; y < img.height; ++y) {
        std::uint8_t* r = img.row(y);
        for (int a = 0, b = img.width - 1; a < b; ++a, --b)
            for (int c = 0; c < 3; ++c) std::swap(r[a * 3 + c], r[b * 3 + c]);
    }
}

void normalize(const image_u8& img, const std::array<float, 3>& mean, const std::array<float, 3>& std, float* out)
{
    // A 256-entry table per channel: the same float for a given byte, whatever the path.
    float lut[3][256];
    for (int c = 0; c < 3; ++c)
        for (int v = 0; v < 256; ++v) lut[c][v] = (static_cast<float>(v) / 255.0f - mean[static_cast<std::size_t>(c)]) / std[static_cast<std::size_t>(c)];
    const std::size_t n = static_cast<std::size_t>(img.height) * static_cast<std::size_t>(img.width);
    const std::uint8_t* p = img.pixels.data();
    for (std::size_t i = 0; i < n; ++i)
        for (int c = 0; c < 3; ++c) out[i * 3 + static_cast<std::size_t>(c)] = lut[c][p[i * 3 + static_cast<std::size_t>(c)]];
}

erase_box random_erasing(float* hwc, int height, int width, int channels, double prob, bool random_fill, counter_rng& rng)
{
    erase_box e;
    if (prob <= 0 || rng.uniform() >= prob) return e;
    const double area = static_cast<double>(height) * width;
    const double lr0 = std::log(0.3), lr1 = std::log(1 / 0.3);
    for (int attempt = 0; attempt < 10; ++attempt) {
        const double target = rng.uniform(0.02, 1.0 / 3.0) * area;
        const double ar = std::exp(rng.uniform(lr0, lr1));
        const int h = static_cast<int>(std::nearbyint(std::sqrt(target * ar)));
        const int w = static_cast<int>(std::nearbyint(std::sqrt(target / ar)));
        if (w < width && h < height) {
            e.applied = true;
            e.height = h;
            e.width = w;
            e.top = static_cast<int>(rng.below(static_cast<std::uint64_t>(height - h + 1)));
            e.left = static_cast<int>(rng.below(static_cast<std::uint64_t>(width - w + 1)));
            for (int y = e.top; y < e.top + h; ++y)
                for (int x = e.left; x < e.left + w; ++x) {
                    float* p = hwc + (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) *
                                         static_cast<std::size_t>(channels);
                    for (int c = 0; c < channels; ++c) p[c] = random_fill ? static_cast<float>(rng.normal()) : 0.0f;
                }
            return e;
        }
    }
    return e;
}

namespace {

double sample_gamma(double a, counter_rng& rng)
{
    if (a < 1) {  // boost: Gamma(a) = Gamma(a + 1) · U^(1/a)
        double u = rng.uniform();
        if (u < 1e-300) u = 1e-300;
        return sample_gamma(a + 1, rng) * std::pow(u, 1.0 / a);
    }
    const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9 * d);
    for (;;) {
        double x, v;
        do {
            x = rng.normal();
            v = 1 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = rng.uniform();
        if (u < 1 - 0.0331 * x * x * x * x) return d * v;
        if (u > 0 && std::log(u) < 0.5 * x * x + d * (1 - v + std::log(v))) return d * v;
    }
}

} // namespace

double sample_beta(double a, double b, counter_rng& rng)
{
    const double x = sample_gamma(a, rng), y = sample_gamma(b, rng);
    return x + y > 0 ? x / (x + y) : 0.5;
}

mix_result mix_batch(tensor<float>& images, const std::vector<int>& labels, index_t K, const mix_options& opt, std::uint64_t seed,
                     tensor<float>& soft_targets)
{
    CONVNEXTV2_CHECK(images.rank() == 4, "mix_batch: images must be [N, H, W, C], got ", to_string(images.shape()));
    const index_t N = images.dim(0), H = images.dim(1), W = images.dim(2), C = images.dim(3);
    CONVNEXTV2_CHECK(static_cast<index_t>(labels.size()) == N, "mix_batch: ", labels.size(), " labels for ", N, " images");
    counter_rng rng(seed, 0x6d6978ULL);
    mix_result r;
    if ((opt.mixup_alpha > 0 || opt.cutmix_alpha > 0) && rng.uniform() < opt.prob) {
        double lam;
        if (opt.mixup_alpha > 0 && opt.cutmix_alpha > 0) {
            r.cutmix = rng.uniform() < opt.switch_prob;
            lam = r.cutmix ? sample_beta(opt.cutmix_alpha, opt.cutmix_alpha, rng) : sample_beta(opt.mixup_alpha, opt.mixup_alpha, rng);
        } else if (opt.mixup_alpha > 0) {
            lam = sample_beta(opt.mixup_alpha, opt.mixup_alpha, rng);
        } else {
            r.cutmix = true;
            lam = sample_beta(opt.cutmix_alpha, opt.cutmix_alpha, rng);
        }
        r.lambda = lam;
    }
    if (r.lambda != 1.0) {
        const std::size_t per = static_cast<std::size_t>(H * W * C);
        float* x = images.data();
        if (r.cutmix) {
            const double cut = std::sqrt(1 - r.lambda);
            const int ch = static_cast<int>(H * cut), cw = static_cast<int>(W * cut);
            const int cy = static_cast<int>(rng.below(static_cast<std::uint64_t>(H)));
            const int cx = static_cast<int>(rng.below(static_cast<std::uint64_t>(W)));
            r.y0 = std::clamp(cy - ch / 2, 0, static_cast<int>(H));
            r.y1 = std::clamp(cy + ch / 2, 0, static_cast<int>(H));
            r.x0 = std::clamp(cx - cw / 2, 0, static_cast<int>(W));
            r.x1 = std::clamp(cx + cw / 2, 0, static_cast<int>(W));
            r.lambda = 1.0 - static_cast<double>((r.y1 - r.y0) * (r.x1 - r.x0)) / static_cast<double>(H * W);
            // Swap the box between i and N−1−i (both see the other's original pixels).
            for (index_t i = 0; i < N / 2; ++i) {
                float* a = x + static_cast<std::size_t>(i) * per;
                float* b = x + static_cast<std::size_t>(N - 1 - i) * per;
                for (int y = r.y0; y < r.y1; ++y)
                    for (std::size_t j = static_cast<std::size_t>((y * W + r.x0) * C); j < static_cast<std::size_t>((y * W + r.x1) * C); ++j)
                        std::swap(a[j], b[j]);
            }
        } else {
            const float l = static_cast<float>(r.lambda), m = static_cast<float>(1.0 - r.lambda);
            for (index_t i = 0; i < N / 2; ++i) {
                float* a = x + static_cast<std::size_t>(i) * per;
                float* b = x + static_cast<std::size_t>(N - 1 - i) * per;
                for (std::size_t j = 0; j < per; ++j) {
                    const float va = a[j], vb = b[j];
                    a[j] = va * l + vb * m;
                    b[j] = vb * l + va * m;
                }
            }
        }
    }
    soft_targets.resize({N, K});
    const double off = opt.smoothing / static_cast<double>(K), on = 1.0 - opt.smoothing + off;
    float* t = soft_targets.data();
    for (index_t i = 0; i < N; ++i) {
        const int a = labels[static_cast<std::size_t>(i)], b = labels[static_cast<std::size_t>(N - 1 - i)];
        CONVNEXTV2_CHECK(a >= 0 && a < K, "mix_batch: label ", a, " outside [0, ", K, ")");
        for (index_t k = 0; k < K; ++k) {
            const double ya = k == a ? on : off, yb = k == b ? on : off;
            t[i * K + k] = static_cast<float>(r.lambda * ya + (1.0 - r.lambda) * yb);
        }
    }
    return r;
}

} // namespace convnextv2
