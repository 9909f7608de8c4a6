// The sparse encoder (SPEC §3.4): finite-difference checks of every sparse layer in double, and
// sparse == dense-masked emulation for the whole FCMAE model (loss, encoder output and every
// parameter gradient), including batch 1 and masks whose border rows are entirely masked.
#include <convnextv2/fcmae/fcmae.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

namespace {

fcmae_mask mask_from_rows(index_t g, const std::vector<std::vector<int>>& visible)
{
    fcmae_mask m;
    m.N = static_cast<index_t>(visible.size());
    m.g = g;
    m.masked.assign(static_cast<std::size_t>(m.N * g * g), 1);
    for (index_t n = 0; n < m.N; ++n)
        for (int l : visible[static_cast<std::size_t>(n)]) m.masked[static_cast<std::size_t>(n * g * g + l)] = 0;
    return m;
}

template <class L>
void check_sparse_layer(L& layer, const active_sites& s, index_t C, double param_scale = 0.5)
{
    layer.bind_sites(&s);
    layer.setup({s.rows(), C});
    testing::gradcheck_options o;
    o.param_scale = param_scale;
    o.max_checks_per_tensor = 48;
    tensor<double> x = test::random_tensor<double>({s.rows(), C}, 21);
    auto r = testing::check_gradients(layer, x, o);
    INFO(r.report());
    CHECK(r.ok);
}

fcmae_config tiny_config(index_t in_chans, index_t stem, std::vector<int> depths, std::vector<index_t> dims)
{
    fcmae_config c;
    c.encoder.depths = std::move(depths);
    c.encoder.dims = std::move(dims);
    c.encoder.in_chans = in_chans;
    c.encoder.stem_kernel = stem;
    c.decoder_dim = 16;
    return c;
}

// Same weights in both models (both initialised from one seed; names and order agree).
template <class T>
void compare_sparse_masked(const fcmae_config& c, const tensor<T>& img, const fcmae_mask& mask, double tol)
{
    fcmae_model<T, sparse_sites> sp(c, 7);
    fcmae_model<T, masked_sites> de(c, 7);
    // Non-zero GRN parameters and mask token, so those paths matter.
    for (auto* m : {&sp.params(), &de.params()})
        for (auto& p : *m)
            if (p.name.find("grn.") != std::string::npos)
                for (index_t i = 0; i < p.value->size(); ++i) (*p.value)[i] = static_cast<T>(0.3 * std::sin(0.7 * i + 1));
    const double ls = sp.forward(img, mask), ld = de.forward(img, mask);
    CHECK(ls == Approx(ld).epsilon(tol));
    CHECK(test::rel_l2(sp.encoder_output(), de.encoder_output()) < tol);
    // Masked cells of the encoder output are exactly zero (never garbage).
    const index_t C3 = c.encoder.dims[3];
    for (index_t l = 0; l < mask.N * mask.g * mask.g; ++l)
        if (mask.masked[static_cast<std::size_t>(l)])
            for (index_t k = 0; k < C3; ++k) REQUIRE(sp.encoder_output()[l * C3 + k] == 0);
    sp.zero_grad();
    de.zero_grad();
    sp.backward();
    de.backward();
    REQUIRE(sp.params().size() == de.params().size());
    for (std::size_t i = 0; i < sp.params().size(); ++i) {
        CAPTURE(sp.params()[i].name);
        REQUIRE(sp.params()[i].name == de.params()[i].name);
        CHECK(test::rel_l2(*sp.params()[i].grad, *de.params()[i].grad) < tol);
    }
}

} // namespace

TEST_CASE("sparse layers: finite differences in double", "[fcmae][sparse][gradcheck]")
{
    auto m = random_fcmae_mask(2, 3, 0.5, 1, 1);
    active_sites s = visible_sites(m, 4);  // 12x12 grid, patches of 4x4 sites
    REQUIRE(s.rows() > 0);
    SECTION("depthwise 7x7, submanifold")
    {
        depthwise_conv7x7<double, sparse_sites> l;
        check_sparse_layer(l, s, 5);
    }
    SECTION("GRN per sample")
    {
        grn<double, sparse_sites> l;
        check_sparse_layer(l, s, 6);
    }
    SECTION("GRN batch-global (official MinkowskiGRN)")
    {
        grn<double, sparse_sites> l;
        l.scope = grn_scope::batch;
        check_sparse_layer(l, s, 6);
    }
    SECTION("drop path, per sample")
    {
        drop_path<double, sparse_sites> l(0.5);
        l.set_training(true);
        l.set_step(3);
        check_sparse_layer(l, s, 4);
    }
    SECTION("2x2 downsample conv")
    {
        active_sites d = downsample_sites(s, 2);
        patch_conv<double, sparse_sites> l(7, 2);
        l.bind_sites(&d);
        l.setup({s.rows(), 3});
        tensor<double> x = test::random_tensor<double>({s.rows(), 3}, 2);
        auto r = testing::check_gradients(l, x);
        INFO(r.report());
        CHECK(r.ok);
    }
}

TEST_CASE("sparse layers: equal the dense layer on the zero-filled map, at active sites", "[fcmae][sparse]")
{
    auto m = random_fcmae_mask(2, 3, 0.6, 4, 2);
    active_sites s = visible_sites(m, 4);
    const index_t C = 6, HW = 12 * 12;
    tensor<double> rows = test::random_tensor<double>({s.rows(), C}, 8);
    tensor<double> dense({2, 12, 12, C}, 0.0);
    scatter_add_sites(rows.data(), s, C, dense.data());
    depthwise_conv7x7<double> dd;
    depthwise_conv7x7<double, sparse_sites> ds;
    grn<double> gd;
    grn<double, sparse_sites> gs;
    dd.setup(dense.shape());
    ds.setup(rows.shape());
    gd.setup(dense.shape());
    gs.setup(rows.shape());
    ds.bind_sites(&s);
    gs.bind_sites(&s);
    for (index_t i = 0; i < dd.weight.size(); ++i) dd.weight[i] = ds.weight[i] = std::cos(0.3 * i);
    for (index_t i = 0; i < C; ++i) {
        dd.bias[i] = ds.bias[i] = 0.1 * i;
        gd.gamma[i] = gs.gamma[i] = 0.2 * i - 0.4;
        gd.beta[i] = gs.beta[i] = 0.05 * i;
    }
    tensor<double> yd, ys, yd_rows({s.rows(), C});
    dd.forward(dense, yd);
    ds.forward(rows, ys);
    gather_sites(yd.data(), s, C, yd_rows.data());
    CHECK(test::max_abs_diff(ys, yd_rows) < 1e-12);
    gd.forward(dense, yd);  // zeros do not change the per-sample L2 norms
    gs.forward(rows, ys);
    gather_sites(yd.data(), s, C, yd_rows.data());
    CHECK(test::max_abs_diff(ys, yd_rows) < 1e-12);
    (void)HW;
}

TEST_CASE("sparse encoder == dense-masked emulation: loss, output, every gradient", "[fcmae][sparse]")
{
    const auto c = tiny_config(3, 4, {1, 1, 2, 1}, {8, 16, 24, 32});
    SECTION("random masks, batch 2")
    {
        tensor<float> img = test::random_tensor<float>({2, 128, 128, 3}, 5, -2, 2);
        compare_sparse_masked(c, img, random_fcmae_mask(2, 4, 0.6, 3, 1), 1e-5);
    }
    SECTION("batch 1")
    {
        tensor<float> img = test::random_tensor<float>({1, 128, 128, 3}, 6, -2, 2);
        compare_sparse_masked(c, img, random_fcmae_mask(1, 4, 0.6, 3, 2), 1e-5);
    }
    SECTION("the last row and the first column masked in every sample (MinkowskiEngine densify pitfall)")
    {
        tensor<float> img = test::random_tensor<float>({2, 128, 128, 3}, 7, -2, 2);
        auto mask = mask_from_rows(4, {{1, 2, 3, 5, 6, 10}, {1, 3, 5, 6, 9, 11}});
        compare_sparse_masked(c, img, mask, 1e-5);
    }
    SECTION("1-channel 2x2 stem (Fashion-MNIST shape), in double")
    {
        const auto c2 = tiny_config(1, 2, {1, 1, 1, 1}, {8, 16, 16, 24});
        tensor<double> img = test::random_tensor<double>({2, 64, 64, 1}, 8, -2, 2);
        compare_sparse_masked(c2, img, random_fcmae_mask(2, 4, 0.6, 3, 3), 1e-11);
    }
}

TEST_CASE("fcmae model: whole-model gradient by finite differences in double", "[fcmae][gradcheck]")
{
    auto c = tiny_config(1, 2, {1, 1, 1, 1}, {4, 8, 8, 8});
    c.decoder_dim = 8;
    fcmae_model<double, sparse_sites> m(c, 3);
    counter_rng rng(4, 4);
    for (auto& p : m.params())
        for (auto& v : *p.value) v += rng.uniform(-0.2, 0.2);  // GRN, LN, biases away from their init values
    tensor<double> img = test::random_tensor<double>({2, 64, 64, 1}, 9, -1, 1);
    auto mask = random_fcmae_mask(2, 4, 0.6, 1, 5);
    m.zero_grad();
    m.forward(img, mask);
    m.backward();
    double worst = 0;
    std::string where;
    for (auto& p : m.params()) {
        const index_t n = p.value->size(), step = std::max<index_t>(1, n / 6);
        for (index_t i = 0; i < n; i += step) {
            const double saved = (*p.value)[i], eps = 1e-6;
            (*p.value)[i] = saved + eps;
            const double lp = m.forward(img, mask);
            (*p.value)[i] = saved - eps;
            const double lm = m.forward(img, mask);
            (*p.value)[i] = saved;
            const double num = (lp - lm) / (2 * eps), ana = (*p.grad)[i];
            const double err = std::fabs(num - ana) / (1e-7 + 1e-5 * std::max(std::fabs(num), std::fabs(ana)));
            if (err > worst) { worst = err; where = p.name + "[" + std::to_string(i) + "]"; }
        }
    }
    INFO("worst ratio " << worst << " at " << where);
    CHECK(worst <= 1.0);
}

TEST_CASE("sparse GRN scope: batch-global couples samples, per-sample does not", "[fcmae][sparse]")
{
    auto m = random_fcmae_mask(2, 3, 0.5, 2, 2);
    active_sites s = visible_sites(m, 2);
    const index_t C = 4;
    tensor<double> x = test::random_tensor<double>({s.rows(), C}, 3);
    grn<double, sparse_sites> a, b;
    a.setup(x.shape());
    b.setup(x.shape());
    b.scope = grn_scope::batch;
    a.bind_sites(&s);
    b.bind_sites(&s);
    for (index_t i = 0; i < C; ++i) a.gamma[i] = b.gamma[i] = 0.5 + 0.1 * i;
    tensor<double> ya, yb;
    a.forward(x, ya);
    b.forward(x, yb);
    CHECK(test::max_abs_diff(ya, yb) > 1e-3);
    // Per sample: changing sample 1 leaves sample 0's output alone.
    tensor<double> x2 = x;
    for (index_t r = s.offsets[1]; r < s.rows(); ++r) x2[r * C] += 3.0;
    tensor<double> ya2, yb2;
    a.forward(x2, ya2);
    b.forward(x2, yb2);
    const index_t n0 = s.offsets[1] * C;
    CHECK(test::max_abs_diff(ya.data(), ya2.data(), n0) == 0.0);
    CHECK(test::max_abs_diff(yb.data(), yb2.data(), n0) > 1e-6);
}
