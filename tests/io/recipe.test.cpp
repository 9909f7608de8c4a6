#include <convnextv2/io/recipe.hpp>
#include <support/fixtures.hpp>

#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace convnextv2;
namespace fs = std::filesystem;

namespace {

// Writes `text` to <tmp>/<name> and returns the path.
std::string write_temp(const std::string& name, const std::string& text)
{
    fs::path dir = fs::temp_directory_path() / ("convnextv2_recipe_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    fs::path p = dir / name;
    std::ofstream(p) << text;
    return p.string();
}

recipe from(const std::string& text) { return recipe_from_json(nlohmann::json::parse(text), "r.json"); }

} // namespace

TEST_CASE("recipe: defaults are the official fine-tuning defaults and validate", "[io][recipe]")
{
    recipe r;
    REQUIRE_NOTHROW(validate_recipe(r, "defaults"));
    REQUIRE(r.lr == Approx(5e-4 * 64 / 256));
    REQUIRE(r.warmup_epochs == 20);
    REQUIRE(r.min_lr == 1e-6);
    REQUIRE(r.weight_decay == 0.05);
    REQUIRE(r.filter_bias_and_bn);
    REQUIRE(r.head_init_scale == 0.001);
    REQUIRE(r.label_smoothing == 0.1);
    REQUIRE(r.ema_decay == 0.9999);
    REQUIRE(recipe_eval_batch_size(r) == 64);
    REQUIRE(recipe_decay_epochs(r) == 80);
}

TEST_CASE("recipe: unknown key names the key and file and suggests the closest key", "[io][recipe]")
{
    const std::string path = write_temp("r.json", R"({"lr": 0.001, "weight_decy": 0.05})");
    REQUIRE_THROWS_WITH(load_recipe(path), Catch::Contains("unknown key 'weight_decy' in ") && Catch::Contains("r.json") &&
                                               Catch::Contains("did you mean 'weight_decay'?"));
    REQUIRE_THROWS_WITH(from(R"({"layer_decay_typ": "single"})"), Catch::Contains("did you mean 'layer_decay_type'?"));
    REQUIRE_THROWS_WITH(from(R"({"warmup_epoch": 5})"), Catch::Contains("did you mean 'warmup_epochs'?"));
    // Far from every key: no suggestion.
    REQUIRE_THROWS_WITH(from(R"({"qqqqqqqqqqqqqqqq": 1})"), !Catch::Contains("did you mean"));
    REQUIRE_THROWS_WITH(load_recipe(path + ".missing"), Catch::Contains("cannot open"));
    const std::string bad = write_temp("bad.json", "{\"lr\": 0.1,,}");
    REQUIRE_THROWS_WITH(load_recipe(bad), Catch::Contains("bad.json") && Catch::Contains("not valid JSON"));
}

TEST_CASE("recipe: wrong JSON type names key, expected and found type", "[io][recipe]")
{
    REQUIRE_THROWS_WITH(from(R"({"lr": "fast"})"),
                        Catch::Contains("key 'lr' in r.json") && Catch::Contains("expected a number") && Catch::Contains("found string"));
    REQUIRE_THROWS_WITH(from(R"({"batch_size": 2.5})"), Catch::Contains("'batch_size'") && Catch::Contains("expected an integer"));
    REQUIRE_THROWS_WITH(from(R"({"ema": 1})"), Catch::Contains("'ema'") && Catch::Contains("expected a boolean") &&
                                                  Catch::Contains("found integer"));
    REQUIRE_THROWS_WITH(from(R"({"scale": [0.08]})"), Catch::Contains("'scale'") && Catch::Contains("array of 2 numbers"));
    REQUIRE_THROWS_WITH(from(R"({"model": 3})"), Catch::Contains("'model'") && Catch::Contains("expected a string"));
    REQUIRE_THROWS_WITH(from(R"({"depths": [2, 2.5, 6, 2]})"), Catch::Contains("'depths'"));
    REQUIRE_THROWS_WITH(from("[1, 2]"), Catch::Contains("r.json") && Catch::Contains("JSON object"));
    REQUIRE(from(R"({"epoch_size": 300.0})").epoch_size == 300);
}

TEST_CASE("recipe: out-of-range values name key and value", "[io][recipe]")
{
    REQUIRE_THROWS_WITH(from(R"({"lr": -0.1})"), Catch::Contains("'lr'") && Catch::Contains("-0.1"));
    REQUIRE_THROWS_WITH(from(R"({"batch_size": 0})"), Catch::Contains("'batch_size'") && Catch::Contains("0 is out of range"));
    REQUIRE_THROWS_WITH(from(R"({"layer_decay": 0})"), Catch::Contains("'layer_decay'"));
    REQUIRE_THROWS_WITH(from(R"({"layer_decay": 1.5})"), Catch::Contains("'layer_decay'") && Catch::Contains("1.5"));
    REQUIRE_THROWS_WITH(from(R"({"ema_decay": 1.0})"), Catch::Contains("'ema_decay'"));
    REQUIRE_THROWS_WITH(from(R"({"ema_decay": -0.1})"), Catch::Contains("'ema_decay'"));
    REQUIRE_THROWS_WITH(from(R"({"label_smoothing": 1.0})"), Catch::Contains("'label_smoothing'"));
    REQUIRE_THROWS_WITH(from(R"({"layer_decay_type": "triple"})"), Catch::Contains("'layer_decay_type'") && Catch::Contains("'triple'"));
    REQUIRE_THROWS_WITH(from(R"({"opt": "sgd"})"), Catch::Contains("'opt'") && Catch::Contains("'sgd'"));
    REQUIRE_THROWS_WITH(from(R"({"dataset": "cifar10"})"), Catch::Contains("'dataset'") && Catch::Contains("'cifar10'"));
    REQUIRE_THROWS_WITH(from(R"({"model": "convnextv2_tinny"})"), Catch::Contains("did you mean 'convnextv2_tiny'?"));
    REQUIRE_THROWS_WITH(from(R"({"image_resize": 16})"), Catch::Contains("'image_resize'") && Catch::Contains("at least 32"));
    CHECK(from(R"({"image_resize": 100})").image_resize == 100);  // not a multiple of 32: strided convs floor
    REQUIRE_THROWS_WITH(from(R"({"depths": [2, 2, 6, 2]})"), Catch::Contains("depths"));
    REQUIRE_THROWS_WITH(from(R"({"scale": [0.5, 0.2]})"), Catch::Contains("'scale'"));
    REQUIRE_THROWS_WITH(from(R"({"amp_level": "O5"})"), Catch::Contains("'amp_level'"));
    REQUIRE_THROWS_WITH(from(R"({"matmul_precision": "fp16"})"),
                        Catch::Contains("'matmul_precision'") && Catch::Contains("'fp16'") && Catch::Contains("'bf16'"));
    CHECK(from(R"({"matmul_precision": "BF16"})").matmul_precision == "bf16");
    // Small-image custom variant.
    recipe c = from(R"({"model": "tiny_fmnist", "depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128], "stem_kernel": 2,
                        "image_resize": 32, "in_chans": 1, "num_classes": 10})");
    REQUIRE(c.depths == std::vector<int>{1, 1, 2, 1});
    REQUIRE(c.stem_kernel == 2);
}

TEST_CASE("recipe: comments ignored, MindCV spellings canonicalised", "[io][recipe]")
{
    recipe r = from(R"({"_comment": "hello", "#section": {"anything": 1}, "dataset": "imagenet", "loss": "CE", "opt": "AdamW",
                        "amp_level": "o2"})");
    REQUIRE(r.dataset == "imagefolder");
    REQUIRE(r.loss == "ce");
    REQUIRE(r.opt == "adamw");
    REQUIRE(r.amp_level == "O2");
    auto notes = recipe_notes(r);
    REQUIRE(std::any_of(notes.begin(), notes.end(), [](const std::string& n) { return n.find("amp_level") != std::string::npos; }));
}

TEST_CASE("recipe: command-line overrides use the same checks", "[io][recipe]")
{
    recipe r;
    apply_override(r, "--lr", "0.002");
    apply_override(r, "ema", "true");
    apply_override(r, "--batch-size", "16");
    apply_override(r, "scale", "0.2,1.0");
    apply_override(r, "ratio", "[0.5, 2]");
    apply_override(r, "model", "convnextv2_atto");
    apply_override(r, "data_dir", "123");
    apply_override(r, "depths", "[]");
    REQUIRE(r.lr == 0.002);
    REQUIRE(r.ema);
    REQUIRE(r.batch_size == 16);
    REQUIRE(r.scale == std::array<double, 2>{0.2, 1.0});
    REQUIRE(r.ratio == std::array<double, 2>{0.5, 2.0});
    REQUIRE(r.model == "convnextv2_atto");
    REQUIRE(r.data_dir == "123");

    REQUIRE_THROWS_WITH(apply_override(r, "lr", "abc"), Catch::Contains("'lr'") && Catch::Contains("expected a number"));
    REQUIRE_THROWS_WITH(apply_override(r, "weight_decy", "0.1"), Catch::Contains("did you mean 'weight_decay'?"));
    REQUIRE_THROWS_WITH(apply_override(r, "batch_size", "0"), Catch::Contains("'batch_size'") && Catch::Contains("out of range"));
    REQUIRE_THROWS_WITH(apply_override(r, "ema", "maybe"), Catch::Contains("'ema'") && Catch::Contains("expected a boolean"));
    REQUIRE_THROWS_WITH(apply_override(r, "layer_decay_type", "triple"), Catch::Contains("'triple'"));
    // A failed override leaves the recipe unchanged.
    REQUIRE(r.batch_size == 16);
    REQUIRE(r.layer_decay_type == "single");
}

TEST_CASE("recipe: to_json round trip", "[io][recipe]")
{
    recipe r;
    r.model = "convnextv2_atto";
    r.lr = 8e-4;
    r.scale = {0.2, 1.0};
    r.seed = 1234567890123LL;
    r.ema = true;
    r.depths = {};
    nlohmann::json j = to_json(r);
    REQUIRE(j.at("lr") == 8e-4);
    REQUIRE(j.at("seed") == 1234567890123LL);
    REQUIRE(j.at("scale") == nlohmann::json::array({0.2, 1.0}));
    recipe back = recipe_from_json(j, "roundtrip");
    REQUIRE(to_json(back) == j);
    // Text round trip too (what a checkpoint stores).
    recipe back2 = recipe_from_json(nlohmann::json::parse(j.dump()), "roundtrip-text");
    REQUIRE(to_json(back2) == j);
    REQUIRE(back2.seed == r.seed);
}

TEST_CASE("recipe: every file in examples/configs loads", "[io][recipe]")
{
    const fs::path dir = fs::path(CONVNEXTV2_TEST_DATA).parent_path().parent_path() / "examples" / "configs";
    REQUIRE(fs::is_directory(dir));
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() != ".json") continue;
        INFO(e.path().string());
        REQUIRE_NOTHROW(load_recipe(e.path().string()));
        ++n;
    }
    REQUIRE(n >= 3);

    recipe m = load_recipe((dir / "convnextv2_tiny_mindcv.json").string());
    REQUIRE(m.model == "convnextv2_tiny");
    REQUIRE(m.dataset == "imagefolder");
    REQUIRE_FALSE(m.filter_bias_and_bn);
    REQUIRE(m.weight_decay == 0.049);
    REQUIRE(m.aug_repeats == 3);
    REQUIRE(recipe_lr(m, 0) == Approx(2e-3 * 1.75e-5));
    REQUIRE(recipe_lr(m, 20) == Approx(2e-3));
    REQUIRE(recipe_lr(m, 450) == Approx(3e-7));

    recipe t = load_recipe((dir / "convnextv2_tiny_finetune.json").string());
    REQUIRE(t.lr == Approx(8e-4 * 1024 / 256));
    REQUIRE(t.batch_size * t.update_freq == 1024);
    REQUIRE(recipe_lr(t, 40) == Approx(3.2e-3));
    recipe a = load_recipe((dir / "convnextv2_atto_finetune.json").string());
    REQUIRE(a.weight_decay == 0.3);
    REQUIRE(a.label_smoothing == 0.2);
    REQUIRE(recipe_lr(a, 0) == Approx(8e-4));
}
