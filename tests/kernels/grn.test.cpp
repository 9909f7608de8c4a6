#include <convnextv2/kernels/grn.hpp>
#include <support/fixtures.hpp>

#include <array>

using namespace convnextv2;

namespace {
template <class T>
struct grn_out {
    tensor<T> y, dx, dgamma, dbeta;
};

template <class T>
grn_out<T> run_fast(const tensor<T>& x, const tensor<T>& gamma, const tensor<T>& beta, const tensor<T>& dy, index_t N, index_t S,
                    index_t D)
{
    grn_out<T> o{tensor<T>(x.shape()), tensor<T>(x.shape(), T(0.5)), tensor<T>({D}, T(0.25)), tensor<T>({D}, T(-0.5))};
    kernels::grn_stats st;
    kernels::grn_fwd(x.data(), N, S, D, gamma.data(), beta.data(), o.y.data(), st);
    kernels::grn_bwd(dy.data(), x.data(), N, S, D, gamma.data(), st, o.dx.data(), o.dgamma.data(), o.dbeta.data());
    return o;
}

template <class T>
grn_out<T> run_ref(const tensor<T>& x, const tensor<T>& gamma, const tensor<T>& beta, const tensor<T>& dy, index_t N, index_t S,
                   index_t D)
{
    grn_out<T> o{tensor<T>(x.shape()), tensor<T>(x.shape(), T(0.5)), tensor<T>({D}, T(0.25)), tensor<T>({D}, T(-0.5))};
    kernels::grn_fwd_ref(x.data(), N, S, D, gamma.data(), beta.data(), o.y.data());
    kernels::grn_bwd_ref(dy.data(), x.data(), N, S, D, gamma.data(), o.dx.data(), o.dgamma.data(), o.dbeta.data());
    return o;
}
} // namespace

TEST_CASE("grn kernels equal their _ref twins on odd shapes", "[kernels][grn]")
{
    // (N, S = H·W, D); {2, 67², 33} and {3, 49, 3072} span several site chunks; N >= 8 takes the
    // one-task-per-sample path (kernels::grn_per_group_min).
    for (auto [N, S, D] : {std::array<index_t, 3>{1, 1, 3}, {1, 1, 1}, {3, 1, 17}, {2, 9, 17}, {1, 25, 33}, {2, 67 * 67, 33},
                           {3, 7 * 7, 3072}, {8, 1, 5}, {9, 7, 17}, {10, 16 * 16, 40}}) {
        CAPTURE(N, S, D);
        auto x = test::random_tensor<float>({N, S, D}, 1);
        auto gamma = test::random_tensor<float>({D}, 2);
        auto beta = test::random_tensor<float>({D}, 3);
        auto dy = test::random_tensor<float>({N, S, D}, 4);
        auto f = run_fast(x, gamma, beta, dy, N, S, D);
        auto r = run_ref(x, gamma, beta, dy, N, S, D);
        REQUIRE(test::rel_l2(f.y, r.y) < 1e-6);
        REQUIRE(test::rel_l2(f.dx, r.dx) < 1e-5);
        REQUIRE(test::rel_l2(f.dgamma, r.dgamma) < 1e-5);
        REQUIRE(test::rel_l2(f.dbeta, r.dbeta) < 1e-5);
    }
}

TEST_CASE("grn: SPEC §1.4 worked example", "[kernels][grn]")
{
    const tensor<double> x = [] {
        tensor<double> t({1, 4, 3});
        const double v[12] = {1, 0, -2, 2, 1, 0, 0, -1, 2, -2, 0, 1};
        std::copy(v, v + 12, t.begin());
        return t;
    }();
    tensor<double> gamma({3}), beta({3}), g({1, 4, 3}, 1.0);
    gamma[0] = 0.5, gamma[1] = -1, gamma[2] = 2;
    beta[0] = 0.1, beta[1] = 0, beta[2] = -0.2;

    kernels::grn_stats st;
    tensor<double> y({1, 4, 3}), dx({1, 4, 3}, 0.0), dgamma({3}, 0.0), dbeta({3}, 0.0);
    kernels::grn_fwd(x.data(), 1, 4, 3, gamma.data(), beta.data(), y.data(), st);
    kernels::grn_bwd(g.data(), x.data(), 1, 4, 3, gamma.data(), st, dx.data(), dgamma.data(), dbeta.data());

    const double G[3] = {3, 1.4142136, 3}, Nx[3] = {1.2138842, 0.5722305, 1.2138842};
    for (int d = 0; d < 3; ++d) {
        CHECK(st.G[d] == Approx(G[d]).margin(1e-6));
        CHECK(st.nx[d] == Approx(Nx[d]).margin(1e-6));
    }
    CHECK(st.M[0] == Approx(2.4714045).margin(1e-6));
    const double Y[12] = {1.7069421, 0, -7.0555366, 3.3138842, 0.4277695, -0.2, 0.1, -0.4277695, 6.6555366, -3.1138842, 0, 3.2277683};
    const double DX[12] = {1.5379435, 0.4277695, 3.1611373, 1.4689450, 0.1383439, 3.4277683,
                           1.6069421, 0.7171952, 3.6943993, 1.7449392, 0.4277695, 3.5610838};
    for (int i = 0; i < 12; ++i) {
        CAPTURE(i);
        CHECK(y[i] == Approx(Y[i]).margin(1e-6));
        CHECK(dx[i] == Approx(DX[i]).margin(1e-6));
    }
    const double DG[3] = {1.2138842, 0, 1.2138842};
    for (int d = 0; d < 3; ++d) {
        CHECK(dgamma[d] == Approx(DG[d]).margin(1e-6));
        CHECK(dbeta[d] == Approx(4.0).margin(1e-12));
    }
    // The naive twin agrees on the same example.
    auto r = run_ref(x, gamma, beta, g, 1, 4, 3);
    for (int i = 0; i < 12; ++i) CHECK(r.dx[i] - 0.5 == Approx(DX[i]).margin(1e-6));
}

TEST_CASE("grn: an all-zero channel (G = 0) gives finite, correct gradients", "[kernels][grn]")
{
    const index_t N = 2, S = 4, D = 5;
    auto x = test::random_tensor<double>({N, S, D}, 1);
    for (index_t s = 0; s < S; ++s) x[(0 * S + s) * D + 2] = 0;  // sample 0, channel 2
    for (index_t n = 0; n < N; ++n)
        for (index_t s = 0; s < S; ++s) x[(n * S + s) * D + 4] = 0;  // channel 4 everywhere
    auto gamma = test::random_tensor<double>({D}, 2);
    auto beta = test::random_tensor<double>({D}, 3);
    auto dy = test::random_tensor<double>({N, S, D}, 4);
    auto f = run_fast(x, gamma, beta, dy, N, S, D);
    auto r = run_ref(x, gamma, beta, dy, N, S, D);
    for (index_t i = 0; i < f.dx.size(); ++i) REQUIRE(std::isfinite(f.dx[i]));
    REQUIRE(test::max_abs_diff(f.dx, r.dx) < 1e-12);
    REQUIRE(test::max_abs_diff(f.dgamma, r.dgamma) < 1e-12);
    // At a zero channel only the direct path remains: dx = dy·(1 + gamma·0) (+ the 0.5 prefill).
    for (index_t s = 0; s < S; ++s) REQUIRE(f.dx[s * D + 2] == Approx(dy[s * D + 2] + 0.5).margin(1e-14));

    // Everything zero: M = 0, Nx = 0, y = beta, dx = dy.
    tensor<double> z({1, 3, D}, 0.0);
    auto dz = test::random_tensor<double>({1, 3, D}, 5);
    auto fz = run_fast(z, gamma, beta, dz, 1, 3, D);
    for (index_t i = 0; i < z.size(); ++i) {
        REQUIRE(fz.y[i] == beta[i % D]);
        REQUIRE(fz.dx[i] == Approx(dz[i] + 0.5));
    }
}

TEST_CASE("grn: tiny (denormal-scale) float norms stay finite", "[kernels][grn]")
{
    const index_t N = 1, S = 4, D = 3;
    tensor<float> x({N, S, D}, 0.f);
    x[0] = 1e-40f;  // channel 0: G is a denormal, dG/G would overflow float
    x[1] = 1.f, x[4] = -2.f, x[5] = 0.5f;
    auto gamma = test::random_tensor<float>({D}, 2);
    auto beta = test::random_tensor<float>({D}, 3);
    auto dy = test::random_tensor<float>({N, S, D}, 4);
    auto f = run_fast(x, gamma, beta, dy, N, S, D);
    for (index_t i = 0; i < f.dx.size(); ++i) REQUIRE(std::isfinite(f.dx[i]));
}

TEST_CASE("grn: large-magnitude float activations match a double reference", "[kernels][grn]")
{
    const index_t N = 2, S = 56 * 56 / 4, D = 24;
    for (double scale : {1e4, 1e5, 1e6}) {
        for (double offset : {0.0, 1.0}) {
            CAPTURE(scale, offset);
            auto x = test::random_tensor<float>({N, S, D}, 7, (offset - 1) * scale, (offset + 1) * scale);
            auto gamma = test::random_tensor<float>({D}, 2);
            auto beta = test::random_tensor<float>({D}, 3);
            auto dy = test::random_tensor<float>({N, S, D}, 4);
            auto f = run_fast(x, gamma, beta, dy, N, S, D);
            auto r = run_ref(tensor_cast<double>(x), tensor_cast<double>(gamma), tensor_cast<double>(beta), tensor_cast<double>(dy), N,
                             S, D);
            REQUIRE(test::rel_l2(f.y, r.y) < 1e-6);
            REQUIRE(test::rel_l2(f.dx, r.dx) < 1e-5);
            REQUIRE(test::rel_l2(f.dgamma, r.dgamma) < 1e-5);
            REQUIRE(test::rel_l2(f.dbeta, r.dbeta) < 1e-6);
        }
    }
}

TEST_CASE("grn: backward is bit-identical for 1 and 2 threads", "[kernels][grn]")
{
    // N = 3: several site chunks per sample; N = 9: one task per sample.
    for (const index_t N : {index_t{3}, kernels::grn_per_group_min + 1}) {
        CAPTURE(N);
        const index_t S = 60 * 60, D = 40;
        auto x = test::random_tensor<float>({N, S, D}, 1);
        auto gamma = test::random_tensor<float>({D}, 2);
        auto beta = test::random_tensor<float>({D}, 3);
        auto dy = test::random_tensor<float>({N, S, D}, 4);
        REQUIRE(num_chunks(S, kernels::grn_site_chunk(S, D)) > 1);
        grn_out<float> o1, o2;
        tbb::task_arena a1(1), a2(2);
        a1.execute([&] { o1 = run_fast(x, gamma, beta, dy, N, S, D); });
        a2.execute([&] { o2 = run_fast(x, gamma, beta, dy, N, S, D); });
        REQUIRE(std::equal(o1.dgamma.begin(), o1.dgamma.end(), o2.dgamma.begin()));
        REQUIRE(std::equal(o1.dbeta.begin(), o1.dbeta.end(), o2.dbeta.begin()));
        REQUIRE(std::equal(o1.dx.begin(), o1.dx.end(), o2.dx.begin()));
        REQUIRE(std::equal(o1.y.begin(), o1.y.end(), o2.y.begin()));
    }
}
