// GRN and LayerNorm statistics at large float magnitudes (1e4 ... 1e30, where float squares
// overflow from ~1.8e19 on) against a double reference: the kernels accumulate in double, so
// their outputs stay finite and accurate wherever the result itself is representable.
#include <convnextv2/kernels/grn.hpp>
#include <convnextv2/kernels/layer_norm.hpp>
#include <support/fixtures.hpp>

#include <cfloat>
#include <cmath>

using namespace convnextv2;

namespace {

// Relative error of a against the double reference, elementwise, scaled by max |ref|.
double rel_max_err(const std::vector<float>& a, const std::vector<double>& ref)
{
    double m = 0, scale = 0;
    for (double r : ref) scale = std::max(scale, std::fabs(r));
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = std::fabs(static_cast<double>(a[i]) - ref[i]);
        if (!(d <= m)) m = d;  // NaN propagates
    }
    return m / std::max(scale, 1e-300);
}

} // namespace

TEST_CASE("LayerNorm at magnitudes 1e4..1e30 matches a double reference", "[numerics]")
{
    const index_t M = 37, C = 96;
    for (double mag : {1e4, 1e6, 1e12, 1e18, 1e20, 1e30}) {
        CAPTURE(mag);
        auto u = test::random_tensor<float>({M, C}, 11);
        std::vector<float> x(static_cast<std::size_t>(M * C)), w(C), b(C), y(x.size());
        for (index_t i = 0; i < M * C; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(mag * (1.0 + 0.5 * u[i]));  // offset + spread
        for (index_t c = 0; c < C; ++c) { w[static_cast<std::size_t>(c)] = 1.0f + 0.01f * c; b[static_cast<std::size_t>(c)] = 0.1f; }
        std::vector<double> mean(M), rstd(M);
        kernels::layer_norm_fwd(x.data(), M, C, w.data(), b.data(), 1e-6, y.data(), mean.data(), rstd.data());
        // Reference: the same formula on the float inputs, in double.
        std::vector<double> ref(x.size());
        for (index_t m = 0; m < M; ++m) {
            double mu = 0, var = 0;
            for (index_t c = 0; c < C; ++c) mu += x[static_cast<std::size_t>(m * C + c)];
            mu /= C;
            for (index_t c = 0; c < C; ++c) var += std::pow(x[static_cast<std::size_t>(m * C + c)] - mu, 2);
            var /= C;
            for (index_t c = 0; c < C; ++c)
                ref[static_cast<std::size_t>(m * C + c)] = (x[static_cast<std::size_t>(m * C + c)] - mu) / std::sqrt(var + 1e-6) * w[static_cast<std::size_t>(c)] + b[static_cast<std::size_t>(c)];
        }
        for (float v : y) REQUIRE(std::isfinite(v));
        CHECK(rel_max_err(y, ref) < 1e-6);
        // Statistics themselves: a float accumulator would overflow in Σx² for mag >= 1e18.
        for (index_t m = 0; m < M; ++m) REQUIRE(std::isfinite(rstd[static_cast<std::size_t>(m)]));
    }
}

TEST_CASE("LayerNorm backward stays finite and matches the reference at large magnitudes", "[numerics]")
{
    const index_t M = 5, C = 24;
    for (double mag : {1e6, 1e18, 1e30}) {
        CAPTURE(mag);
        auto u = test::random_tensor<float>({M, C}, 12), g = test::random_tensor<float>({M, C}, 13);
        std::vector<float> x(static_cast<std::size_t>(M * C)), w(C, 1.5f), b(C, 0.f), y(x.size());
        for (index_t i = 0; i < M * C; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(mag * u[i]);
        std::vector<double> mean(M), rstd(M);
        kernels::layer_norm_fwd(x.data(), M, C, w.data(), b.data(), 1e-6, y.data(), mean.data(), rstd.data());
        std::vector<float> dx(x.size(), 0.f), dw(C, 0.f), db(C, 0.f), dx_ref(x.size(), 0.f), dw_ref(C, 0.f), db_ref(C, 0.f);
        kernels::layer_norm_bwd(g.data(), x.data(), M, C, w.data(), mean.data(), rstd.data(), dx.data(), dw.data(), db.data());
        kernels::layer_norm_bwd_ref(g.data(), x.data(), M, C, w.data(), 1e-6, dx_ref.data(), dw_ref.data(), db_ref.data());
        for (std::size_t i = 0; i < dx.size(); ++i) REQUIRE(std::isfinite(dx[i]));
        CHECK(rel_max_err(dx, std::vector<double>(dx_ref.begin(), dx_ref.end())) < 1e-4);
        CHECK(rel_max_err(dw, std::vector<double>(dw_ref.begin(), dw_ref.end())) < 1e-5);
    }
}

TEST_CASE("GRN at magnitudes 1e4..1e30 (float squares overflow) matches a double reference", "[numerics]")
{
    const index_t N = 2, S = 49, D = 40;
    for (double mag : {1e4, 1e6, 1e12, 1e18, 1e20, 1e30}) {
        CAPTURE(mag);
        auto u = test::random_tensor<float>({N, S, D}, 21);
        auto gam = test::random_tensor<float>({D}, 22, -0.5, 0.5), bet = test::random_tensor<float>({D}, 23, -1, 1);
        std::vector<float> x(static_cast<std::size_t>(N * S * D)), y(x.size());
        for (index_t i = 0; i < N * S * D; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(mag * u[i]);
        kernels::grn_stats st;
        kernels::grn_fwd(x.data(), N, S, D, gam.data(), bet.data(), y.data(), st);
        std::vector<double> ref(x.size());
        for (index_t n = 0; n < N; ++n) {
            std::vector<double> G(static_cast<std::size_t>(D));
            double M = 0;
            for (index_t d = 0; d < D; ++d) {
                double ss = 0;
                for (index_t s = 0; s < S; ++s) ss += std::pow(static_cast<double>(x[static_cast<std::size_t>((n * S + s) * D + d)]), 2);
                G[static_cast<std::size_t>(d)] = std::sqrt(ss);
                M += G[static_cast<std::size_t>(d)] / D;
            }
            for (index_t s = 0; s < S; ++s)
                for (index_t d = 0; d < D; ++d) {
                    const double xv = x[static_cast<std::size_t>((n * S + s) * D + d)];
                    ref[static_cast<std::size_t>((n * S + s) * D + d)] = gam[d] * (xv * G[static_cast<std::size_t>(d)] / (M + 1e-6)) + bet[d] + xv;
                }
        }
        for (float v : y) REQUIRE(std::isfinite(v));
        for (double g : st.G) REQUIRE(std::isfinite(g));
        CHECK(rel_max_err(y, ref) < 1e-6);
    }
}

TEST_CASE("GRN backward at large magnitudes: finite, and equal to the float64 instantiation", "[numerics]")
{
    const index_t N = 1, S = 16, D = 12;
    for (double mag : {1e6, 1e18, 1e30}) {
        CAPTURE(mag);
        auto u = test::random_tensor<float>({N, S, D}, 31), g = test::random_tensor<float>({N, S, D}, 32);
        auto gam = test::random_tensor<float>({D}, 33, -0.5, 0.5), bet = test::random_tensor<float>({D}, 34);
        std::vector<float> x(static_cast<std::size_t>(N * S * D)), y(x.size()), dx(x.size(), 0.f), dg(D, 0.f), db(D, 0.f);
        for (index_t i = 0; i < N * S * D; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(mag * u[i]);
        kernels::grn_stats st;
        kernels::grn_fwd(x.data(), N, S, D, gam.data(), bet.data(), y.data(), st);
        kernels::grn_bwd(g.data(), x.data(), N, S, D, gam.data(), st, dx.data(), dg.data(), db.data());
        // The same in double precision throughout (inputs are the float values).
        std::vector<double> xd(x.begin(), x.end()), yd(x.size()), gd(g.begin(), g.end()), gamd(gam.begin(), gam.end()),
            betd(bet.begin(), bet.end()), dxd(x.size(), 0.0), dgd(D, 0.0), dbd(D, 0.0);
        kernels::grn_stats std_;
        kernels::grn_fwd(xd.data(), N, S, D, gamd.data(), betd.data(), yd.data(), std_);
        kernels::grn_bwd(gd.data(), xd.data(), N, S, D, gamd.data(), std_, dxd.data(), dgd.data(), dbd.data());
        for (float v : dx) REQUIRE(std::isfinite(v));
        for (float v : dg) REQUIRE(std::isfinite(v));
        CHECK(rel_max_err(dx, dxd) < 1e-5);
        CHECK(rel_max_err(dg, dgd) < 1e-5);
        CHECK(rel_max_err(db, dbd) < 1e-6);
    }
}
