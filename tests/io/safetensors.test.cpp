// safetensors reader/writer: format test vector, round trip, every corruption class, half-float
// decoding, and atomic replacement on failing writes.
#include <support/fixtures.hpp>
#include <convnextv2/io/safetensors.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>

#include <sys/resource.h>

using namespace convnextv2;
using namespace convnextv2::io;
namespace fs = std::filesystem;

namespace {

struct temp_dir : test::temp_dir {
    temp_dir() : test::temp_dir("convnextv2_st_test") {}
};

std::string le64(std::uint64_t n)
{
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
    return s;
}

// A safetensors image from a header and a data buffer (header length taken from the header).
std::string image(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

void write_file(const std::string& path, const std::string& bytes)
{
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path)
{
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<std::string> leftovers(const fs::path& dir, const std::string& stem)
{
    std::vector<std::string> r;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().rfind(stem + ".tmp", 0) == 0) r.push_back(e.path().string());
    return r;
}

} // namespace

TEST_CASE("safetensors: reference test vector (2x2 I32 zeros) parses")
{
    const std::string header = R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})";
    REQUIRE(header.size() == 0x3c);
    const std::string bytes = std::string("\x3c\0\0\0\0\0\0\0", 8) + header + std::string(16, '\0');
    temp_dir dir;
    write_file(dir / "ref.safetensors", bytes);
    for (const st_file& f : {read_safetensors_bytes(bytes, "mem"), read_safetensors(dir / "ref.safetensors")}) {
        REQUIRE(f.tensors.size() == 1);
        const st_tensor& t = f.tensors.at("test");
        CHECK(t.dtype == "I32");
        CHECK(t.shape == shape_t{2, 2});
        CHECK(t.bytes == std::vector<unsigned char>(16, 0));
        CHECK(f.metadata.empty());
    }
    CHECK_THROWS_WITH(to_float(read_safetensors_bytes(bytes, "mem").tensors.at("test")), Catch::Contains("dtype I32"));
}

TEST_CASE("safetensors: write/read round trip with metadata, padding, empty and scalar tensors")
{
    temp_dir dir;
    const std::string p = dir / "w.safetensors";
    auto a = test::random_tensor<float>({3, 5}, 1);
    auto b = test::random_tensor<float>({7}, 2);
    float scalar = 42.5f;
    write_safetensors(p,
                      {{"zeta.weight", a.shape(), a.data()},
                       {"alpha.bias", b.shape(), b.data()},
                       {"scalar", {}, &scalar},
                       {"empty", {0, 4}, nullptr}},
                      {{"epoch", "3"}, {"config", "{\"depths\":[2,2,6,2]}"}});

    const std::string raw = read_file(p);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(raw[static_cast<std::size_t>(i)]);
    CHECK((8 + n) % 8 == 0);
    CHECK(raw[8] == '{');
    // Keys sorted: alpha before empty before scalar before zeta in the data buffer.
    CHECK(raw.find("\"alpha.bias\"") < raw.find("\"zeta.weight\""));
    CHECK(leftovers(dir.path, "w.safetensors").empty());

    st_file f = read_safetensors(p);
    REQUIRE(f.tensors.size() == 4);
    CHECK(f.metadata.at("epoch") == "3");
    CHECK(f.metadata.at("config") == "{\"depths\":[2,2,6,2]}");
    auto va = to_float(f.tensors.at("zeta.weight"));
    auto vb = to_float(f.tensors.at("alpha.bias"));
    CHECK(f.tensors.at("zeta.weight").shape == shape_t{3, 5});
    CHECK(test::max_abs_diff(va.data(), a.data(), a.size()) == 0);
    CHECK(test::max_abs_diff(vb.data(), b.data(), b.size()) == 0);
    CHECK(f.tensors.at("scalar").shape.empty());
    CHECK(to_float(f.tensors.at("scalar")) == std::vector<float>{42.5f});
    CHECK(f.tensors.at("empty").shape == shape_t{0, 4});
    CHECK(to_float(f.tensors.at("empty")).empty());

    // Overwriting an existing file replaces it.
    write_safetensors(p, {{"only", {2}, a.data()}});
    CHECK(read_safetensors(p).tensors.size() == 1);
}

TEST_CASE("safetensors: corrupt files give specific errors naming the file")
{
    const std::string ok_header = R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
    const std::string data24(24, '\0');
    auto bad = [](const std::string& bytes) { return read_safetensors_bytes(bytes, "w.safetensors"); };

    SECTION("valid baseline; trailing bytes tolerated")
    {
        CHECK(bad(image(ok_header, data24)).tensors.size() == 1);
        CHECK(bad(image(ok_header, data24 + "xxxx")).tensors.size() == 1);
        CHECK(bad(image(ok_header + "        ", data24)).tensors.size() == 1);
    }
    SECTION("shorter than 8 bytes")
    {
        CHECK_THROWS_WITH(bad("abc"), Catch::Contains("w.safetensors") && Catch::Contains("shorter than the 8-byte"));
        CHECK_THROWS_WITH(bad(""), Catch::Contains("shorter than the 8-byte"));
    }
    SECTION("header length beyond the file")
    {
        CHECK_THROWS_WITH(bad(le64(1000) + ok_header), Catch::Contains("w.safetensors") && Catch::Contains("beyond the end of the file"));
        CHECK_THROWS_WITH(bad(le64(~std::uint64_t{0}) + ok_header), Catch::Contains("beyond the end of the file"));
    }
    SECTION("header not JSON")
    {
        CHECK_THROWS_WITH(bad(image("hello world!", "")), Catch::Contains("w.safetensors") && Catch::Contains("not valid JSON"));
        CHECK_THROWS_WITH(bad(image("{\"w\": [1, 2", "")), Catch::Contains("not valid JSON"));
        CHECK_THROWS_WITH(bad(image("{} trailing", "")), Catch::Contains("not valid JSON"));
    }
    SECTION("header not an object / malformed entries")
    {
        CHECK_THROWS_WITH(bad(image("{\"w\": 3}", "")), Catch::Contains("tensor 'w'") && Catch::Contains("not an object"));
        CHECK_THROWS_WITH(bad(image(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", data24)), Catch::Contains("missing string 'dtype'"));
        CHECK_THROWS_WITH(bad(image(R"({"w":{"dtype":"F32","shape":[1]}})", data24)), Catch::Contains("data_offsets"));
        CHECK_THROWS_WITH(bad(image(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", data24)),
                          Catch::Contains("invalid extent"));
        CHECK_THROWS_WITH(bad(image(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", data24)),
                          Catch::Contains("invalid extent"));
        CHECK_THROWS_WITH(bad(image(R"({"__metadata__":{"k":1}})", "")), Catch::Contains("__metadata__ entry 'k'"));
    }
    SECTION("duplicate keys")
    {
        const std::string h = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
        CHECK_THROWS_WITH(bad(image(h, data24)), Catch::Contains("duplicate key 'w'"));
    }
    SECTION("truncated data")
    {
        CHECK_THROWS_WITH(bad(image(ok_header, std::string(20, '\0'))),
                          Catch::Contains("tensor 'w'") && Catch::Contains("run past the end") && Catch::Contains("truncated"));
    }
    SECTION("overlapping offsets")
    {
        const std::string h = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
        CHECK_THROWS_WITH(bad(image(h, data24)), Catch::Contains("'a' [0, 16]") && Catch::Contains("'b' [8, 16]") && Catch::Contains("overlap"));
    }
    SECTION("offsets do not match the shape")
    {
        const std::string h = R"({"head.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}})";
        CHECK_THROWS_WITH(bad(image(h, data24)),
                          Catch::Contains("w.safetensors: tensor 'head.weight': data_offsets [0, 12] hold 12 bytes but shape (2, 3) of F32 needs 24"));
        CHECK_THROWS_WITH(bad(image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", data24)), Catch::Contains("end before begin"));
    }
    SECTION("unknown dtype")
    {
        CHECK_THROWS_WITH(bad(image(R"({"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", data24)),
                          Catch::Contains("tensor 'w'") && Catch::Contains("unknown dtype 'F128'"));
    }
    SECTION("huge shapes are rejected without allocating")
    {
        // 2^40 F32 elements = 4 TiB: must fail on the offsets check, not in an allocation.
        const std::string h1 = R"({"w":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4398046511104]}})";
        CHECK_THROWS_WITH(bad(image(h1, data24)), Catch::Contains("run past the end"));
        const std::string h2 = R"({"w":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,24]}})";
        CHECK_THROWS_WITH(bad(image(h2, data24)), Catch::Contains("needs 4398046511104"));
        // Overflowing products must not wrap around to a small byte count.
        const std::string h3 = R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})";
        CHECK_THROWS_WITH(bad(image(h3, data24)), Catch::Contains("too large"));
        const std::string h4 = R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})";
        CHECK_THROWS_WITH(bad(image(h4, data24)), Catch::Contains("too large"));
    }
}

TEST_CASE("safetensors: read errors name the path")
{
    temp_dir dir;
    CHECK_THROWS_WITH(read_safetensors(dir / "nope.safetensors"),
                      Catch::Contains(dir / "nope.safetensors") && Catch::Contains("cannot open"));
    CHECK_THROWS_WITH(read_safetensors(dir.path.string()), Catch::Contains("is a directory"));
    // Header length over 100 MB in a (sparse) file large enough to hold it: rejected before reading.
    write_file(dir / "huge_header.safetensors", le64(200u << 20));
    fs::resize_file(dir / "huge_header.safetensors", (200u << 20) + 8);
    CHECK_THROWS_WITH(read_safetensors(dir / "huge_header.safetensors"), Catch::Contains("exceeds the 100 MB limit"));
    write_file(dir / "short.safetensors", "abc");
    CHECK_THROWS_WITH(read_safetensors(dir / "short.safetensors"),
                      Catch::Contains(dir / "short.safetensors") && Catch::Contains("shorter than the 8-byte"));
}

TEST_CASE("safetensors: F16, BF16 and F64 decode to float")
{
    // F16: 1.0 = 0x3C00, -2.5 = 0xC100, 65504 = 0x7BFF, 2^-24 (smallest subnormal) = 0x0001, -0 = 0x8000, inf = 0x7C00.
    // BF16: 1.0 = 0x3F80, -2.5 = 0xC020, 3.0e38-ish 0x7F7F = 3.3895314e38.
    auto u16 = [](std::initializer_list<std::uint16_t> v) {
        std::string s;
        for (auto x : v) { s += static_cast<char>(x & 0xff); s += static_cast<char>(x >> 8); }
        return s;
    };
    const std::string data = u16({0x3C00, 0xC100, 0x7BFF, 0x0001, 0x8000, 0x7C00}) + u16({0x3F80, 0xC020, 0x7F7F});
    std::string f64(16, '\0');
    const double d[2] = {1.0 / 3.0, -2.5};
    std::memcpy(&f64[0], d, 16);
    const std::string h = R"({"h":{"dtype":"F16","shape":[6],"data_offsets":[0,12]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[12,18]},)"
                          R"("d":{"dtype":"F64","shape":[2],"data_offsets":[18,34]}})";
    st_file f = read_safetensors_bytes(image(h, data + f64), "mem");
    auto h16 = to_float(f.tensors.at("h"));
    CHECK(h16[0] == 1.0f);
    CHECK(h16[1] == -2.5f);
    CHECK(h16[2] == 65504.0f);
    CHECK(h16[3] == std::ldexp(1.0f, -24));
    CHECK(h16[4] == 0.0f);
    CHECK(std::signbit(h16[4]));
    CHECK(std::isinf(h16[5]));
    auto b16 = to_float(f.tensors.at("b"));
    CHECK(b16[0] == 1.0f);
    CHECK(b16[1] == -2.5f);
    CHECK(b16[2] == Approx(3.3895314e38f));
    auto f64v = to_float(f.tensors.at("d"));
    CHECK(f64v[0] == static_cast<float>(1.0 / 3.0));
    CHECK(f64v[1] == -2.5f);
}

TEST_CASE("safetensors: failing writes name the path and never corrupt the existing file")
{
    temp_dir dir;
    const float v[4] = {1, 2, 3, 4};

    SECTION("unwritable locations")
    {
        CHECK_THROWS_WITH(write_safetensors("/proc/x/y.safetensors", {{"w", {4}, v}}),
                          Catch::Contains("/proc/x/y.safetensors") && Catch::Contains("cannot write"));
        write_file(dir / "regular", "not a dir");
        const std::string under = dir / "regular/w.safetensors";
        CHECK_THROWS_WITH(write_safetensors(under, {{"w", {4}, v}}), Catch::Contains(under) && Catch::Contains("cannot write"));
    }
    SECTION("a stale partial .tmp does not affect the original or later writes")
    {
        const std::string p = dir / "ckpt.safetensors";
        write_safetensors(p, {{"w", {4}, v}});
        write_file(p + ".tmp", "\x10\0\0\0garbage");  // what a crashed writer could leave behind
        CHECK(to_float(read_safetensors(p).tensors.at("w")) == std::vector<float>{1, 2, 3, 4});
        const float v2[2] = {5, 6};
        write_safetensors(p, {{"w", {2}, v2}});
        CHECK(to_float(read_safetensors(p).tensors.at("w")) == std::vector<float>{5, 6});
    }
    SECTION("rename failure (target is a directory) leaves no temporary file")
    {
        const std::string p = dir / "adir";
        fs::create_directories(p);
        fs::create_directories(dir / "adir/child");  // a non-empty directory cannot be replaced
        CHECK_THROWS_WITH(write_safetensors(p, {{"w", {4}, v}}), Catch::Contains(p) && Catch::Contains("rename"));
        CHECK(leftovers(dir.path, "adir").empty());
    }
    SECTION("a write that fails half-way (file size limit) keeps the previous file intact")
    {
        const std::string p = dir / "big.safetensors";
        write_safetensors(p, {{"w", {4}, v}});
        const std::string before = read_file(p);

        std::vector<float> big(1 << 16, 1.0f);  // 256 KiB of data, over the limit below
        rlimit old{};
        REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
        auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit small = old;
        small.rlim_cur = 4096;
        REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
        std::string message;
        try {
            write_safetensors(p, {{"w", {static_cast<index_t>(big.size())}, big.data()}});
        } catch (const convnextv2::error& e) {
            message = e.what();
        }
        setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);

        CHECK_THAT(message, Catch::Contains(p) && Catch::Contains("cannot write (write)"));
        CHECK(read_file(p) == before);
        CHECK(to_float(read_safetensors(p).tensors.at("w")) == std::vector<float>{1, 2, 3, 4});
        CHECK(leftovers(dir.path, "big.safetensors").empty());
    }
    SECTION("invalid input")
    {
        CHECK_THROWS_WITH(write_safetensors(dir / "d.safetensors", {{"w", {4}, v}, {"w", {4}, v}}), Catch::Contains("duplicate tensor name 'w'"));
        CHECK_THROWS_WITH(write_safetensors(dir / "d.safetensors", {{"w", {4}, nullptr}}), Catch::Contains("has no data"));
        CHECK_FALSE(fs::exists(dir / "d.safetensors"));
    }
}
