#include <convnextv2/kernels/cross_entropy.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("cross_entropy: uniform logits give log K", "[kernels][cross_entropy]")
{
    const index_t N = 5, K = 10;
    tensor<float> z({N, K}, 3.f), t({N, K}), dz({N, K});
    std::vector<int> labels{0, 3, 9, 2, 2};
    kernels::smooth_targets(labels.data(), N, K, 0.0, t.data());
    const double loss = kernels::softmax_cross_entropy(z.data(), N, K, t.data(), dz.data());
    REQUIRE(loss == Approx(std::log(10.0)).epsilon(1e-7));
    for (index_t n = 0; n < N; ++n)
        for (index_t k = 0; k < K; ++k)
            REQUIRE(dz[n * K + k] == Approx(((k == labels[n] ? -0.9 : 0.1)) / N).margin(1e-7));
    REQUIRE(kernels::softmax_cross_entropy<float>(z.data(), N, K, t.data(), nullptr) == loss);
}

TEST_CASE("cross_entropy: smoothed targets", "[kernels][cross_entropy]")
{
    const index_t K = 4;
    std::vector<int> labels{1, 3};
    tensor<double> t({2, K});
    kernels::smooth_targets(labels.data(), 2, K, 0.2, t.data());
    for (index_t n = 0; n < 2; ++n) {
        double s = 0;
        for (index_t k = 0; k < K; ++k) {
            s += t[n * K + k];
            REQUIRE(t[n * K + k] == Approx(k == labels[n] ? 0.85 : 0.05));
        }
        REQUIRE(s == Approx(1.0));
    }
}

TEST_CASE("cross_entropy: equals its _ref twin, stable for huge logits", "[kernels][cross_entropy]")
{
    const index_t N = 37, K = 33;
    auto z = test::random_tensor<float>({N, K}, 1, -20, 20);
    auto t = test::random_tensor<float>({N, K}, 2, 0, 1);
    for (index_t n = 0; n < N; ++n) {  // mixup-like soft rows summing to 1
        double s = 0;
        for (index_t k = 0; k < K; ++k) s += t[n * K + k];
        for (index_t k = 0; k < K; ++k) t[n * K + k] = static_cast<float>(t[n * K + k] / s);
    }
    tensor<float> dz({N, K}), dzr({N, K});
    const double l = kernels::softmax_cross_entropy(z.data(), N, K, t.data(), dz.data());
    const double lr = kernels::softmax_cross_entropy_ref(z.data(), N, K, t.data(), dzr.data());
    REQUIRE(l == Approx(lr).epsilon(1e-12));
    REQUIRE(test::max_abs_diff(dz, dzr) < 1e-8);

    // Shifting by 1e4 changes nothing (log-sum-exp with the max subtracted); no inf/NaN.
    tensor<double> zd = tensor_cast<double>(z), td = tensor_cast<double>(t), dzd({N, K});
    const double base = kernels::softmax_cross_entropy(zd.data(), N, K, td.data(), dzd.data());
    for (auto& v : zd) v += 1e4;
    tensor<double> dzs({N, K});
    REQUIRE(kernels::softmax_cross_entropy(zd.data(), N, K, td.data(), dzs.data()) == Approx(base).epsilon(1e-10));
    REQUIRE(test::max_abs_diff(dzd, dzs) < 1e-12);
    zd[0] = 1e300;  // one extreme logit
    const double extreme = kernels::softmax_cross_entropy(zd.data(), N, K, td.data(), dzs.data());
    REQUIRE(std::isfinite(extreme));
}

TEST_CASE("cross_entropy: gradient matches finite differences", "[kernels][cross_entropy]")
{
    const index_t N = 3, K = 7;
    auto z = test::random_tensor<double>({N, K}, 5, -3, 3);
    std::vector<int> labels{6, 0, 3};
    tensor<double> t({N, K}), dz({N, K}), scratch({N, K});
    kernels::smooth_targets(labels.data(), N, K, 0.1, t.data());
    kernels::softmax_cross_entropy(z.data(), N, K, t.data(), dz.data());
    const double h = 1e-6;
    for (index_t i = 0; i < z.size(); ++i) {
        const double saved = z[i];
        z[i] = saved + h;
        const double lp = kernels::softmax_cross_entropy<double>(z.data(), N, K, t.data(), nullptr);
        z[i] = saved - h;
        const double lm = kernels::softmax_cross_entropy<double>(z.data(), N, K, t.data(), nullptr);
        z[i] = saved;
        REQUIRE(dz[i] == Approx((lp - lm) / (2 * h)).margin(1e-9));
    }
}

TEST_CASE("cross_entropy: top-k counting", "[kernels][cross_entropy]")
{
    const index_t K = 6;
    // Row 0: label 2 is the max. Row 1: label 0 is 3rd. Row 2: label 5 is last.
    // Row 3: label 1 ties with the max (counts as top-1).
    const float z[4 * K] = {0, 1, 5, 2, 3, 4,   //
                            3, 1, 4, 5, 0, 2,   //
                            1, 2, 3, 4, 5, 0,   //
                            2, 7, 7, 1, 0, 0};
    const int labels[4] = {2, 0, 5, 1};
    CHECK(kernels::top_k_correct(z, 4, K, labels, 1) == 2);
    CHECK(kernels::top_k_correct(z, 4, K, labels, 2) == 2);
    CHECK(kernels::top_k_correct(z, 4, K, labels, 3) == 3);
    CHECK(kernels::top_k_correct(z, 4, K, labels, 5) == 3);
    CHECK(kernels::top_k_correct(z, 4, K, labels, 6) == 4);
}
