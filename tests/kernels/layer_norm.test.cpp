#include <convnextv2/kernels/layer_norm.hpp>
#include <support/fixtures.hpp>

#include <array>
#include <limits>

using namespace convnextv2;

namespace {
struct ln_out {
    tensor<float> y, dx, dw, db;
};

ln_out run_fast(const tensor<float>& x, const tensor<float>& w, const tensor<float>& b, const tensor<float>& dy, index_t M,
                index_t C)
{
    ln_out o{tensor<float>(x.shape()), tensor<float>(x.shape(), 0.5f), tensor<float>({C}, 0.25f), tensor<float>({C}, -0.5f)};
    std::vector<double> mean(static_cast<std::size_t>(M)), rstd(static_cast<std::size_t>(M));
    kernels::layer_norm_fwd(x.data(), M, C, w.data(), b.data(), 1e-6, o.y.data(), mean.data(), rstd.data());
    kernels::layer_norm_bwd(dy.data(), x.data(), M, C, w.data(), mean.data(), rstd.data(), o.dx.data(), o.dw.data(), o.db.data());
    return o;
}
} // namespace

TEST_CASE("layer_norm kernels equal their _ref twins on odd shapes", "[kernels][layer_norm]")
{
    for (auto [M, C] : {std::array<index_t, 2>{1, 3}, {1, 1}, {7, 17}, {1000, 33}, {5000, 3}, {700, 32}, {300, 48}, {65, 256}}) {
        CAPTURE(M, C);
        auto x = test::random_tensor<float>({M, C}, 1, -2, 3);
        auto w = test::random_tensor<float>({C}, 2);
        auto b = test::random_tensor<float>({C}, 3);
        auto dy = test::random_tensor<float>({M, C}, 4);
        ln_out o = run_fast(x, w, b, dy, M, C);

        tensor<float> yr({M, C}), dxr({M, C}, 0.5f), dwr({C}, 0.25f), dbr({C}, -0.5f);
        kernels::layer_norm_fwd_ref(x.data(), M, C, w.data(), b.data(), 1e-6, yr.data());
        kernels::layer_norm_bwd_ref(dy.data(), x.data(), M, C, w.data(), 1e-6, dxr.data(), dwr.data(), dbr.data());
        REQUIRE(test::max_abs_diff(o.y, yr) < 1e-5);
        REQUIRE(test::max_abs_diff(o.dx, dxr) < 1e-4);
        REQUIRE(test::rel_l2(o.dw, dwr) < 1e-5);
        REQUIRE(test::rel_l2(o.db, dbr) < 1e-5);

        // accumulate = false overwrites a buffer of NaNs (parameter gradients still add)
        std::vector<double> mean(static_cast<std::size_t>(M)), rstd(static_cast<std::size_t>(M));
        tensor<float> y2({M, C}), dxo({M, C}, std::numeric_limits<float>::quiet_NaN()), dxz({M, C}, 0.f);
        tensor<float> dwo({C}, 0.25f), dbo({C}, -0.5f);
        kernels::layer_norm_fwd(x.data(), M, C, w.data(), b.data(), 1e-6, y2.data(), mean.data(), rstd.data());
        kernels::layer_norm_bwd(dy.data(), x.data(), M, C, w.data(), mean.data(), rstd.data(), dxo.data(), dwo.data(), dbo.data(), false);
        kernels::layer_norm_bwd_ref(dy.data(), x.data(), M, C, w.data(), 1e-6, dxz.data(), static_cast<float*>(nullptr),
                                    static_cast<float*>(nullptr));
        REQUIRE(test::max_abs_diff(dxo, dxz) < 1e-4);
        REQUIRE(test::max_abs_diff(dwo, o.dw) == 0.0);
        REQUIRE(test::max_abs_diff(dbo, o.db) == 0.0);
    }
}

TEST_CASE("layer_norm: SPEC §1.2 worked example", "[kernels][layer_norm]")
{
    const double x[4] = {1, 2, 3, 6}, w[4] = {1, 2, 0.5, 1}, b[4] = {0, 0.1, 0, -1};
    const double expect[4] = {-1.0690448, -0.9690448, 0.0, 0.6035672};
    double y[4], mean, rstd;
    kernels::layer_norm_fwd(x, 1, 4, w, b, 1e-6, y, &mean, &rstd);
    CHECK(mean == Approx(3.0));
    CHECK(1.0 / (rstd * rstd) - 1e-6 == Approx(3.5));
    for (int i = 0; i < 4; ++i) CHECK(y[i] == Approx(expect[i]).margin(1e-7));
}

TEST_CASE("layer_norm: large-magnitude float inputs match a double reference", "[kernels][layer_norm]")
{
    const index_t M = 300, C = 33;
    for (double offset : {1e4, 1e5, 1e6}) {
        for (double scale : {1.0, 1e3}) {
            CAPTURE(offset, scale);
            auto x = test::random_tensor<float>({M, C}, 9, offset - scale, offset + scale);
            auto w = test::random_tensor<float>({C}, 2);
            auto b = test::random_tensor<float>({C}, 3);
            auto dy = test::random_tensor<float>({M, C}, 4);
            ln_out o = run_fast(x, w, b, dy, M, C);
            // Reference on exactly the same (float-rounded) inputs, in double.
            auto xd = tensor_cast<double>(x), wd = tensor_cast<double>(w), bd = tensor_cast<double>(b), dyd = tensor_cast<double>(dy);
            tensor<double> yr({M, C}), dxr({M, C}, 0.5), dwr({C}, 0.25), dbr({C}, -0.5);
            kernels::layer_norm_fwd_ref(xd.data(), M, C, wd.data(), bd.data(), 1e-6, yr.data());
            kernels::layer_norm_bwd_ref(dyd.data(), xd.data(), M, C, wd.data(), 1e-6, dxr.data(), dwr.data(), dbr.data());
            REQUIRE(test::rel_l2(o.y, yr) < 1e-6);
            REQUIRE(test::rel_l2(o.dx, dxr) < 1e-5);
            REQUIRE(test::rel_l2(o.dw, dwr) < 1e-6);
        }
    }
}

TEST_CASE("layer_norm: backward is bit-identical for 1 and 2 threads", "[kernels][layer_norm]")
{
    const index_t M = 20000, C = 17;
    auto x = test::random_tensor<float>({M, C}, 1);
    auto w = test::random_tensor<float>({C}, 2);
    auto b = test::random_tensor<float>({C}, 3);
    auto dy = test::random_tensor<float>({M, C}, 4);
    ln_out o1, o2;
    tbb::task_arena a1(1), a2(2);
    a1.execute([&] { o1 = run_fast(x, w, b, dy, M, C); });
    a2.execute([&] { o2 = run_fast(x, w, b, dy, M, C); });
    REQUIRE(std::equal(o1.dw.begin(), o1.dw.end(), o2.dw.begin()));
    REQUIRE(std::equal(o1.db.begin(), o1.db.end(), o2.db.begin()));
    REQUIRE(std::equal(o1.dx.begin(), o1.dx.end(), o2.dx.begin()));
    REQUIRE(std::equal(o1.y.begin(), o1.y.end(), o2.y.begin()));
}
