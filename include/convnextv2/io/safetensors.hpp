// SPDX-License-Identifier: MIT
// safetensors reader/writer (huggingface/safetensors format): u64 little-endian header length N,
// N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}
// (space-padded), then the raw little-endian, row-major tensor bytes. The reader validates the
// whole header against the file size before allocating anything, so a corrupt or hostile file
// gives a convnextv2::error naming the file and the problem, never a huge allocation or a crash.
// It tolerates trailing bytes and holes between tensors (seen in real files), rejects overlaps.
// The writer stores F32 only, keys sorted, and replaces the target atomically (tmp + fsync +
// rename), so a failed save never destroys the previous checkpoint.
#pragma once
#include "../core/shape.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace convnextv2::io {

struct st_tensor {
    std::string dtype;                // "F32", "F16", "BF16", ...
    shape_t shape;
    std::vector<unsigned char> bytes; // little-endian, row-major
};

struct st_file {
    std::map<std::string, st_tensor> tensors;
    std::map<std::string, std::string> metadata;
};

// A tensor to write: name, shape and row-major float data (numel(shape) values).
struct named_tensor {
    std::string name;
    shape_t shape;
    const float* data = nullptr;
};

namespace detail {

constexpr std::uint64_t st_max_header_bytes = 100u * 1024u * 1024u;

// Item size in bytes of a safetensors dtype; 0 when unknown.
inline std::size_t st_itemsize(const std::string& dtype)
{
    static const std::map<std::string, std::size_t> sizes = {
        {"F64", 8}, {"I64", 8}, {"U64", 8}, {"F32", 4}, {"I32", 4}, {"U32", 4}, {"F16", 2}, {"BF16", 2},
        {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    auto it = sizes.find(dtype);
    return it == sizes.end() ? 0 : it->second;
}

template <class... Args>
[[noreturn]] inline void st_fail(const std::string& what, Args&&... args)
{
    ::convnextv2::detail::throw_error(what.c_str(), std::forward<Args>(args)...);
}

inline bool host_is_little_endian()
{
    const std::uint16_t one = 1;
    unsigned char b;
    std::memcpy(&b, &one, 1);
    return b == 1;
}

inline std::uint64_t read_u64_le(const unsigned char* p)
{
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// A non-negative integer that fits in int64 (JSON numbers may be floats or negative).
inline bool json_to_index(const nlohmann::json& j, std::uint64_t& out)
{
    if (j.is_number_unsigned()) out = j.get<std::uint64_t>();
    else if (j.is_number_integer()) {
        auto v = j.get<std::int64_t>();
        if (v < 0) return false;
        out = static_cast<std::uint64_t>(v);
    } else
        return false;
    return out <= static_cast<std::uint64_t>(std::numeric_limits<index_t>::max());
}

inline std::string shape_string(const shape_t& s) { return to_string(s); }

struct st_entry {
    std::string name;
    std::string dtype;
    shape_t shape;
    std::uint64_t begin = 0, end = 0;
};

// Parses and validates the JSON header against a data buffer of `buffer_bytes` bytes.
inline std::pair<std::vector<st_entry>, std::map<std::string, std::string>>
parse_st_header(const std::string& header, std::uint64_t buffer_bytes, const std::string& what)
{
    if (header.empty() || header[0] != '{')
        st_fail(what, "header is not valid JSON (it must start with '{')");
    // Writers pad with spaces; be lenient on NUL padding too.
    std::size_t last = header.find_last_not_of(std::string(" \t\r\n\0", 5));
    std::string text = header.substr(0, last == std::string::npos ? 0 : last + 1);

    // nlohmann keeps the last of duplicate keys silently; the callback sees every key.
    std::vector<std::set<std::string>> open_objects;
    std::string duplicate;
    auto cb = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
        using ev_t = nlohmann::json::parse_event_t;
        if (ev == ev_t::object_start) open_objects.emplace_back();
        else if (ev == ev_t::object_end) { if (!open_objects.empty()) open_objects.pop_back(); }
        else if (ev == ev_t::key && !open_objects.empty() && parsed.is_string()) {
            const auto& k = parsed.get_ref<const std::string&>();
            if (!open_objects.back().insert(k).second && duplicate.empty()) duplicate = k;
        }
        return true;
    };
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text, cb);
    } catch (const nlohmann::json::exception& e) {
        st_fail(what, "header is not valid JSON: ", e.what());
    }
    if (!duplicate.empty()) st_fail(what, "header has duplicate key '", duplicate, "'");
    if (!j.is_object()) st_fail(what, "header is not a JSON object");

    std::vector<st_entry> entries;
    std::map<std::string, std::string> metadata;
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& name = it.key();
        const auto& v = it.value();
        if (name == "__metadata__") {
            if (!v.is_object()) st_fail(what, "__metadata__ must be an object of strings");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string())
                    st_fail(what, "__metadata__ entry '", m.key(), "' is not a string");
                metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const std::string where = "tensor '" + name + "'";
        if (!v.is_object()) st_fail(what, where, ": entry is not an object");
        if (!v.contains("dtype") || !v["dtype"].is_string()) st_fail(what, where, ": missing string 'dtype'");
        if (!v.contains("shape") || !v["shape"].is_array()) st_fail(what, where, ": missing array 'shape'");
        if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
            st_fail(what, where, ": missing 'data_offsets' [begin, end]");
        st_entry e;
        e.name = name;
        e.dtype = v["dtype"].get<std::string>();
        const std::size_t item = st_itemsize(e.dtype);
        if (item == 0) st_fail(what, where, ": unknown dtype '", e.dtype, "'");

        // Overflow-checked element count: a hostile shape must not wrap around to a small size.
        std::uint64_t n = 1;
        bool overflow = false;
        for (const auto& d : v["shape"]) {
            std::uint64_t dim = 0;
            if (!json_to_index(d, dim)) st_fail(what, where, ": shape ", v["shape"].dump(), " has an invalid extent");
            e.shape.push_back(static_cast<index_t>(dim));
            if (dim != 0 && n > std::numeric_limits<std::uint64_t>::max() / dim) overflow = true;
            else n *= dim;
        }
        if (overflow || n > std::numeric_limits<std::uint64_t>::max() / item)
            st_fail(what, where, ": shape ", shape_string(e.shape), " of ", e.dtype, " is too large");
        const std::uint64_t need = n * item;
        if (!json_to_index(v["data_offsets"][0], e.begin) || !json_to_index(v["data_offsets"][1], e.end))
            st_fail(what, where, ": data_offsets ", v["data_offsets"].dump(), " are not non-negative integers");
        if (e.end < e.begin)
            st_fail(what, where, ": data_offsets [", e.begin, ", ", e.end, "] end before begin");
        if (e.end - e.begin != need)
            st_fail(what, where, ": data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin, " bytes but shape ",
                    shape_string(e.shape), " of ", e.dtype, " needs ", need);
        if (e.end > buffer_bytes)
            st_fail(what, where, ": data_offsets [", e.begin, ", ", e.end, "] run past the end of the data (", buffer_bytes,
                    " bytes; file truncated?)");
        entries.push_back(std::move(e));
    }

    std::vector<const st_entry*> order;
    for (const auto& e : entries) order.push_back(&e);
    std::sort(order.begin(), order.end(), [](const st_entry* a, const st_entry* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    for (std::size_t i = 1; i < order.size(); ++i)
        if (order[i]->begin < order[i - 1]->end)
            st_fail(what, "tensors '", order[i - 1]->name, "' [", order[i - 1]->begin, ", ", order[i - 1]->end, "] and '",
                    order[i]->name, "' [", order[i]->begin, ", ", order[i]->end, "] overlap");
    return {std::move(entries), std::move(metadata)};
}

// Core reader over a random-access source: `read(offset, count, dst)` fills dst.
template <class Read>
st_file read_safetensors_source(std::uint64_t total, Read&& read, const std::string& what)
{
    if (total < 8) st_fail(what, "file is ", total, " bytes, shorter than the 8-byte safetensors header length");
    unsigned char len_bytes[8];
    read(0, 8, len_bytes);
    const std::uint64_t n = read_u64_le(len_bytes);
    if (n > total - 8)
        st_fail(what, "header length ", n, " is beyond the end of the file (", total, " bytes; not a safetensors file or truncated)");
    if (n > st_max_header_bytes) st_fail(what, "header length ", n, " exceeds the 100 MB limit");
    std::string header(static_cast<std::size_t>(n), '\0');
    if (n) read(8, n, reinterpret_cast<unsigned char*>(&header[0]));

    const std::uint64_t buffer_bytes = total - 8 - n;
    auto parsed = parse_st_header(header, buffer_bytes, what);
    st_file out;
    out.metadata = std::move(parsed.second);
    for (auto& e : parsed.first) {
        st_tensor t;
        t.dtype = std::move(e.dtype);
        t.shape = std::move(e.shape);
        t.bytes.resize(static_cast<std::size_t>(e.end - e.begin));
        if (!t.bytes.empty()) read(8 + n + e.begin, e.end - e.begin, t.bytes.data());
        out.tensors.emplace(std::move(e.name), std::move(t));
    }
    return out;
}

inline std::string errno_text(int err) { return std::strerror(err); }

struct fd_guard {
    int fd = -1;
    ~fd_guard() { if (fd >= 0) ::close(fd); }
};

inline float half_to_float(std::uint16_t h)
{
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu;
    const std::uint32_t mant = h & 0x3ffu;
    float mag;
    if (exp == 0) mag = std::ldexp(static_cast<float>(mant), -24);  // zero / subnormal
    else if (exp == 31) mag = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    else mag = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
    return sign ? -mag : mag;
}

inline float bf16_to_float(std::uint16_t b)
{
    const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

} // namespace detail

// Parses an in-memory safetensors image; `what` names it in errors (usually the path).
inline st_file read_safetensors_bytes(const std::string& bytes, const std::string& what)
{
    auto read = [&](std::uint64_t off, std::uint64_t count, unsigned char* dst) {
        std::memcpy(dst, bytes.data() + off, static_cast<std::size_t>(count));
    };
    return detail::read_safetensors_source(bytes.size(), read, what);
}

inline st_file read_safetensors(const std::string& path)
{
    detail::fd_guard f;
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) detail::st_fail(path, "cannot open for reading: ", detail::errno_text(errno));
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) detail::st_fail(path, "cannot stat: ", detail::errno_text(errno));
    if (S_ISDIR(st.st_mode)) detail::st_fail(path, "is a directory, not a safetensors file");
    auto read = [&](std::uint64_t off, std::uint64_t count, unsigned char* dst) {
        while (count > 0) {
            const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(count, 1u << 30));
            ssize_t got = ::pread(f.fd, dst, chunk, static_cast<off_t>(off));
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) detail::st_fail(path, "read error: ", detail::errno_text(errno));
            if (got == 0) detail::st_fail(path, "unexpected end of file at byte ", off, " (file changed while reading?)");
            dst += got;
            off += static_cast<std::uint64_t>(got);
            count -= static_cast<std::uint64_t>(got);
        }
    };
    return detail::read_safetensors_source(static_cast<std::uint64_t>(st.st_size), read, path);
}

// Decodes F32/F16/BF16/F64 tensors to float; other dtypes are an error.
inline std::vector<float> to_float(const st_tensor& t)
{
    const std::size_t item = detail::st_itemsize(t.dtype);
    const bool supported = t.dtype == "F32" || t.dtype == "F16" || t.dtype == "BF16" || t.dtype == "F64";
    CONVNEXTV2_CHECK(supported, "safetensors: dtype ", t.dtype, " cannot be converted to float (supported: F32, F16, BF16, F64)");
    CONVNEXTV2_CHECK(t.bytes.size() == static_cast<std::size_t>(numel(t.shape)) * item, "safetensors: tensor of shape ",
                     to_string(t.shape), " and dtype ", t.dtype, " has ", t.bytes.size(), " bytes");
    const std::size_t n = t.bytes.size() / item;
    std::vector<float> out(n);
    const unsigned char* p = t.bytes.data();
    for (std::size_t i = 0; i < n; ++i, p += item) {
        if (t.dtype == "F32") {
            std::uint32_t b = std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
            std::memcpy(&out[i], &b, 4);
        } else if (t.dtype == "F64") {
            std::uint64_t b = detail::read_u64_le(p);
            double d;
            std::memcpy(&d, &b, 8);
            out[i] = static_cast<float>(d);
        } else {
            std::uint16_t b = static_cast<std::uint16_t>(p[0] | p[1] << 8);
            out[i] = t.dtype == "F16" ? detail::half_to_float(b) : detail::bf16_to_float(b);
        }
    }
    return out;
}

// Writes F32 tensors (keys sorted, header space-padded to a multiple of 8) to `path` atomically:
// the data goes to a unique temporary file next to it, is fsynced, then renamed over `path`.
inline void write_safetensors(const std::string& path, const std::vector<named_tensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {})
{
    std::map<std::string, const named_tensor*> sorted;
    for (const auto& t : tensors) {
        CONVNEXTV2_CHECK(!t.name.empty() && t.name != "__metadata__", path, ": invalid tensor name '", t.name, "'");
        CONVNEXTV2_CHECK(sorted.emplace(t.name, &t).second, path, ": duplicate tensor name '", t.name, "'");
        for (index_t d : t.shape) CONVNEXTV2_CHECK(d >= 0, path, ": tensor '", t.name, "' has negative extent in ", to_string(t.shape));
        CONVNEXTV2_CHECK(t.data || numel(t.shape) == 0, path, ": tensor '", t.name, "' has no data");
    }
    nlohmann::json header = nlohmann::json::object();
    std::uint64_t offset = 0;
    for (const auto& [name, t] : sorted) {
        const std::uint64_t bytes = static_cast<std::uint64_t>(numel(t->shape)) * 4;
        header[name] = {{"dtype", "F32"}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& e) {
        detail::st_fail(path, "cannot encode header (names must be valid UTF-8): ", e.what());
    }
    // Pad so the data buffer starts 8-byte aligned (8 + N is a multiple of 8).
    text.append((8 - text.size() % 8) % 8, ' ');

    static std::atomic<unsigned> counter{0};
    const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) detail::st_fail(path, "cannot write (creating ", tmp, "): ", detail::errno_text(errno));

    auto fail = [&](const char* step, int err) {
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        detail::st_fail(path, "cannot write (", step, "): ", detail::errno_text(err));
    };
    auto write_all = [&](const void* data, std::size_t count) {
        const char* p = static_cast<const char*>(data);
        while (count > 0) {
            ssize_t w = ::write(fd, p, std::min<std::size_t>(count, 1u << 30));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) fail("write", errno);
            if (w == 0) fail("write", EIO);
            p += w;
            count -= static_cast<std::size_t>(w);
        }
    };

    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(text.size()) >> (8 * i));
    write_all(len, 8);
    write_all(text.data(), text.size());
    const bool le = detail::host_is_little_endian();
    std::vector<unsigned char> chunk;
    for (const auto& [name, t] : sorted) {
        const std::size_t n = static_cast<std::size_t>(numel(t->shape));
        if (le) { write_all(t->data, n * 4); continue; }
        chunk.resize(n * 4);
        for (std::size_t i = 0; i < n; ++i) {
            std::uint32_t b;
            std::memcpy(&b, t->data + i, 4);
            for (int k = 0; k < 4; ++k) chunk[i * 4 + k] = static_cast<unsigned char>(b >> (8 * k));
        }
        write_all(chunk.data(), chunk.size());
    }
    if (::fsync(fd) != 0) fail("fsync", errno);
    const int cfd = fd;
    fd = -1;
    if (::close(cfd) != 0) fail("close", errno);
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename", errno);

    // Make the rename itself durable; best effort (some filesystems refuse directory fsync).
    const std::size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { (void)::fsync(dfd); ::close(dfd); }
}

} // namespace convnextv2::io
