// FCMAE against PyTorch (fixtures from tools/make_fcmae_golden.py: a float64 dense-masked
// emulation written from SPEC §3, stored as F32): loss within 1e-5 relative, encoder output and
// predictions within 1e-4 relative L2, every parameter gradient within 1e-3 relative L2 (as the
// classifier golden test). Then the export path: encoder weights in the official dense layout
// load into the classifier, and with nothing masked the sparse encoder equals its backbone.
#include <convnextv2/fcmae/fcmae.hpp>
#include <support/fixtures.hpp>
#include <support/golden.hpp>

using namespace convnextv2;

namespace {

fcmae_config config_of(const test::golden_fixture& fx)
{
    fcmae_config c;
    c.encoder = fx.config_without_classes();
    c.decoder_dim = std::stol(fx.file.metadata.at("decoder_dim"));
    c.decoder_depth = std::stoi(fx.file.metadata.at("decoder_depth"));
    c.mask_ratio = std::stod(fx.file.metadata.at("mask_ratio"));
    return c;
}

void run_fcmae_golden(const std::string& name)
{
    test::golden_fixture fx(name);
    const fcmae_config c = config_of(fx);
    fcmae_model<float, sparse_sites> m(c);
    test::fill_golden_params(m.params());
    const index_t side = std::stol(fx.file.metadata.at("side")), g = side / c.patch_size();
    tensor<float> maskf = fx.get("mask");
    const index_t N = maskf.dim(0);
    tensor<float> img;
    if (fx.file.tensors.count("input_nhwc")) {
        img = fx.get("input_nhwc");
    } else {  // compact fixture: formula_input() of the script
        img.resize({N, side, side, c.encoder.in_chans});
        for (index_t i = 0; i < img.size(); ++i) img[i] = static_cast<float>(1.3 * std::sin(0.37 * static_cast<double>(i) + 0.1));
    }
    fcmae_mask mask;
    mask.N = N;
    mask.g = g;
    for (index_t i = 0; i < maskf.size(); ++i) mask.masked.push_back(maskf[i] > 0.5f ? 1 : 0);

    const double loss = m.forward(img, mask);
    CHECK(loss == Approx(fx.get("loss")[0]).epsilon(1e-5));
    CHECK(test::rel_l2(m.encoder_output(), fx.get("encoder_out_nhwc")) < 1e-4);
    if (fx.file.tensors.count("pred_nhwc")) CHECK(test::rel_l2(m.prediction(), fx.get("pred_nhwc")) < 1e-4);
    m.zero_grad();
    m.backward();
    for (auto& p : m.params()) {
        CAPTURE(p.name);
        std::vector<float> gvals = test::torch_grad(p);
        tensor<float> ref = fx.get("grad." + p.name);
        tensor<float> ours(ref.shape());
        std::copy(gvals.begin(), gvals.end(), ours.begin());
        CHECK(test::rel_l2(ours, ref) < 1e-3);
    }
}

} // namespace

TEST_CASE("fcmae golden: loss and every gradient vs PyTorch, border row masked in the whole batch", "[fcmae][golden]")
{
    run_fcmae_golden("fcmae_golden_small.safetensors");
}

TEST_CASE("fcmae golden: 1-channel 2x2-stem variant (Fashion-MNIST shape)", "[fcmae][golden]")
{
    run_fcmae_golden("fcmae_golden_stem2.safetensors");
}

TEST_CASE("fcmae export: encoder weights load into the classifier; unmasked sparse encoder == dense backbone", "[fcmae][export]")
{
    test::temp_dir dir;
    fcmae_config c;
    c.encoder.depths = {1, 1, 2, 1};
    c.encoder.dims = {8, 16, 24, 32};
    c.encoder.in_chans = 3;
    c.decoder_dim = 16;
    c.mask_ratio = 0.0;
    fcmae_model<float> pre(c, 11);
    counter_rng rng(2, 2);
    for (auto& p : pre.params())
        for (auto& v : *p.value) v += static_cast<float>(rng.uniform(-0.1, 0.1));  // GRN/LN away from identity
    const std::string path = (dir.path / "encoder.safetensors").string();
    io::save_weights(pre.encoder_params(), path);

    // The export holds exactly the official dense encoder keys.
    auto file = io::read_safetensors(path);
    CHECK(file.tensors.count("downsample_layers.0.0.weight") == 1);
    CHECK(file.tensors.at("stages.2.1.dwconv.weight").shape == shape_t{24, 1, 7, 7});
    CHECK(file.tensors.at("stages.2.1.grn.gamma").shape == shape_t{1, 1, 1, 96});
    for (auto& [k, t] : file.tensors) {
        CAPTURE(k);
        CHECK(k.rfind("encoder.", 0) == std::string::npos);
        CHECK(k.find("decoder") == std::string::npos);
    }

    model_config mc = c.encoder;
    mc.num_classes = 5;
    convnextv2_model<float> cls(mc, 99);
    io::load_options lo;
    lo.allow_missing_head = true;
    auto rep = io::load_weights(cls.params(), path, lo);
    CHECK(rep.missing.size() == 4);  // norm.weight/bias, head.weight/bias
    CHECK(rep.unexpected.empty());

    tensor<float> img = test::random_tensor<float>({2, 64, 64, 3}, 4, -2, 2);
    auto mask = pre.make_mask(2, 64, 1, 1);  // ratio 0: every patch visible
    REQUIRE(mask.masked_total() == 0);
    tensor<float> enc, logits;
    pre.encoder().forward(img, mask, enc);
    cls.forward(img, logits);
    CHECK(test::rel_l2(enc, cls.stage_output(3)) < 1e-5);

    // The raw official layout (encoder.* with the decoder alongside) loads into the classifier too.
    const std::string full = (dir.path / "fcmae_full.safetensors").string();
    io::save_weights(pre.params(), full);
    convnextv2_model<float> cls2(mc, 5);
    auto rep2 = io::load_weights(cls2.params(), full, lo);
    CHECK(rep2.unexpected.empty());
    CHECK(rep2.skipped.size() == 2 + 1 + 10 + 2);  // proj, mask_token, decoder.0.*, pred dropped like the official script
    cls2.forward(img, logits);
    CHECK(test::rel_l2(cls2.stage_output(3), cls.stage_output(3)) == 0.0);
}
