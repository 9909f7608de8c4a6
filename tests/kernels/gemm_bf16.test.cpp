#include <convnextv2/kernels/gelu.hpp>
#include <convnextv2/kernels/gemm.hpp>
#include <support/fixtures.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

using namespace convnextv2;

namespace {
// Every test leaves the process-wide precision at its default, even when a REQUIRE fails.
struct fp32_on_exit {
    ~fp32_on_exit() { set_matmul_precision(matmul_precision::fp32); }
};

float bf16_round(float f) { return from_bf16(to_bf16(f)); }
} // namespace

TEST_CASE("bf16: round to nearest even, NaN, infinities and denormals", "[kernels][gemm][bf16]")
{
    CHECK(to_bf16(1.0f) == 0x3f80);
    CHECK(to_bf16(-2.0f) == 0xc000);
    CHECK(to_bf16(1.0f + 1.0f / 256) == 0x3f80);  // halfway between 0x3f80 and 0x3f81: to even
    CHECK(to_bf16(1.0f + 3.0f / 256) == 0x3f82);  // halfway between 0x3f81 and 0x3f82: to even
    CHECK(to_bf16(1.0f + 1.5f / 256) == 0x3f81);  // above halfway: up
    CHECK(to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
    CHECK(to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // beyond bf16's largest + half an ulp
    CHECK(std::isnan(from_bf16(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(from_bf16(to_bf16(0.15625f)) == 0.15625f);  // exactly representable values survive
    CHECK(to_bf16(1e-40f) == 0x0000);                  // denormals become zeros of their sign, as the
    CHECK(to_bf16(-1e-40f) == 0x8000);                 // hardware conversion does
}

TEST_CASE("bf16: precision switch defaults to fp32 and refuses bf16 where the CPU path is missing", "[kernels][gemm][bf16]")
{
    fp32_on_exit restore;
    CHECK(get_matmul_precision() == matmul_precision::fp32);
    if (!bf16_matmul_available()) {
        REQUIRE_THROWS_WITH(set_matmul_precision(matmul_precision::bf16), Catch::Contains("AVX512-BF16"));
        CHECK(get_matmul_precision() == matmul_precision::fp32);
        return;
    }
    set_matmul_precision(matmul_precision::bf16);
    CHECK(get_matmul_precision() == matmul_precision::bf16);
}

#if CONVNEXTV2_BF16_GEMM
TEST_CASE("bf16: the vector conversion equals to_bf16 element for element", "[kernels][gemm][bf16]")
{
    auto x = test::random_tensor<float>({1000}, 7, -3, 3);
    std::vector<float> v(x.begin(), x.end());
    v[3] = std::numeric_limits<float>::quiet_NaN();
    v[17] = -std::numeric_limits<float>::infinity();
    v[40] = 1e-40f;  // denormal
    v[41] = 1.0f + 1.0f / 256;
    v[42] = 1.0f + 3.0f / 256;
    v[43] = std::numeric_limits<float>::max();
    std::vector<std::uint16_t> out(v.size() + 1, 0xffff);
    kernels::bf16::convert_row(v.data(), static_cast<index_t>(v.size() - 3), out.data(), true);  // odd tail + pad
    for (std::size_t i = 0; i + 3 < v.size(); ++i) {
        CAPTURE(i, v[i]);
        REQUIRE(out[i] == to_bf16(v[i]));
    }
    CHECK(out[v.size() - 3] == 0);
}

TEST_CASE("bf16: linear_fwd sums bf16-rounded products in float", "[kernels][gemm][bf16]")
{
    fp32_on_exit restore;
    for (auto [M, K, N] : {std::array<index_t, 3>{1000, 33, 40}, {130, 7, 70}, {2500, 128, 32}, {300, 256, 1024}, {97, 1, 5}}) {
        CAPTURE(M, K, N);
        auto x = test::random_tensor<float>({M, K}, 1);
        auto w = test::random_tensor<float>({N, K}, 2);
        auto b = test::random_tensor<float>({N}, 3);
        tensor<float> y32({M, N}), y16({M, N});
        kernels::linear_fwd(x.data(), M, K, w.data(), b.data(), N, y32.data());
        set_matmul_precision(matmul_precision::bf16);
        kernels::linear_fwd(x.data(), M, K, w.data(), b.data(), N, y16.data());
        set_matmul_precision(matmul_precision::fp32);
        double worst_ref = 0, worst_fp32 = 0;
        bool differs = false;
        for (index_t m = 0; m < M; ++m)
            for (index_t n = 0; n < N; ++n) {
                double ref = b[n], mag = std::abs(b[n]);
                for (index_t k = 0; k < K; ++k) {
                    ref += static_cast<double>(bf16_round(x[m * K + k])) * bf16_round(w[n * K + k]);
                    mag += std::abs(static_cast<double>(x[m * K + k]) * w[n * K + k]);
                }
                const float got = y16[m * N + n];
                // float accumulation of exact bf16 products: a few float ulps of the magnitude
                worst_ref = std::max(worst_ref, std::abs(got - ref) / (mag + 1e-30));
                // against the fp32 product: each input is off by at most 2^-9 relative
                worst_fp32 = std::max(worst_fp32, std::abs(got - y32[m * N + n]) / (mag + 1e-30));
                differs = differs || got != y32[m * N + n];
            }
        CHECK(worst_ref < 4e-6);
        CHECK(worst_fp32 < 1.0 / 256);
        CHECK(differs);  // the switch took effect
    }
}

TEST_CASE("bf16: few-row shapes keep the float path", "[kernels][gemm][bf16]")
{
    fp32_on_exit restore;
    const index_t M = 5, K = 200, N = 300;  // M·(K+N) < N·K: the transposed float product
    auto x = test::random_tensor<float>({M, K}, 1);
    auto w = test::random_tensor<float>({N, K}, 2);
    tensor<float> y32({M, N}), y16({M, N});
    kernels::linear_fwd(x.data(), M, K, w.data(), static_cast<const float*>(nullptr), N, y32.data());
    set_matmul_precision(matmul_precision::bf16);
    kernels::linear_fwd(x.data(), M, K, w.data(), static_cast<const float*>(nullptr), N, y16.data());
    REQUIRE(test::max_abs_diff(y32, y16) == 0.0);
}

TEST_CASE("bf16: fused linear + GELU equals linear then GELU in bf16, one epilogue per row", "[kernels][gemm][bf16]")
{
    fp32_on_exit restore;
    set_matmul_precision(matmul_precision::bf16);
    const index_t M = 3000, K = 40, N = 160;
    auto x = test::random_tensor<float>({M, K}, 4);
    auto w = test::random_tensor<float>({N, K}, 5);
    auto b = test::random_tensor<float>({N}, 6);
    tensor<float> plain({M, N}), act({M, N}), pre({M, N}), out({M, N});
    kernels::linear_fwd(x.data(), M, K, w.data(), b.data(), N, plain.data());
    kernels::gelu_fwd(plain.data(), M * N, act.data());
    std::vector<int> calls(static_cast<std::size_t>(M), 0);
    kernels::linear_fwd_then(x.data(), M, K, w.data(), b.data(), N, pre.data(), [&](index_t m0, index_t m1) {
        for (index_t m = m0; m < m1; ++m) ++calls[static_cast<std::size_t>(m)];
        kernels::gelu_fwd_range(pre.data() + m0 * N, (m1 - m0) * N, out.data() + m0 * N);
    });
    REQUIRE(test::max_abs_diff(pre, plain) == 0.0);
    REQUIRE(test::max_abs_diff(out, act) == 0.0);
    REQUIRE(std::all_of(calls.begin(), calls.end(), [](int c) { return c == 1; }));
}

namespace {
// max over outputs of |got - ref| / Σ|terms|, ref in double from the bf16-rounded inputs, and the
// same against the float product; `got` and `f32` hold out[R, C] = Σ_t a(r, t) · b(t, c).
template <class A, class B>
std::array<double, 2> worst_errors(const tensor<float>& got, const tensor<float>& f32, index_t R, index_t C, index_t T,
                                   A&& a, B&& b, const tensor<float>* base = nullptr)
{
    double worst_ref = 0, worst_fp32 = 0;
    for (index_t r = 0; r < R; ++r)
        for (index_t c = 0; c < C; ++c) {
            double ref = base ? (*base)[r * C + c] : 0.0, mag = std::abs(ref);
            for (index_t t = 0; t < T; ++t) {
                ref += static_cast<double>(bf16_round(a(r, t))) * bf16_round(b(t, c));
                mag += std::abs(static_cast<double>(a(r, t)) * b(t, c));
            }
            worst_ref = std::max(worst_ref, std::abs(got[r * C + c] - ref) / (mag + 1e-30));
            worst_fp32 = std::max(worst_fp32, std::abs(got[r * C + c] - f32[r * C + c]) / (mag + 1e-30));
        }
    return {worst_ref, worst_fp32};
}
} // namespace

TEST_CASE("bf16: data gradient sums bf16-rounded products in float", "[kernels][gemm][bf16]")
{
    fp32_on_exit restore;
    // {M, N, K}: odd N pads a pair
    for (auto [M, N, K] : {std::array<index_t, 3>{1000, 33, 40}, {130, 70, 7}, {2500, 128, 32}, {300, 1024, 256}}) {
        for (bool accumulate : {false, true}) {
            CAPTURE(M, N, K, accumulate);
            auto dy = test::random_tensor<float>({M, N}, 1);
            auto w = test::random_tensor<float>({N, K}, 2);
            auto base = test::random_tensor<float>({M, K}, 3);
            tensor<float> d32 = base, d16 = base;
            kernels::linear_bwd_data(dy.data(), M, N, w.data(), K, d32.data(), accumulate);
            set_matmul_precision(matmul_precision::bf16);
            kernels::linear_bwd_data(dy.data(), M, N, w.data(), K, d16.data(), accumulate);
            set_matmul_precision(matmul_precision::fp32);
            auto [to_ref, to_fp32] = worst_errors(
                d16, d32, M, K, N, [&](index_t m, index_t n) { return dy[m * N + n]; },
                [&](index_t n, index_t k) { return w[n * K + k]; }, accumulate ? &base : nullptr);
            CHECK(to_ref < 4e-6);
            CHECK(to_fp32 < 1.0 / 256);
            CHECK(test::max_abs_diff(d16, d32) > 0);  // the switch took effect
        }
    }
}

TEST_CASE("bf16: weight gradient sums bf16-rounded products in float", "[kernels][gemm][bf16]")
{
    fp32_on_exit restore;
    // {M, K, N}: M <= 1024 is one reduction chunk (output rows split over threads), larger M several
    // chunks; N < K stores the transposed partial; odd M pads a pair
    for (auto [M, K, N] : {std::array<index_t, 3>{1000, 33, 40}, {777, 70, 7}, {2501, 128, 32}, {3000, 32, 128}, {512, 256, 1024}}) {
        CAPTURE(M, K, N);
        auto dy = test::random_tensor<float>({M, N}, 1);
        auto x = test::random_tensor<float>({M, K}, 2);
        auto w0 = test::random_tensor<float>({N, K}, 3);
        auto b0 = test::random_tensor<float>({N}, 4);
        tensor<float> w32 = w0, w16 = w0, b32 = b0, b16 = b0;
        kernels::linear_bwd_weight(dy.data(), x.data(), M, K, N, w32.data(), b32.data());
        set_matmul_precision(matmul_precision::bf16);
        kernels::linear_bwd_weight(dy.data(), x.data(), M, K, N, w16.data(), b16.data());
        set_matmul_precision(matmul_precision::fp32);
        auto [to_ref, to_fp32] = worst_errors(
            w16, w32, N, K, M, [&](index_t n, index_t m) { return dy[m * N + n]; },
            [&](index_t m, index_t k) { return x[m * K + k]; }, &w0);
        CHECK(to_ref < 1e-5);
        CHECK(to_fp32 < 1.0 / 256);
        CHECK(test::max_abs_diff(w16, w32) > 0);
        CHECK(test::max_abs_diff(b16, b32) == 0.0);  // the bias gradient is a float sum either way
    }
}

TEST_CASE("bf16: linear_bwd_from equals the weight and data gradients it fuses", "[kernels][gemm][bf16]")
{
    fp32_on_exit restore;
    set_matmul_precision(matmul_precision::bf16);
    for (auto [M, K, N] : {std::array<index_t, 3>{5000, 40, 160}, {700, 64, 256}, {4097, 128, 512}}) {
        CAPTURE(M, K, N);
        auto dy = test::random_tensor<float>({M, N}, 1);
        auto x = test::random_tensor<float>({M, K}, 2);
        auto w = test::random_tensor<float>({N, K}, 3);
        tensor<float> dw_a({N, K}, 0.0f), db_a({N}, 0.0f), dx_a({M, K}), dw_b({N, K}, 0.0f), db_b({N}, 0.0f), dx_b({M, K});
        kernels::linear_bwd_weight(dy.data(), x.data(), M, K, N, dw_a.data(), db_a.data());
        kernels::linear_bwd_data(dy.data(), M, N, w.data(), K, dx_a.data(), false);
        kernels::linear_bwd_from<float>(
            [&](index_t m0, index_t m1, float* g) { std::copy(dy.data() + m0 * N, dy.data() + m1 * N, g); }, x.data(), M, K, N,
            w.data(), dw_b.data(), db_b.data(), dx_b.data(), false);
        REQUIRE(test::max_abs_diff(dw_a, dw_b) == 0.0);
        REQUIRE(test::max_abs_diff(db_a, db_b) == 0.0);
        REQUIRE(test::max_abs_diff(dx_a, dx_b) == 0.0);
    }
}
#endif
