// SPDX-License-Identifier: MIT
// The one place that includes xtensor (Debian's 0.24 flat header layout). xtensor is used only
// at the API boundary: our tensors are exposed as xtensor adaptors without copying, xtensor
// containers are copied in once, .npy files are written through xtensor/xnpy.hpp and read by a
// strict reader of our own (xtensor's trusts the header's shape).
#pragma once
#include "tensor.hpp"

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xnpy.hpp>
#include <xtensor/xtensor.hpp>

#include <cstring>
#include <fstream>

namespace convnextv2 {

// A no-copy xtensor view of a tensor (valid while the tensor lives and is not resized).
template <class T>
auto as_xtensor(tensor<T>& t)
{
    std::vector<std::size_t> shape(t.shape().begin(), t.shape().end());
    return xt::adapt(t.data(), static_cast<std::size_t>(t.size()), xt::no_ownership(), shape);
}

// Copies any xtensor expression (row-major) into a tensor.
template <class T, class E>
tensor<T> from_xtensor(const xt::xexpression<E>& expr)
{
    const auto& e = expr.derived_cast();
    shape_t s(e.shape().begin(), e.shape().end());
    tensor<T> t(s);
    std::size_t i = 0;
    for (auto v : e) t[static_cast<index_t>(i++)] = static_cast<T>(v);
    return t;
}

namespace detail {

inline bool npy_host_little_endian()
{
    const std::uint16_t one = 1;
    unsigned char b;
    std::memcpy(&b, &one, 1);
    return b == 1;
}

// The value text after 'key': in a .npy header dict, or "" when the key is absent.
inline std::string npy_header_value(const std::string& h, const std::string& key)
{
    for (const char q : {'\'', '"'}) {
        const std::string k = std::string(1, q) + key + std::string(1, q);
        std::size_t p = h.find(k);
        if (p == std::string::npos) continue;
        p = h.find(':', p + k.size());
        if (p == std::string::npos) return "";
        p = h.find_first_not_of(' ', p + 1);
        if (p == std::string::npos) return "";
        const char c = h[p];
        std::size_t e;
        if (c == '\'' || c == '"') e = h.find(c, p + 1);
        else if (c == '(') e = h.find(')', p + 1);
        else e = h.find_first_of(",}", p) - 1;
        if (e == std::string::npos || e < p) return "";
        return h.substr(p, e - p + 1);
    }
    return "";
}

} // namespace detail

// Reads a float32 .npy file (format versions 1-3, any rank, C or Fortran order, either byte
// order); errors name the file. The header is validated (magic, version, header length, dtype,
// shape extents with overflow checks) against the file size before the data is allocated.
inline tensor<float> load_npy_f32(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    CONVNEXTV2_CHECK(in.good(), path, ": cannot open .npy file");
    in.seekg(0, std::ios::end);
    const std::streamoff total = in.tellg();
    in.seekg(0);
    CONVNEXTV2_CHECK(total >= 0, path, ": cannot determine the size of the .npy file");
    auto fail = [&](auto&&... what) { detail::throw_error(path.c_str(), "not a float32 .npy file (", what..., ")"); };
    unsigned char pre[12];
    if (total < 10 || !in.read(reinterpret_cast<char*>(pre), 10)) fail("file is ", total, " bytes, shorter than the .npy preamble");
    if (std::memcmp(pre, "\x93NUMPY", 6) != 0) fail("bad magic; expected \\x93NUMPY");
    const int major = pre[6];
    if (major < 1 || major > 3) fail("unsupported format version ", major, ".", int(pre[7]));
    std::uint64_t hlen = std::uint64_t(pre[8]) | std::uint64_t(pre[9]) << 8;
    std::streamoff offset = 10;
    if (major >= 2) {
        if (total < 12 || !in.read(reinterpret_cast<char*>(pre + 10), 2)) fail("truncated preamble");
        hlen |= std::uint64_t(pre[10]) << 16 | std::uint64_t(pre[11]) << 24;
        offset = 12;
    }
    if (hlen > static_cast<std::uint64_t>(total - offset)) fail("header length ", hlen, " runs past the end of the file (", total, " bytes)");
    if (hlen > (std::uint64_t{1} << 20)) fail("header length ", hlen, " exceeds 1 MiB");
    std::string h(static_cast<std::size_t>(hlen), '\0');
    if (hlen && !in.read(&h[0], static_cast<std::streamsize>(hlen))) fail("truncated header");
    offset += static_cast<std::streamoff>(hlen);
    if (h.empty() || h[0] != '{' || h.find('}') == std::string::npos) fail("header is not a dict");

    const std::string descr = detail::npy_header_value(h, "descr");
    if (descr.size() != 5 || descr.substr(2, 2) != "f4" || (descr[1] != '<' && descr[1] != '>' && descr[1] != '=' && descr[1] != '|'))
        fail("dtype ", descr.empty() ? std::string("(missing)") : descr, "; expected float32 ('<f4')");
    const bool le = detail::npy_host_little_endian();
    const bool swap = (descr[1] == '>' && le) || (descr[1] == '<' && !le);
    const std::string fo = detail::npy_header_value(h, "fortran_order");
    if (fo != "False" && fo != "True") fail("fortran_order ", fo.empty() ? std::string("(missing)") : fo, " is not True or False");
    const std::string st = detail::npy_header_value(h, "shape");
    if (st.size() < 2 || st.front() != '(' || st.back() != ')') fail("shape ", st.empty() ? std::string("(missing)") : st, " is not a tuple");
    shape_t shape;
    std::uint64_t count = 1;
    for (std::size_t p = 1; p + 1 < st.size();) {
        p = st.find_first_not_of(" ", p);
        if (p == std::string::npos || p + 1 >= st.size()) break;
        std::size_t q = p;
        std::uint64_t d = 0;
        while (q + 1 < st.size() && st[q] >= '0' && st[q] <= '9') {
            if (d > (std::uint64_t{1} << 40)) fail("shape ", st, " has an absurd extent");
            d = d * 10 + static_cast<std::uint64_t>(st[q++] - '0');
        }
        if (q == p) fail("shape ", st, " is not a tuple of non-negative integers");
        if (shape.size() >= 32) fail("shape ", st, " has more than 32 dimensions");
        shape.push_back(static_cast<index_t>(d));
        if (d != 0 && count > (std::uint64_t{1} << 40) / d) fail("shape ", st, " is too large");
        count *= d;
        p = st.find_first_not_of(" ", q);
        if (p + 1 < st.size() && st[p] != ',') fail("shape ", st, " is not a tuple of non-negative integers");
        if (st[p] == ',') ++p;
    }
    const std::uint64_t need = count * 4, have = static_cast<std::uint64_t>(total - offset);
    if (need != have) fail("shape ", st, " needs ", need, " data bytes, the file has ", have);

    tensor<float> t(shape);
    std::vector<float> raw(static_cast<std::size_t>(count));
    if (count && !in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(need))) fail("read error");
    if (swap)
        for (auto& v : raw) {
            std::uint32_t b;
            std::memcpy(&b, &v, 4);
            b = (b >> 24) | ((b >> 8) & 0xff00u) | ((b << 8) & 0xff0000u) | (b << 24);
            std::memcpy(&v, &b, 4);
        }
    if (fo == "False" || shape.size() < 2) {
        std::copy(raw.begin(), raw.end(), t.data());
    } else {  // Fortran order: the first index varies fastest
        std::vector<index_t> idx(shape.size(), 0);
        for (std::uint64_t i = 0; i < count; ++i) {
            index_t c = 0;
            for (std::size_t k = 0; k < shape.size(); ++k) c = c * shape[k] + idx[k];
            t[c] = raw[static_cast<std::size_t>(i)];
            for (std::size_t k = 0; k < shape.size() && ++idx[k] == shape[k]; ++k) idx[k] = 0;
        }
    }
    return t;
}

inline void save_npy_f32(const std::string& path, tensor<float>& t)
{
    xt::xarray<float> a = as_xtensor(t);
    xt::dump_npy(path, a);
    std::ifstream check(path, std::ios::binary);
    CONVNEXTV2_CHECK(check.good(), path, ": could not write .npy file");
}

} // namespace convnextv2
