// SPDX-License-Identifier: MIT
// IDX reader (zlib gz* API: reads gzip and plain files alike) and the Fashion-MNIST dataset.
#include <convnextv2/data/fashion_mnist.hpp>
#include <convnextv2/data/transforms.hpp>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>
#include <sys/stat.h>

namespace convnextv2 {

namespace {

struct gz_closer {
    void operator()(gzFile_s* f) const { gzclose(f); }
};
using gz_ptr = std::unique_ptr<gzFile_s, gz_closer>;

std::uint32_t be32(const unsigned char* p)
{
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

// Reads up to n bytes; returns the count read and leaves a zlib error text in `err` if any.
std::size_t gz_read_all(gzFile f, unsigned char* dst, std::size_t n, std::string& err)
{
    std::size_t got = 0;
    while (got < n) {
        const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, std::size_t{1} << 20));
        const int r = gzread(f, dst + got, chunk);
        if (r < 0) {
            int code = 0;
            const char* msg = gzerror(f, &code);
            err = msg ? msg : "zlib error";
            break;
        }
        if (r == 0) {
            int code = 0;
            const char* msg = gzerror(f, &code);
            if (code != Z_OK && msg) err = msg;
            break;
        }
        got += static_cast<std::size_t>(r);
    }
    return got;
}

std::string dims_text(const std::vector<index_t>& d)
{
    std::string s;
    for (std::size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
    return s;
}

bool file_exists(const std::string& p)
{
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

const char* idx_kind(std::uint32_t magic) { return magic == 2051 ? "IDX images" : magic == 2049 ? "IDX labels" : "IDX"; }

} // namespace

idx_array read_idx(const std::string& path, std::uint32_t expected_magic)
{
    gz_ptr f(gzopen(path.c_str(), "rb"));
    if (!f) throw error("cannot open IDX file '" + path + "'");
    gzbuffer(f.get(), 1u << 17);
    std::string err;

    unsigned char head[4];
    std::size_t got = gz_read_all(f.get(), head, 4, err);
    if (got < 4)
        throw error("IDX file '" + path + "' is truncated: " + std::to_string(got) + " bytes, but the header alone needs 4" +
                    (err.empty() ? "" : " (" + err + ")"));
    const std::uint32_t magic = be32(head);
    if (magic != expected_magic) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "bad magic number 0x%08x (%u); expected 0x%08x (%u) for %s", magic, magic,
                      expected_magic, expected_magic, idx_kind(expected_magic));
        throw error("IDX file '" + path + "': " + buf);
    }
    const int ndims = static_cast<int>(magic & 0xffu);
    std::vector<unsigned char> dimbuf(static_cast<std::size_t>(4 * ndims));
    got = gz_read_all(f.get(), dimbuf.data(), dimbuf.size(), err);
    const std::size_t header_bytes = 4 + dimbuf.size();
    if (got < dimbuf.size())
        throw error("IDX file '" + path + "' is truncated inside its header: expected " + std::to_string(header_bytes) +
                    " header bytes, got " + std::to_string(4 + got));

    idx_array a;
    a.path = path;
    index_t n = 1;
    for (int i = 0; i < ndims; ++i) {
        const index_t d = be32(&dimbuf[static_cast<std::size_t>(4 * i)]);
        if (d == 0) throw error("IDX file '" + path + "': dimension " + std::to_string(i) + " is zero");
        a.dims.push_back(d);
        if (d > (index_t{1} << 34) / n) throw error("IDX file '" + path + "': implausible dimensions " + dims_text(a.dims));
        n *= d;
    }
    const index_t expected_total = static_cast<index_t>(header_bytes) + n;
    // The header's size is only a claim: grow the buffer as data actually arrives (a 16-byte
    // file claiming 2^34 bytes must not allocate them), in steps of at most 64 MiB.
    got = 0;
    while (got < static_cast<std::size_t>(n)) {
        const std::size_t want = std::min<std::size_t>(static_cast<std::size_t>(n) - got, std::max<std::size_t>(got, std::size_t{1} << 20));
        a.data.resize(got + std::min<std::size_t>(want, std::size_t{64} << 20));
        const std::size_t r = gz_read_all(f.get(), a.data.data() + got, a.data.size() - got, err);
        got += r;
        if (got < a.data.size()) break;
    }
    a.data.resize(got);
    if (got < static_cast<std::size_t>(n)) {
        std::ostringstream os;
        os << "IDX file '" << path << "' is truncated: its header says " << dims_text(a.dims) << ", so the "
           << (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0 ? "decompressed " : "") << "size should be "
           << expected_total << " bytes (" << header_bytes << "-byte header + " << n << " data bytes), but only "
           << static_cast<index_t>(header_bytes + got) << " bytes could be read";
        if (!err.empty()) os << " (" << err << ")";
        throw error(os.str());
    }
    unsigned char extra;
    if (gz_read_all(f.get(), &extra, 1, err) != 0)
        throw error("IDX file '" + path + "' has more data than its header says: expected " + std::to_string(expected_total) +
                    " bytes for " + dims_text(a.dims));
    return a;
}

std::string find_idx_file(const std::string& dir, const std::string& stem)
{
    const std::string base = dir.empty() ? stem : dir + "/" + stem;
    if (file_exists(base)) return base;
    if (file_exists(base + ".gz")) return base + ".gz";
    throw error("Fashion-MNIST file not found: neither '" + base + "' nor '" + base + ".gz' exists");
}

fashion_mnist_dataset::fashion_mnist_dataset(fashion_mnist_options opt) : opt_(std::move(opt))
{
    CONVNEXTV2_CHECK(opt_.split == "train" || opt_.split == "test", "fashion_mnist: split must be 'train' or 'test', got '",
                     opt_.split, "'");
    CONVNEXTV2_CHECK(opt_.image_size >= 1, "fashion_mnist: image_size must be >= 1, got ", opt_.image_size);
    CONVNEXTV2_CHECK(opt_.in_chans == 1 || opt_.in_chans == 3, "fashion_mnist: in_chans must be 1 or 3, got ", opt_.in_chans);
    CONVNEXTV2_CHECK(opt_.std > 0, "fashion_mnist: std must be > 0");
    CONVNEXTV2_CHECK(opt_.random_crop_padding >= 0, "fashion_mnist: random_crop_padding must be >= 0");
    CONVNEXTV2_CHECK(opt_.hflip >= 0 && opt_.hflip <= 1, "fashion_mnist: hflip must be in [0, 1], got ", opt_.hflip);
    CONVNEXTV2_CHECK(opt_.re_prob >= 0 && opt_.re_prob <= 1, "fashion_mnist: re_prob must be in [0, 1], got ", opt_.re_prob);
    CONVNEXTV2_CHECK(opt_.limit >= 0, "fashion_mnist: limit must be >= 0");

    const std::string prefix = opt_.split == "train" ? "train" : "t10k";
    idx_array img = read_idx(find_idx_file(opt_.dir, prefix + "-images-idx3-ubyte"), 2051);
    idx_array lab = read_idx(find_idx_file(opt_.dir, prefix + "-labels-idx1-ubyte"), 2049);
    if (img.dims.size() != 3 || img.dims[1] != 28 || img.dims[2] != 28)
        throw error("IDX file '" + img.path + "': expected N x 28 x 28 images, header says " + dims_text(img.dims));
    if (lab.dims.size() != 1)
        throw error("IDX file '" + lab.path + "': expected a 1-D label array, header says " + dims_text(lab.dims));
    if (lab.dims[0] != img.dims[0])
        throw error("Fashion-MNIST: '" + lab.path + "' has " + std::to_string(lab.dims[0]) + " labels but '" + img.path + "' has " +
                    std::to_string(img.dims[0]) + " images");
    for (std::size_t i = 0; i < lab.data.size(); ++i)
        if (lab.data[i] > 9)
            throw error("IDX file '" + lab.path + "': label " + std::to_string(lab.data[i]) + " at index " + std::to_string(i) +
                        " is outside 0..9");
    count_ = img.dims[0];
    if (opt_.limit > 0 && opt_.limit < count_) count_ = opt_.limit;
    pixels_ = std::move(img.data);
    pixels_.resize(static_cast<std::size_t>(count_ * 28 * 28));
    labels_ = std::move(lab.data);
    labels_.resize(static_cast<std::size_t>(count_));
}

void fashion_mnist_dataset::get(index_t i, std::uint64_t epoch_seed, bool train, float* out, int* label) const
{
    CONVNEXTV2_CHECK(i >= 0 && i < count_, "fashion_mnist: index ", i, " out of range [0, ", count_, ")");
    const int S = opt_.image_size, C = opt_.in_chans;
    const std::uint8_t* src = raw_image(i);

    // The un-augmented S×S canvas, pixel values in [0, 1].
    std::vector<float> canvas(static_cast<std::size_t>(S) * static_cast<std::size_t>(S), 0.0f);
    if (S >= 28 && !opt_.resize) {
        const int off = (S - 28) / 2;
        for (int y = 0; y < 28; ++y)
            for (int x = 0; x < 28; ++x)
                canvas[static_cast<std::size_t>((y + off) * S + x + off)] = static_cast<float>(src[y * 28 + x]) / 255.0f;
    } else {
        const double sc = 28.0 / S;
        for (int y = 0; y < S; ++y) {
            const double fy = std::min(std::max((y + 0.5) * sc - 0.5, 0.0), 27.0);
            const int y0 = static_cast<int>(fy), y1 = std::min(y0 + 1, 27);
            const double wy = fy - y0;
            for (int x = 0; x < S; ++x) {
                const double fx = std::min(std::max((x + 0.5) * sc - 0.5, 0.0), 27.0);
                const int x0 = static_cast<int>(fx), x1 = std::min(x0 + 1, 27);
                const double wx = fx - x0;
                const double v = (1 - wy) * ((1 - wx) * src[y0 * 28 + x0] + wx * src[y0 * 28 + x1]) +
                                 wy * ((1 - wx) * src[y1 * 28 + x0] + wx * src[y1 * 28 + x1]);
                canvas[static_cast<std::size_t>(y * S + x)] = static_cast<float>(v / 255.0);
            }
        }
    }

    int pad = 0, oy = 0, ox = 0;
    bool flip = false;
    counter_rng rng(epoch_seed, static_cast<std::uint64_t>(i));
    if (train) {
        pad = opt_.random_crop_padding;
        if (pad > 0) {
            oy = static_cast<int>(rng.below(static_cast<std::uint64_t>(2 * pad + 1)));
            ox = static_cast<int>(rng.below(static_cast<std::uint64_t>(2 * pad + 1)));
        }
        if (opt_.hflip > 0) flip = rng.uniform() < opt_.hflip;
    }
    const float inv_std = 1.0f / opt_.std;
    for (int y = 0; y < S; ++y) {
        const int cy = y + oy - pad;
        for (int x = 0; x < S; ++x) {
            const int cx = (flip ? S - 1 - x : x) + ox - pad;
            const float v = (cy >= 0 && cy < S && cx >= 0 && cx < S) ? canvas[static_cast<std::size_t>(cy * S + cx)] : 0.0f;
            const float nv = (v - opt_.mean) * inv_std;
            float* o = out + (static_cast<index_t>(y) * S + x) * C;
            for (int c = 0; c < C; ++c) o[c] = nv;
        }
    }
    // Drawn after the crop and flip, so recipes without erasing see the same samples as before.
    if (train && opt_.re_prob > 0) random_erasing(out, S, S, C, opt_.re_prob, opt_.re_random_fill, rng);
    *label = labels_[static_cast<std::size_t>(i)];
}

const char* fashion_mnist_dataset::class_name(int label)
{
    static const char* names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    return label >= 0 && label < 10 ? names[label] : "?";
}

} // namespace convnextv2
