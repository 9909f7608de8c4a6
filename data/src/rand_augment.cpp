// SPDX-License-Identifier: MIT
// timm RandAugment on image_u8: PIL-exact op functions, timm's level-to-argument mapping and
// policy parser. Compiled with -ffp-contract=off (data/CMakeLists.txt): PIL's float/double
// expressions are reproduced operation by operation, and a fused multiply-add would change the
// truncated 8-bit results.
#include <convnextv2/data/rand_augment.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace convnextv2 {

namespace {

using fill_t = std::array<std::uint8_t, 3>;

image_u8 apply_lut(const image_u8& img, const std::array<std::array<std::uint8_t, 256>, 3>& lut)
{
    image_u8 out(img.height, img.width);
    const std::size_t n = img.pixels.size();
    for (std::size_t i = 0; i < n; i += 3)
        for (std::size_t c = 0; c < 3; ++c) out.pixels[i + c] = lut[c][img.pixels[i + c]];
    return out;
}

std::array<std::uint8_t, 256> same_lut(int (*f)(int, int), int arg)
{
    std::array<std::uint8_t, 256> l{};
    for (int i = 0; i < 256; ++i) l[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(std::clamp(f(i, arg), 0, 255));
    return l;
}

image_u8 point_all(const image_u8& img, int (*f)(int, int), int arg)
{
    const auto l = same_lut(f, arg);
    return apply_lut(img, {l, l, l});
}

std::array<std::array<std::int64_t, 256>, 3> histograms(const image_u8& img)
{
    std::array<std::array<std::int64_t, 256>, 3> h{};
    const std::size_t n = img.pixels.size();
    for (std::size_t i = 0; i < n; i += 3)
        for (std::size_t c = 0; c < 3; ++c) ++h[c][img.pixels[i + c]];
    return h;
}

// PIL "L" conversion (Convert.c rgb2l): ITU-R 601-2 luma in 16.16 fixed point, rounded.
std::vector<std::uint8_t> to_luma(const image_u8& img)
{
    const std::size_t n = img.pixels.size() / 3;
    std::vector<std::uint8_t> l(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t* p = img.pixels.data() + i * 3;
        l[i] = static_cast<std::uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
    }
    return l;
}

// Image.blend(degenerate, img, factor): PIL's ImagingBlend, float alpha, truncation.
image_u8 blend(const image_u8& degenerate, const image_u8& img, double factor)
{
    const float alpha = static_cast<float>(factor);
    if (alpha == 0.0f) return degenerate;
    if (alpha == 1.0f) return img;
    image_u8 out(img.height, img.width);
    const std::size_t n = img.pixels.size();
    const bool inside = alpha >= 0 && alpha <= 1.0f;
    for (std::size_t i = 0; i < n; ++i) {
        const int a = degenerate.pixels[i], b = img.pixels[i];
        const float t = static_cast<float>(a) + alpha * static_cast<float>(b - a);
        if (inside) {
            out.pixels[i] = static_cast<std::uint8_t>(static_cast<int>(t));
        } else {
            out.pixels[i] = t <= 0.0f ? std::uint8_t{0} : t >= 255.0f ? std::uint8_t{255} : static_cast<std::uint8_t>(static_cast<int>(t));
        }
    }
    return out;
}

// ImageFilter.SMOOTH (3x3: 1 1 1 / 1 5 1 / 1 1 1, divisor 13): PIL's ImagingFilter3x3, float
// sums in PIL's order, +0.5 and truncation; the border rows and columns are copied.
image_u8 smooth(const image_u8& img)
{
    if (img.width < 3 || img.height < 3) return img;
    image_u8 out = img;
    const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
    const float kernel[9] = {k1, k1, k1, k1, k5, k1, k1, k1, k1};
    auto row3 = [](const std::uint8_t* r, int x, const float* k) {
        return static_cast<float>(r[x - 3]) * k[0] + static_cast<float>(r[x]) * k[1] + static_cast<float>(r[x + 3]) * k[2];
    };
    for (int y = 1; y < img.height - 1; ++y) {
        const std::uint8_t* up = img.row(y - 1);
        const std::uint8_t* mid = img.row(y);
        const std::uint8_t* down = img.row(y + 1);
        std::uint8_t* o = out.row(y);
        for (int x = 1; x < img.width - 1; ++x)
            for (int c = 0; c < 3; ++c) {
                const int xi = x * 3 + c;
                float ss = 0.5f;
                ss += row3(down, xi, kernel + 0);
                ss += row3(mid, xi, kernel + 3);
                ss += row3(up, xi, kernel + 6);
                o[xi] = ss <= 0.0f ? std::uint8_t{0} : ss >= 255.0f ? std::uint8_t{255} : static_cast<std::uint8_t>(static_cast<int>(ss));
            }
    }
    return out;
}

inline int xclip(int x, int n) { return x < 0 ? 0 : (x < n ? x : n - 1); }

inline double cubic(double v1, double v2, double v3, double v4, double d)
{
    const double p1 = v2;
    const double p2 = -v1 + v3;
    const double p3 = 2 * (v1 - v2) + v3 - v4;
    const double p4 = -v1 + v2 - v3 + v4;
    return p1 + d * (p2 + d * (p3 + d * p4));
}

// PIL Geometry.c bicubic_filter32RGB / bilinear_filter32RGB at (xin, yin); false outside.
bool sample(const image_u8& im, double xin, double yin, resample_filter f, std::uint8_t* out)
{
    const int W = im.width, H = im.height;
    if (xin < 0.0 || xin >= W || yin < 0.0 || yin >= H) return false;
    xin -= 0.5;
    yin -= 0.5;
    int x = static_cast<int>(std::floor(xin));
    int y = static_cast<int>(std::floor(yin));
    const double dx = xin - x, dy = yin - y;
    if (f == resample_filter::bilinear) {
        const int x0 = xclip(x, W) * 3, x1 = xclip(x + 1, W) * 3;
        const std::uint8_t* r0 = im.row(xclip(y, H));
        const bool has1 = y + 1 >= 0 && y + 1 < H;
        const std::uint8_t* r1 = has1 ? im.row(y + 1) : nullptr;
        for (int b = 0; b < 3; ++b) {
            double v1 = r0[x0 + b] + (r0[x1 + b] - r0[x0 + b]) * dx;
            double v2 = has1 ? r1[x0 + b] + (r1[x1 + b] - r1[x0 + b]) * dx : v1;
            v1 = v1 + (v2 - v1) * dy;
            out[b] = static_cast<std::uint8_t>(static_cast<int>(v1));
        }
        return true;
    }
    --x;
    --y;
    const int xs[4] = {xclip(x, W) * 3, xclip(x + 1, W) * 3, xclip(x + 2, W) * 3, xclip(x + 3, W) * 3};
    const std::uint8_t* rows[4] = {im.row(xclip(y, H)), nullptr, nullptr, nullptr};
    for (int k = 1; k < 4; ++k) rows[k] = (y + k >= 0 && y + k < H) ? im.row(y + k) : nullptr;
    for (int b = 0; b < 3; ++b) {
        double v[4];
        for (int k = 0; k < 4; ++k) {
            if (k > 0 && !rows[k]) {
                v[k] = v[k - 1];
                continue;
            }
            const std::uint8_t* r = rows[k];
            v[k] = cubic(r[xs[0] + b], r[xs[1] + b], r[xs[2] + b], r[xs[3] + b], dx);
        }
        const double v1 = cubic(v[0], v[1], v[2], v[3], dy);
        out[b] = v1 <= 0.0 ? std::uint8_t{0} : v1 >= 255.0 ? std::uint8_t{255} : static_cast<std::uint8_t>(static_cast<int>(v1));
    }
    return true;
}

// Python's x % 360.0 (result in [0, 360)).
double py_mod360(double a)
{
    double m = std::fmod(a, 360.0);
    if (m != 0 && m < 0) m += 360.0;
    return m;
}

// Python's round(x, 15): correctly rounded decimal (glibc printf rounds exactly, like dtoa).
double py_round15(double x)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.15f", x);
    return std::strtod(buf, nullptr);
}

enum class op_id {
    auto_contrast, equalize, invert, rotate, posterize, posterize_inc, solarize, solarize_inc, solarize_add,
    color, color_inc, contrast, contrast_inc, brightness, brightness_inc, sharpness, sharpness_inc,
    shear_x, shear_y, translate_x_rel, translate_y_rel
};

struct op_entry {
    const char* name;
    op_id id;
    bool is_signed;
};

const op_entry op_table[] = {
    {"AutoContrast", op_id::auto_contrast, false},
    {"Equalize", op_id::equalize, false},
    {"Invert", op_id::invert, false},
    {"Rotate", op_id::rotate, true},
    {"Posterize", op_id::posterize, false},
    {"PosterizeIncreasing", op_id::posterize_inc, false},
    {"Solarize", op_id::solarize, false},
    {"SolarizeIncreasing", op_id::solarize_inc, false},
    {"SolarizeAdd", op_id::solarize_add, false},
    {"Color", op_id::color, false},
    {"ColorIncreasing", op_id::color_inc, true},
    {"Contrast", op_id::contrast, false},
    {"ContrastIncreasing", op_id::contrast_inc, true},
    {"Brightness", op_id::brightness, false},
    {"BrightnessIncreasing", op_id::brightness_inc, true},
    {"Sharpness", op_id::sharpness, false},
    {"SharpnessIncreasing", op_id::sharpness_inc, true},
    {"ShearX", op_id::shear_x, true},
    {"ShearY", op_id::shear_y, true},
    {"TranslateXRel", op_id::translate_x_rel, true},
    {"TranslateYRel", op_id::translate_y_rel, true},
};

const op_entry& find_op(const std::string& name)
{
    for (const auto& e : op_table)
        if (name == e.name) return e;
    std::string known;
    for (const auto& e : op_table) known += std::string(known.empty() ? "" : ", ") + e.name;
    detail::throw_error("", "RandAugment op '", name, "' is unknown (known: ", known, ")");
}

// timm level_to_arg functions (auto_augment.py), _LEVEL_DENOM = 10.
double level_arg(op_id id, double m, bool negate, double translate_pct)
{
    auto sgn = [&](double v) { return negate ? -v : v; };
    switch (id) {
    case op_id::rotate: return sgn((m / 10.0) * 30.0);
    case op_id::posterize: return static_cast<double>(static_cast<int>((m / 10.0) * 4));
    case op_id::posterize_inc: return 4.0 - static_cast<int>((m / 10.0) * 4);
    case op_id::solarize: return std::min(256, static_cast<int>((m / 10.0) * 256));
    case op_id::solarize_inc: return 256 - std::min(256, static_cast<int>((m / 10.0) * 256));
    case op_id::solarize_add: return std::min(128, static_cast<int>((m / 10.0) * 110));
    case op_id::color:
    case op_id::contrast:
    case op_id::brightness:
    case op_id::sharpness: return (m / 10.0) * 1.8 + 0.1;
    case op_id::color_inc:
    case op_id::contrast_inc:
    case op_id::brightness_inc:
    case op_id::sharpness_inc: return std::max(0.1, 1.0 + sgn((m / 10.0) * 0.9));
    case op_id::shear_x:
    case op_id::shear_y: return sgn((m / 10.0) * 0.3);
    case op_id::translate_x_rel:
    case op_id::translate_y_rel: return sgn((m / 10.0) * translate_pct);
    default: return 0.0;
    }
}

} // namespace

namespace augment {

image_u8 auto_contrast(const image_u8& img)
{
    const auto h = histograms(img);
    std::array<std::array<std::uint8_t, 256>, 3> lut{};
    for (std::size_t c = 0; c < 3; ++c) {
        int lo = 0, hi = 255;
        while (lo < 255 && !h[c][static_cast<std::size_t>(lo)]) ++lo;
        while (hi > 0 && !h[c][static_cast<std::size_t>(hi)]) --hi;
        for (int i = 0; i < 256; ++i) {
            int v = i;
            if (hi > lo) {
                const double scale = 255.0 / (hi - lo);
                const double offset = -lo * scale;
                v = std::clamp(static_cast<int>(i * scale + offset), 0, 255);
            }
            lut[c][static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v);
        }
    }
    return apply_lut(img, lut);
}

image_u8 equalize(const image_u8& img)
{
    const auto h = histograms(img);
    std::array<std::array<std::uint8_t, 256>, 3> lut{};
    for (std::size_t c = 0; c < 3; ++c) {
        std::int64_t total = 0, last = 0, nonzero = 0;
        for (std::size_t i = 0; i < 256; ++i)
            if (h[c][i]) {
                total += h[c][i];
                last = h[c][i];
                ++nonzero;
            }
        const std::int64_t step = nonzero <= 1 ? 0 : (total - last) / 255;
        std::int64_t n = step / 2;
        for (std::size_t i = 0; i < 256; ++i) {
            lut[c][i] = step ? static_cast<std::uint8_t>(std::min<std::int64_t>(n / step, 255)) : static_cast<std::uint8_t>(i);
            n += h[c][i];
        }
    }
    return apply_lut(img, lut);
}

image_u8 invert(const image_u8& img)
{
    return point_all(img, [](int i, int) { return 255 - i; }, 0);
}

image_u8 posterize(const image_u8& img, int bits)
{
    if (bits >= 8) return img;
    CONVNEXTV2_CHECK(bits >= 0, "posterize: bits_to_keep must be >= 0, got ", bits);
    return point_all(img, [](int i, int b) { return i & ~((1 << (8 - b)) - 1); }, bits);
}

image_u8 solarize(const image_u8& img, int threshold)
{
    return point_all(img, [](int i, int t) { return i < t ? i : 255 - i; }, threshold);
}

image_u8 solarize_add(const image_u8& img, int add, int threshold)
{
    std::array<std::uint8_t, 256> l{};
    for (int i = 0; i < 256; ++i) l[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i < threshold ? std::min(255, i + add) : i);
    return apply_lut(img, {l, l, l});
}

image_u8 color(const image_u8& img, double factor)
{
    const auto l = to_luma(img);
    image_u8 gray(img.height, img.width);
    for (std::size_t i = 0; i < l.size(); ++i) gray.pixels[i * 3] = gray.pixels[i * 3 + 1] = gray.pixels[i * 3 + 2] = l[i];
    return blend(gray, img, factor);
}

image_u8 contrast(const image_u8& img, double factor)
{
    const auto l = to_luma(img);
    std::int64_t sum = 0;
    for (auto v : l) sum += v;
    const double mean = l.empty() ? 0.0 : static_cast<double>(sum) / static_cast<double>(l.size());
    image_u8 gray(img.height, img.width);
    std::fill(gray.pixels.begin(), gray.pixels.end(), static_cast<std::uint8_t>(static_cast<int>(mean + 0.5)));
    return blend(gray, img, factor);
}

image_u8 brightness(const image_u8& img, double factor)
{
    image_u8 black(img.height, img.width);  // zero-filled
    return blend(black, img, factor);
}

image_u8 sharpness(const image_u8& img, double factor) { return blend(smooth(img), img, factor); }

image_u8 affine(const image_u8& img, const std::array<double, 6>& m, const fill_t& fill, resample_filter filter)
{
    image_u8 out(img.height, img.width);
    for (int y = 0; y < img.height; ++y) {
        std::uint8_t* o = out.row(y);
        const double yin = y + 0.5;
        for (int x = 0; x < img.width; ++x) {
            const double xin = x + 0.5;
            const double xx = m[0] * xin + m[1] * yin + m[2];
            const double yy = m[3] * xin + m[4] * yin + m[5];
            if (!sample(img, xx, yy, filter, o + x * 3))
                for (int c = 0; c < 3; ++c) o[x * 3 + c] = fill[static_cast<std::size_t>(c)];
        }
    }
    return out;
}

image_u8 rotate(const image_u8& img, double degrees, const fill_t& fill, resample_filter filter)
{
    const double angle = py_mod360(degrees);
    const int W = img.width, H = img.height;
    // PIL's exact fast paths (transpose instead of resampling).
    if (angle == 0) return img;
    if (angle == 180 || ((angle == 90 || angle == 270) && W == H)) {
        image_u8 out(H, W);
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x) {
                int sx = W - 1 - x, sy = H - 1 - y;              // 180
                if (angle == 90) { sx = W - 1 - y; sy = x; }     // counter-clockwise
                if (angle == 270) { sx = y; sy = H - 1 - x; }    // clockwise
                std::copy_n(img.row(sy) + sx * 3, 3, out.row(y) + x * 3);
            }
        return out;
    }
    const double a = -(angle * (3.141592653589793 / 180.0));
    std::array<double, 6> m{py_round15(std::cos(a)), py_round15(std::sin(a)), 0.0, py_round15(-std::sin(a)), py_round15(std::cos(a)), 0.0};
    const double cx = W / 2.0, cy = H / 2.0;
    const double tx = m[0] * -cx + m[1] * -cy + m[2];
    const double ty = m[3] * -cx + m[4] * -cy + m[5];
    m[2] = tx + cx;
    m[5] = ty + cy;
    return affine(img, m, fill, filter);
}

image_u8 shear_x(const image_u8& img, double factor, const fill_t& fill, resample_filter filter)
{
    return affine(img, {1, factor, 0, 0, 1, 0}, fill, filter);
}

image_u8 shear_y(const image_u8& img, double factor, const fill_t& fill, resample_filter filter)
{
    return affine(img, {1, 0, 0, factor, 1, 0}, fill, filter);
}

image_u8 translate_x_rel(const image_u8& img, double pct, const fill_t& fill, resample_filter filter)
{
    return affine(img, {1, 0, pct * img.width, 0, 1, 0}, fill, filter);
}

image_u8 translate_y_rel(const image_u8& img, double pct, const fill_t& fill, resample_filter filter)
{
    return affine(img, {1, 0, 0, 0, 1, pct * img.height}, fill, filter);
}

} // namespace augment

std::array<std::uint8_t, 3> fill_from_mean(const std::array<float, 3>& mean)
{
    std::array<std::uint8_t, 3> f{};
    for (std::size_t c = 0; c < 3; ++c)
        f[c] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(255.0 * static_cast<double>(mean[c])), 0.0, 255.0));
    return f;
}

const std::vector<std::string>& rand_augment_ops(bool increasing)
{
    static const std::vector<std::string> inc = {
        "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
        "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
        "TranslateXRel", "TranslateYRel"};
    static const std::vector<std::string> plain = {
        "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color", "Contrast",
        "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"};
    return increasing ? inc : plain;
}

bool rand_augment_op_signed(const std::string& name) { return find_op(name).is_signed; }

double rand_augment_op_arg(const std::string& name, double magnitude, bool negate)
{
    return level_arg(find_op(name).id, magnitude, negate, 0.45);
}

image_u8 apply_op(const std::string& name, const image_u8& img, double magnitude, bool negate, const rand_augment_params& p)
{
    const op_entry& e = find_op(name);
    const double v = level_arg(e.id, magnitude, negate, p.translate_pct);
    using namespace augment;
    switch (e.id) {
    case op_id::auto_contrast: return auto_contrast(img);
    case op_id::equalize: return equalize(img);
    case op_id::invert: return invert(img);
    case op_id::rotate: return rotate(img, v, p.fill, p.interpolation);
    case op_id::posterize:
    case op_id::posterize_inc: return posterize(img, static_cast<int>(v));
    case op_id::solarize:
    case op_id::solarize_inc: return solarize(img, static_cast<int>(v));
    case op_id::solarize_add: return solarize_add(img, static_cast<int>(v));
    case op_id::color:
    case op_id::color_inc: return color(img, v);
    case op_id::contrast:
    case op_id::contrast_inc: return contrast(img, v);
    case op_id::brightness:
    case op_id::brightness_inc: return brightness(img, v);
    case op_id::sharpness:
    case op_id::sharpness_inc: return sharpness(img, v);
    case op_id::shear_x: return shear_x(img, v, p.fill, p.interpolation);
    case op_id::shear_y: return shear_y(img, v, p.fill, p.interpolation);
    case op_id::translate_x_rel: return translate_x_rel(img, v, p.fill, p.interpolation);
    case op_id::translate_y_rel: return translate_y_rel(img, v, p.fill, p.interpolation);
    }
    return img;
}

rand_augment_policy parse_rand_augment(const std::string& spec)
{
    auto fail = [&](const std::string& why) -> void {
        detail::throw_error("", "auto_augment '", spec, "': ", why,
                            " (expected a RandAugment policy like 'rand-m9-mstd0.5-inc1' or MindCV's 'randaug-m9-mstd0.5-inc1')");
    };
    rand_augment_policy p;
    p.spec = spec;
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        const std::size_t d = spec.find('-', start);
        parts.push_back(spec.substr(start, d == std::string::npos ? std::string::npos : d - start));
        if (d == std::string::npos) break;
        start = d + 1;
    }
    if (parts[0] != "rand" && parts[0] != "randaug") fail("only RandAugment ('rand-...' / 'randaug-...') is supported");
    int mmax = 0;
    for (std::size_t i = 1; i < parts.size(); ++i) {
        const std::string& s = parts[i];
        std::size_t k = 0;
        while (k < s.size() && !(s[k] >= '0' && s[k] <= '9')) ++k;
        const std::string key = s.substr(0, k), val = s.substr(k);
        if (s.empty() || val.empty()) fail("section '" + s + "' has no value");
        char* end = nullptr;
        const double num = std::strtod(val.c_str(), &end);
        const bool numeric = end && *end == '\0';
        auto need_int = [&]() {
            if (!numeric || num != std::floor(num)) fail("section '" + s + "' needs an integer");
            return static_cast<int>(num);
        };
        if (key == "m") {
            p.magnitude = need_int();
        } else if (key == "n") {
            p.num_layers = need_int();
            if (p.num_layers < 0) fail("n must be >= 0");
        } else if (key == "mstd") {
            if (!numeric || num < 0) fail("section '" + s + "' needs a number >= 0");
            p.magnitude_std = num > 100 ? std::numeric_limits<double>::infinity() : num;
        } else if (key == "mmax") {
            mmax = need_int();
        } else if (key == "inc") {
            p.increasing = true;  // timm: `if bool(val)`, true for any non-empty value
        } else if (key == "p") {
            if (!numeric || num < 0 || num > 1) fail("section '" + s + "' needs a probability in [0, 1]");
            p.prob = num;
        } else if (key == "w" || key == "t") {
            fail("op-choice weights (section '" + s + "') are not supported");
        } else {
            fail("unknown section '" + s + "'");
        }
    }
    p.magnitude_max = mmax ? mmax : 10;  // timm: magnitude_max or _LEVEL_DENOM
    p.ops = rand_augment_ops(p.increasing);
    return p;
}

std::vector<rand_augment_step> rand_augment(image_u8& img, const rand_augment_policy& policy, counter_rng& rng)
{
    std::vector<rand_augment_step> steps(static_cast<std::size_t>(policy.num_layers));
    if (policy.ops.empty()) return {};
    for (auto& s : steps) s.op = policy.ops[static_cast<std::size_t>(rng.below(policy.ops.size()))];
    for (auto& s : steps) {
        if (policy.prob < 1.0 && rng.uniform() > policy.prob) continue;
        double m = policy.magnitude;
        if (std::isinf(policy.magnitude_std)) m = rng.uniform(0, policy.magnitude);
        else if (policy.magnitude_std > 0) m = policy.magnitude + policy.magnitude_std * rng.normal();
        s.magnitude = std::max(0.0, std::min(m, policy.magnitude_max));
        s.negate = rand_augment_op_signed(s.op) && rng.uniform() > 0.5;
        s.applied = true;
        img = apply_op(s.op, img, s.magnitude, s.negate, policy.params);
    }
    return steps;
}

} // namespace convnextv2
