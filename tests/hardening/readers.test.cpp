// The readers of external bytes on hostile or unusual input: every problem is a convnextv2::error
// naming the file and the problem, found before anything is allocated from a header's sizes.
// (The fuzz corpora in fuzz/corpus run under fuzz/<target>:corpus; here the messages and the
// accepted variants are checked.)
#include <convnextv2/core/xtensor_interop.hpp>
#include <convnextv2/data/fashion_mnist.hpp>
#include <convnextv2/data/image_folder.hpp>
#include <convnextv2/io/recipe.hpp>
#include <convnextv2/models/convnextv2.hpp>
#include <convnextv2/train/checkpoint.hpp>
#include <support/fixtures.hpp>

#include <fstream>

using namespace convnextv2;

namespace {

const std::string corpus = CONVNEXTV2_FUZZ_CORPUS;

std::vector<std::uint8_t> file_bytes(const std::string& p)
{
    std::ifstream in(p, std::ios::binary);
    REQUIRE(in.good());
    return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Image seeds start with the fuzz target's option byte.
std::vector<std::uint8_t> image_seed(const std::string& name)
{
    auto b = file_bytes(corpus + "/image/" + name);
    return std::vector<std::uint8_t>(b.begin() + 1, b.end());
}

} // namespace

TEST_CASE(".npy reader: versions, byte orders and Fortran order agree with the C-order file", "[readers]")
{
    tensor<float> a = load_npy_f32(corpus + "/npy/f4_2x3x4_v1.npy");
    REQUIRE(a.shape() == shape_t{2, 3, 4});
    tensor<float> v2 = load_npy_f32(corpus + "/npy/f4_2x3x4_v2.npy");
    REQUIRE(v2.shape() == a.shape());
    CHECK(test::max_abs_diff(v2, a) == 0);
    tensor<float> f = load_npy_f32(corpus + "/npy/f4_fortran_3x4.npy");  // a[0].T stored column-major
    REQUIRE(f.shape() == shape_t{4, 3});
    for (index_t i = 0; i < 4; ++i)
        for (index_t j = 0; j < 3; ++j) CHECK(f[i * 3 + j] == a[j * 4 + i]);
    tensor<float> be = load_npy_f32(corpus + "/npy/f4_bigendian.npy");  // a[1] as '>f4'
    REQUIRE(be.shape() == shape_t{3, 4});
    for (index_t i = 0; i < 12; ++i) CHECK(be[i] == a[12 + i]);
    CHECK(load_npy_f32(corpus + "/npy/f4_scalar.npy").shape() == shape_t{});
    CHECK(load_npy_f32(corpus + "/npy/f4_empty.npy").shape() == shape_t{0, 3});
    // What xtensor's own reader would trust: shapes and header lengths from the header.
    REQUIRE_THROWS_WITH(load_npy_f32(corpus + "/npy/review_huge_shape.npy"), Catch::Contains("review_huge_shape.npy") && Catch::Contains("too large"));
    REQUIRE_THROWS_WITH(load_npy_f32(corpus + "/npy/review_header_len_4GiB.npy"), Catch::Contains("runs past the end of the file"));
    REQUIRE_THROWS_WITH(load_npy_f32(corpus + "/npy/f8_rejected.npy"), Catch::Contains("'<f8'"));
}

TEST_CASE("IDX reader: header sizes are claims, checked against the data that arrives", "[readers]")
{
    REQUIRE_THROWS_WITH(read_idx(corpus + "/idx/review_claims_16GiB", 2051),
                        Catch::Contains("is truncated") && Catch::Contains("17179869200 bytes") && Catch::Contains("only 19 bytes"));
    REQUIRE_THROWS_WITH(read_idx(corpus + "/idx/review_huge_dims", 2051), Catch::Contains("implausible dimensions"));
    auto a = read_idx(corpus + "/idx/images_2x28x28.gz", 2051);
    CHECK(a.dims == std::vector<index_t>{2, 28, 28});
    CHECK(a.data == read_idx(corpus + "/idx/images_2x28x28", 2051).data);
}

TEST_CASE("image decoding: pixel limit and PNG size plausibility before allocation", "[readers]")
{
    const auto png = image_seed("review_png_2000x2000_in_70_bytes.png");
    REQUIRE_THROWS_WITH(read_image_size(png, "bomb.png"), Catch::Contains("bomb.png") && Catch::Contains("2000x2000") &&
                                                              Catch::Contains("cannot be stored in 69 bytes"));
    REQUIRE_THROWS_WITH(decode_image(png, "bomb.png"), Catch::Contains("cannot be stored"));
    const auto jpg = image_seed("rgb_baseline.jpg");
    const auto hw = read_image_size(jpg, "ok.jpg");
    const std::int64_t saved = max_image_pixels();
    set_max_image_pixels(std::int64_t{hw[0]} * hw[1] - 1);
    CHECK_THROWS_WITH(decode_image(jpg, "big.jpg"), Catch::Contains("big.jpg") && Catch::Contains("more than the limit"));
    CHECK_THROWS_WITH(read_image_size(jpg, "big.jpg"), Catch::Contains("more than the limit"));
    set_max_image_pixels(std::int64_t{hw[0]} * hw[1]);
    CHECK(decode_image(jpg, "ok.jpg").width == hw[1]);
    set_max_image_pixels(saved);
    for (const char* name : {"gray16.png", "palette.png", "bilevel.png", "cmyk.jpg", "rgb_progressive.jpg"}) {
        CAPTURE(name);
        image_u8 img = decode_image(image_seed(name), name);
        CHECK(img.pixels.size() == static_cast<std::size_t>(img.width) * img.height * 3);
    }
}

TEST_CASE("recipes: sizes have sanity limits and numeric overflow is a named error", "[readers]")
{
    CHECK_THROWS_WITH(recipe_from_json(nlohmann::json{{"batch_size", 1 << 20}}, "r.json"),
                      Catch::Contains("key 'batch_size' in r.json") && Catch::Contains("sanity limit"));
    CHECK_THROWS_WITH(recipe_from_json(nlohmann::json{{"depths", {1, 1, 100000, 1}}, {"dims", {8, 8, 8, 8}}}, "r.json"),
                      Catch::Contains("key 'depths'"));
    CHECK_THROWS_WITH(recipe_from_json(nlohmann::json{{"image_resize", 1 << 20}}, "r.json"), Catch::Contains("key 'image_resize'"));
    recipe r;
    CHECK_THROWS_WITH(apply_override(r, "num_classes", "2000000000"), Catch::Contains("sanity limit"));
    test::temp_dir dir("convnextv2_readers_recipe");
    std::ofstream(dir / "big.json") << R"({"lr": 1e999})";
    CHECK_THROWS_WITH(load_recipe(dir / "big.json"), Catch::Contains("big.json") && Catch::Contains("not valid JSON"));
}

TEST_CASE("checkpoints: corrupt metadata is rejected and leaves the model untouched", "[readers]")
{
    test::temp_dir dir("convnextv2_readers_ckpt");
    model_config c;
    c.depths = {1, 1, 1, 1};
    c.dims = {2, 2, 2, 4};
    c.in_chans = 1;
    c.num_classes = 3;
    convnextv2_model<float> m(c, 1);
    adamw<float> opt(m.params());
    train::checkpoint_state st;
    st.epochs_done = 2;
    st.global_step = 8;
    st.recipe = nlohmann::json{{"model", "x"}};
    st.history = nlohmann::json::array({nlohmann::json{{"epoch", 1}}, nlohmann::json{{"epoch", 2}, {"val_loss", nullptr}}});
    const std::string good = dir / "good.safetensors";
    train::save_checkpoint(good, m.params(), opt, static_cast<model_ema<float>*>(nullptr), st);
    convnextv2_model<float> m2(c, 2);
    adamw<float> opt2(m2.params());
    const std::vector<float> before(m2.params()[0].value->begin(), m2.params()[0].value->end());

    io::st_file f = io::read_safetensors(good);
    std::vector<std::vector<float>> data;
    std::vector<io::named_tensor> tensors;
    for (auto& kv : f.tensors) data.push_back(io::to_float(kv.second));
    std::size_t i = 0;
    for (auto& kv : f.tensors) tensors.push_back({kv.first, kv.second.shape, data[i++].data()});
    struct bad_meta {
        const char* key;
        const char* value;
        const char* message;
    };
    for (const bad_meta& b : {bad_meta{"epochs_done", "-1", "'epochs_done' = '-1' is not a count"},
                              bad_meta{"global_step", "12abc", "'global_step' = '12abc' is not a count"},
                              bad_meta{"adamw_step", "99999999999999999999", "is not a count"},
                              bad_meta{"history", "{}", "'history' is not an array"},
                              bad_meta{"history", "[{},{},{}]", "at most epochs_done = 2 rows"},
                              bad_meta{"history", "[{\"train_loss\": \"x\"}]", "history value 'train_loss' is not a number"},
                              bad_meta{"recipe", "[1]", "'recipe' is not a JSON object"},
                              bad_meta{"recipe", "{", "corrupt checkpoint metadata"}}) {
        CAPTURE(b.key, b.value);
        auto meta = f.metadata;
        meta[b.key] = b.value;
        const std::string path = dir / "bad.safetensors";
        io::write_safetensors(path, tensors, meta);
        REQUIRE_THROWS_WITH(train::load_checkpoint(path, m2.params(), opt2, static_cast<model_ema<float>*>(nullptr)),
                            Catch::Contains("bad.safetensors") && Catch::Contains(b.message));
        CHECK(std::vector<float>(m2.params()[0].value->begin(), m2.params()[0].value->end()) == before);
    }
    auto back = train::load_checkpoint(good, m2.params(), opt2, static_cast<model_ema<float>*>(nullptr));
    CHECK(back.epochs_done == 2);
    CHECK(back.history.size() == 2);
}
