#include <convnextv2/kernels/gelu.hpp>
#include <support/fixtures.hpp>

#include <limits>

using namespace convnextv2;

TEST_CASE("gelu kernels equal their _ref twins", "[kernels][gelu]")
{
    for (index_t n : {index_t{1}, index_t{17}, index_t{100003}}) {
        CAPTURE(n);
        auto x = test::random_tensor<float>({n}, 1, -8, 8);
        auto dy = test::random_tensor<float>({n}, 2);
        tensor<float> y({n}), yr({n}), dx({n}, 0.5f), dxr({n}, 0.5f);
        kernels::gelu_fwd(x.data(), n, y.data());
        kernels::gelu_fwd_ref(x.data(), n, yr.data());
        kernels::gelu_bwd(x.data(), dy.data(), n, dx.data());
        kernels::gelu_bwd_ref(x.data(), dy.data(), n, dxr.data());
        // accumulate = false overwrites a buffer of NaNs
        tensor<float> dxo({n}, std::numeric_limits<float>::quiet_NaN()), dxz({n}, 0.f);
        kernels::gelu_bwd(x.data(), dy.data(), n, dxo.data(), false);
        kernels::gelu_bwd_ref(x.data(), dy.data(), n, dxz.data());
        for (index_t i = 0; i < n; ++i) {
            REQUIRE(std::fabs(y[i] - yr[i]) <= 1e-6 * std::fabs(yr[i]) + 1e-6);  // absolute bound in the far negative tail
            REQUIRE(std::fabs(dx[i] - dxr[i]) <= 1e-6 * std::fabs(dxr[i]) + 1e-6);
            REQUIRE(std::fabs(dxo[i] - dxz[i]) <= 1e-6 * std::fabs(dxz[i]) + 1e-6);
        }
    }
}

TEST_CASE("gelu: SPEC §1.3 reference values (exact erf form)", "[kernels][gelu]")
{
    const double xs[7] = {-3, -1, -0.5, 0.5, 1, 2, 3};
    const double expect[7] = {-0.00404969, -0.15865525, -0.15426877, 0.34573123, 0.84134475, 1.95449974, 2.99595031};
    double y[7];
    float yf[7], xf[7];
    for (int i = 0; i < 7; ++i) xf[i] = static_cast<float>(xs[i]);
    kernels::gelu_fwd(xs, 7, y);
    kernels::gelu_fwd(xf, 7, yf);
    for (int i = 0; i < 7; ++i) {
        CAPTURE(xs[i]);
        CHECK(y[i] == Approx(expect[i]).margin(1e-8));
        CHECK(yf[i] == Approx(expect[i]).margin(1e-6));
    }
}

TEST_CASE("gelu: float stays accurate in absolute terms in the negative tail", "[kernels][gelu]")
{
    // The vectorised float path computes 1 + erf(x/√2), which cancels for very negative x: the
    // documented bound is an absolute error below 1e-6 (gelu itself is at most ~0.17 there).
    for (double x : {-3.5, -4.0, -5.0, -6.0, -9.0}) {
        CAPTURE(x);
        float xf = static_cast<float>(x), yf;
        double xd = xf, yd;
        kernels::gelu_fwd(&xf, 1, &yf);
        kernels::gelu_fwd_ref(&xd, 1, &yd);
        REQUIRE(yd <= 0);
        REQUIRE(yf <= 0);
        REQUIRE(std::fabs(yf - yd) <= 1e-6);
    }
}

TEST_CASE("gelu: derivative matches finite differences in double", "[kernels][gelu]")
{
    for (double x : {-5.0, -1.3, -0.2, 0.0, 0.7, 2.5}) {
        CAPTURE(x);
        const double h = 1e-6;
        double xp = x + h, xm = x - h, yp, ym, dx = 0, one = 1;
        kernels::gelu_fwd(&xp, 1, &yp);
        kernels::gelu_fwd(&xm, 1, &ym);
        kernels::gelu_bwd(&x, &one, 1, &dx);
        REQUIRE(dx == Approx((yp - ym) / (2 * h)).margin(1e-8));
    }
}
