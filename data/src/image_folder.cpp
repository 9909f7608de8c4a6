// SPDX-License-Identifier: MIT
// JPEG/PNG decoding (TurboJPEG API v2, libpng simplified API) and the ImageFolder dataset.
#include <convnextv2/data/image_folder.hpp>

#include <nlohmann/json.hpp>
#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace convnextv2 {

namespace fs = std::filesystem;

namespace {

// One decompressor per thread: tjInitDecompress allocates, and handles are not thread-safe.
struct tj_handle {
    tjhandle h = nullptr;
    explicit tj_handle(bool compress) : h(compress ? tjInitCompress() : tjInitDecompress()) {}
    ~tj_handle()
    {
        if (h) tjDestroy(h);
    }
};

tj_handle& decompressor_slot()
{
    thread_local tj_handle t(false);
    return t;
}

tjhandle decompressor()
{
    tj_handle& t = decompressor_slot();
    if (!t.h) t.h = tjInitDecompress();
    CONVNEXTV2_CHECK(t.h != nullptr, "TurboJPEG: tjInitDecompress failed");
    return t.h;
}

// A handle that saw an error can keep stale state (libjpeg-turbo 2.1): replace it.
[[noreturn]] void jpeg_fail(const std::string& name, const char* what)
{
    tj_handle& t = decompressor_slot();
    std::string msg = t.h ? tjGetErrorStr2(t.h) : "no handle";
    if (t.h) tjDestroy(t.h);
    t.h = nullptr;
    detail::throw_error("", name, what, msg, ")");
}

std::atomic<std::int64_t>& max_pixels_slot()
{
    static std::atomic<std::int64_t> n{178956970};
    return n;
}

// Dimensions from a header, checked before anything is allocated for them.
void check_dimensions(std::int64_t width, std::int64_t height, const std::string& name, const char* kind)
{
    if (width <= 0 || height <= 0) detail::throw_error("", name, ": ", kind, " header has invalid dimensions ", width, "x", height);
    if (width * height > max_image_pixels())
        detail::throw_error("", name, ": ", kind, " is ", width, "x", height, " = ", width * height, " pixels, more than the limit of ",
                            max_image_pixels(), " (set_max_image_pixels; decompression bomb?)");
}

// A PNG's pixel rows are deflate-compressed: at 1 bit per pixel (the least any PNG stores) and
// deflate's maximal 1032:1 ratio, width x height needs at least this many file bytes.
void check_png_size(std::int64_t width, std::int64_t height, std::size_t file_bytes, const std::string& name)
{
    const std::int64_t raw_min = height * (1 + (width + 7) / 8);
    if (raw_min > 1032 * static_cast<std::int64_t>(file_bytes) + 4096)
        detail::throw_error("", name, ": PNG header says ", width, "x", height, ", which cannot be stored in ", file_bytes,
                            " bytes (truncated or corrupt)");
}

bool is_jpeg(const std::vector<std::uint8_t>& b) { return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }
bool is_png(const std::vector<std::uint8_t>& b) { return b.size() >= 8 && png_sig_cmp(b.data(), 0, 8) == 0; }

std::string lower(std::string s)
{
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool image_extension(const fs::path& p)
{
    const std::string e = lower(p.extension().string());
    return e == ".jpg" || e == ".jpeg" || e == ".png";
}

image_u8 decode_jpeg(const std::vector<std::uint8_t>& bytes, const std::string& name, double max_downscale)
{
    tjhandle h = decompressor();
    int w = 0, hgt = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(h, bytes.data(), static_cast<unsigned long>(bytes.size()), &w, &hgt, &subsamp, &colorspace) != 0)
        jpeg_fail(name, ": not a readable JPEG (");
    check_dimensions(w, hgt, name, "JPEG");
    // The smallest scaling factor that still keeps the image at least 1/max_downscale of its size.
    tjscalingfactor sf{1, 1};
    if (max_downscale > 1) {
        int n = 0;
        tjscalingfactor* f = tjGetScalingFactors(&n);
        for (int k = 0; k < n && f; ++k) {
            const double r = static_cast<double>(f[k].num) / f[k].denom;
            if (r <= 1 && r * max_downscale >= 1 && r < static_cast<double>(sf.num) / sf.denom) sf = f[k];
        }
    }
    const int sw = TJSCALED(w, sf), sh = TJSCALED(hgt, sf);
    const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(sw) * static_cast<std::size_t>(sh) * (cmyk ? 4 : 3));
    int rc = tjDecompress2(h, bytes.data(), static_cast<unsigned long>(bytes.size()), buf.data(), sw, 0, sh,
                           cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS);
    if (rc != 0) {
        // Warnings (e.g. extraneous bytes) are tolerated; a truncated stream is not.
        const std::string msg = tjGetErrorStr2(h);
        if (tjGetErrorCode(h) != TJERR_WARNING || msg.find("Premature end") != std::string::npos)
            jpeg_fail(name, ": corrupt JPEG (");
        tjDestroy(h);
        decompressor_slot().h = nullptr;
    }
    image_u8 img(sh, sw);
    if (!cmyk) {
        img.pixels = std::move(buf);
    } else {  // Adobe-style inverted CMYK, as libjpeg delivers it: R = C·K/255 etc.
        const std::size_t n = static_cast<std::size_t>(sw) * static_cast<std::size_t>(sh);
        for (std::size_t i = 0; i < n; ++i)
            for (int c = 0; c < 3; ++c)
                img.pixels[i * 3 + static_cast<std::size_t>(c)] =
                    static_cast<std::uint8_t>((buf[i * 4 + static_cast<std::size_t>(c)] * buf[i * 4 + 3] + 127) / 255);
    }
    return img;
}

image_u8 decode_png(const std::vector<std::uint8_t>& bytes, const std::string& name)
{
    png_image pi;
    std::memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&pi, bytes.data(), bytes.size()))
        detail::throw_error("", name, ": not a readable PNG (", pi.message, ")");
    try {
        check_dimensions(pi.width, pi.height, name, "PNG");
        check_png_size(pi.width, pi.height, bytes.size(), name);
    } catch (...) {
        png_image_free(&pi);
        throw;
    }
    pi.format = PNG_FORMAT_RGBA;  // then drop alpha, like PIL convert("RGB")
    std::vector<std::uint8_t> rgba(PNG_IMAGE_SIZE(pi));
    if (!png_image_finish_read(&pi, nullptr, rgba.data(), 0, nullptr)) {
        std::string msg = pi.message;
        png_image_free(&pi);
        detail::throw_error("", name, ": corrupt PNG (", msg, ")");
    }
    image_u8 img(static_cast<int>(pi.height), static_cast<int>(pi.width));
    const std::size_t n = static_cast<std::size_t>(pi.width) * pi.height;
    for (std::size_t i = 0; i < n; ++i)
        for (int c = 0; c < 3; ++c) img.pixels[i * 3 + static_cast<std::size_t>(c)] = rgba[i * 4 + static_cast<std::size_t>(c)];
    png_image_free(&pi);
    return img;
}

} // namespace

std::int64_t max_image_pixels() { return max_pixels_slot().load(); }
void set_max_image_pixels(std::int64_t pixels)
{
    CONVNEXTV2_CHECK(pixels >= 1, "set_max_image_pixels: must be >= 1, got ", pixels);
    max_pixels_slot().store(pixels);
}

std::vector<std::uint8_t> read_file_bytes(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    CONVNEXTV2_CHECK(in.good(), path, ": cannot open");
    in.seekg(0, std::ios::end);
    const std::streamoff end = in.tellg();
    CONVNEXTV2_CHECK(end >= 0, path, ": cannot determine the file size (not a regular file?)");
    CONVNEXTV2_CHECK(end <= (std::streamoff{1} << 30), path, ": ", end, " bytes is larger than the 1 GiB limit for one image file");
    const auto n = static_cast<std::size_t>(end);
    in.seekg(0);
    std::vector<std::uint8_t> b(n);
    in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(n));
    CONVNEXTV2_CHECK(in.good() || n == 0, path, ": read error");
    return b;
}

std::array<int, 2> read_image_size(const std::vector<std::uint8_t>& bytes, const std::string& name)
{
    if (is_jpeg(bytes)) {
        tjhandle h = decompressor();
        int w = 0, hgt = 0, ss = 0, cs = 0;
        if (tjDecompressHeader3(h, bytes.data(), static_cast<unsigned long>(bytes.size()), &w, &hgt, &ss, &cs) != 0)
            jpeg_fail(name, ": not a readable JPEG (");
        check_dimensions(w, hgt, name, "JPEG");
        return {hgt, w};
    }
    if (is_png(bytes)) {
        png_image pi;
        std::memset(&pi, 0, sizeof pi);
        pi.version = PNG_IMAGE_VERSION;
        if (!png_image_begin_read_from_memory(&pi, bytes.data(), bytes.size()))
            detail::throw_error("", name, ": not a readable PNG (", pi.message, ")");
        const std::int64_t w = pi.width, h = pi.height;
        png_image_free(&pi);
        check_dimensions(w, h, name, "PNG");
        check_png_size(w, h, bytes.size(), name);
        return {static_cast<int>(h), static_cast<int>(w)};
    }
    detail::throw_error("", name, ": not a JPEG or PNG file (unrecognised signature)");
}

image_u8 decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name, double max_downscale)
{
    if (is_jpeg(bytes)) return decode_jpeg(bytes, name, max_downscale);
    if (is_png(bytes)) return decode_png(bytes, name);
    detail::throw_error("", name, ": not a JPEG or PNG file (unrecognised signature)");
}

image_u8 decode_image_file(const std::string& path, double max_downscale)
{
    return decode_image(read_file_bytes(path), path, max_downscale);
}

std::vector<std::uint8_t> encode_jpeg(const image_u8& img, int quality)
{
    tj_handle h(true);
    CONVNEXTV2_CHECK(h.h != nullptr, "TurboJPEG: tjInitCompress failed");
    unsigned char* out = nullptr;
    unsigned long size = 0;
    if (tjCompress2(h.h, img.pixels.data(), img.width, 0, img.height, TJPF_RGB, &out, &size, TJSAMP_420, quality, TJFLAG_ACCURATEDCT) != 0)
        detail::throw_error("", "TurboJPEG: encode failed (", tjGetErrorStr2(h.h), ")");
    std::vector<std::uint8_t> v(out, out + size);
    tjFree(out);
    return v;
}

void write_png(const std::string& path, const image_u8& img)
{
    png_image pi;
    std::memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = static_cast<png_uint_32>(img.width);
    pi.height = static_cast<png_uint_32>(img.height);
    pi.format = PNG_FORMAT_RGB;
    if (!png_image_write_to_file(&pi, path.c_str(), 0, img.pixels.data(), 0, nullptr))
        detail::throw_error("", path, ": PNG write failed (", pi.message, ")");
}

image_folder_index scan_image_folder(const std::string& split_dir)
{
    std::error_code ec;
    CONVNEXTV2_CHECK(fs::is_directory(split_dir, ec), split_dir, ": split folder not found (expected <data_dir>/{train,val}/<class>/*.jpg)");
    image_folder_index idx;
    for (auto& e : fs::directory_iterator(split_dir))
        if (e.is_directory()) idx.classes.push_back(e.path().filename().string());
    std::sort(idx.classes.begin(), idx.classes.end());
    CONVNEXTV2_CHECK(!idx.classes.empty(), split_dir, ": no class folders (expected <split>/<class>/*.jpg)");
    for (std::size_t c = 0; c < idx.classes.size(); ++c) {
        const fs::path cdir = fs::path(split_dir) / idx.classes[c];
        std::vector<std::string> files;
        for (auto& e : fs::recursive_directory_iterator(cdir, fs::directory_options::follow_directory_symlink))
            if (e.is_regular_file() && image_extension(e.path())) files.push_back(e.path().string());
        CONVNEXTV2_CHECK(!files.empty(), cdir.string(), ": class folder has no .jpg/.jpeg/.png images");
        std::sort(files.begin(), files.end());
        for (auto& f : files) {
            idx.files.push_back(std::move(f));
            idx.labels.push_back(static_cast<int>(c));
        }
    }
    return idx;
}

std::string write_classes_json(const std::string& output_dir, const std::vector<std::string>& classes)
{
    const std::string path = (fs::path(output_dir) / "classes.json").string();
    std::ofstream out(path);
    out << nlohmann::json(classes).dump(1) << "\n";
    CONVNEXTV2_CHECK(out.good(), path, ": cannot write");
    return path;
}

std::vector<std::string> read_classes_json(const std::string& path)
{
    std::ifstream in(path);
    CONVNEXTV2_CHECK(in.good(), path, ": cannot open");
    try {
        return nlohmann::json::parse(in).get<std::vector<std::string>>();
    } catch (const std::exception& e) {
        detail::throw_error("", path, ": expected a JSON array of class names (", e.what(), ")");
    }
}

image_folder_dataset::image_folder_dataset(image_folder_options opt) : opt_(std::move(opt)), filter_(parse_resample_filter(opt_.interpolation))
{
    if (!opt_.auto_augment.empty()) {
        randaug_ = parse_rand_augment(opt_.auto_augment);  // an unknown policy is an error naming it
        randaug_->params.fill = fill_from_mean(opt_.mean);
        randaug_->params.interpolation = filter_;
    }
    CONVNEXTV2_CHECK(opt_.image_size > 0, "image_folder: image_size must be positive");
    CONVNEXTV2_CHECK(opt_.re_value == "random" || opt_.re_value == "0", "re_value '", opt_.re_value, "': use \"random\" or \"0\"");
    std::error_code ec;
    CONVNEXTV2_CHECK(fs::is_directory(opt_.root, ec), opt_.root, ": data_dir not found");
    index_ = scan_image_folder((fs::path(opt_.root) / opt_.split).string());
}

void image_folder_dataset::report_corrupt(index_t i, const std::string& why) const
{
    std::lock_guard<std::mutex> lock(bad_mutex_);
    if (bad_.insert(i).second) {
        ++skipped_;
        std::fprintf(stderr, "warning: skipping %s\n", why.c_str());
    }
}

image_u8 image_folder_dataset::load(index_t i, std::uint64_t es, bool train) const
{
    const std::string& path = file(i);
    const std::vector<std::uint8_t> bytes = read_file_bytes(path);
    const int S = opt_.image_size;
    if (train) {
        const auto hw = read_image_size(bytes, path);
        counter_rng rng(es, static_cast<std::uint64_t>(i));
        const crop_box b = random_resized_crop_params(hw[0], hw[1], opt_.scale, opt_.ratio, rng);
        const double down = opt_.dct_scaling ? std::min(b.width, b.height) / (2.0 * S) : 1.0;
        image_u8 img = decode_image(bytes, path, down);
        crop_box c = b;
        if (img.width != hw[1] || img.height != hw[0]) {  // DCT-scaled: map the box
            const double sx = static_cast<double>(img.width) / hw[1], sy = static_cast<double>(img.height) / hw[0];
            c.left = std::min(static_cast<int>(std::lround(b.left * sx)), img.width - 1);
            c.top = std::min(static_cast<int>(std::lround(b.top * sy)), img.height - 1);
            c.width = std::clamp(static_cast<int>(std::lround(b.width * sx)), 1, img.width - c.left);
            c.height = std::clamp(static_cast<int>(std::lround(b.height * sy)), 1, img.height - c.top);
        }
        image_u8 out = resize(crop(img, c), S, S, filter_);
        if (opt_.hflip > 0 && rng.uniform() < opt_.hflip) hflip(out);
        if (randaug_) {  // its own stream: RandAugment on/off leaves the crop and flip unchanged
            counter_rng ra(es, static_cast<std::uint64_t>(i) ^ (0x7261ULL << 48));
            rand_augment(out, *randaug_, ra);
        }
        return out;
    }
    double down = 1.0;
    if (opt_.dct_scaling) {
        const auto hw = read_image_size(bytes, path);
        const int side = eval_resize_side(S, opt_.crop_pct);
        down = side ? std::min(hw[0], hw[1]) / (2.0 * side) : std::min(hw[0], hw[1]) / (2.0 * S);
    }
    return eval_transform(decode_image(bytes, path, down), S, opt_.crop_pct, filter_);
}

image_u8 image_folder_dataset::transformed(index_t i, std::uint64_t es, bool train) const
{
    CONVNEXTV2_CHECK(i >= 0 && i < size(), "image_folder: index ", i, " out of range [0, ", size(), ")");
    const index_t n = size();
    std::string first_error;
    for (index_t k = 0; k < n; ++k) {
        const index_t j = (i + k) % n;
        try {
            return load(j, es, train);
        } catch (const std::exception& e) {
            if (opt_.fatal_corrupt) throw;
            report_corrupt(j, e.what());
            if (first_error.empty()) first_error = e.what();
        }
    }
    detail::throw_error("", "image_folder: no readable image in ", opt_.root, "/", opt_.split, " (first error: ", first_error, ")");
}

void image_folder_dataset::get(index_t i, std::uint64_t es, bool train, float* out, int* lab) const
{
    // The substitute sample (after a corrupt file) brings its own label.
    CONVNEXTV2_CHECK(i >= 0 && i < size(), "image_folder: index ", i, " out of range [0, ", size(), ")");
    const index_t n = size();
    std::string first_error;
    for (index_t k = 0; k < n; ++k) {
        const index_t j = (i + k) % n;
        image_u8 img;
        try {
            img = load(j, es, train);
        } catch (const std::exception& e) {
            if (opt_.fatal_corrupt) throw;
            report_corrupt(j, e.what());
            if (first_error.empty()) first_error = e.what();
            continue;
        }
        normalize(img, opt_.mean, opt_.std, out);
        if (train && opt_.re_prob > 0) {
            counter_rng rng(es, static_cast<std::uint64_t>(j) ^ 0x7265ULL << 48);
            random_erasing(out, img.height, img.width, 3, opt_.re_prob, opt_.re_value == "random", rng);
        }
        *lab = label(j);
        return;
    }
    detail::throw_error("", "image_folder: no readable image in ", opt_.root, "/", opt_.split, " (first error: ", first_error, ")");
}

} // namespace convnextv2
