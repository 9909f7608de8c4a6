#include <convnextv2/kernels/gelu.hpp>
#include <convnextv2/kernels/gemm.hpp>
#include <support/fixtures.hpp>

#include <tbb/task_arena.h>

#include <algorithm>
#include <limits>

using namespace convnextv2;

TEST_CASE("linear kernels equal their _ref twins on odd shapes", "[kernels][gemm]")
{
    for (auto [M, K, N] : {std::array<index_t, 3>{1, 1, 1}, {7, 13, 5}, {3000, 17, 33}, {50000, 3, 2},
                                 // register-tile edges: rows % 12, columns % 32, reduction passes of 256
                                 {49, 300, 70}, {1000, 40, 160}, {130, 520, 45}, {2500, 33, 17},
                                 // few rows: the forward computes yᵀ = W·xᵀ
                                 {5, 200, 300}, {49, 96, 400}}) {
        CAPTURE(M, K, N);
        auto x = test::random_tensor<float>({M, K}, 1);
        auto w = test::random_tensor<float>({N, K}, 2);
        auto b = test::random_tensor<float>({N}, 3);
        auto dy = test::random_tensor<float>({M, N}, 4);
        tensor<float> y({M, N}), yr({M, N});
        kernels::linear_fwd(x.data(), M, K, w.data(), b.data(), N, y.data());
        kernels::linear_fwd_ref(x.data(), M, K, w.data(), b.data(), N, yr.data());
        REQUIRE(test::max_abs_diff(y, yr) < 1e-4);

        tensor<float> dx({M, K}, 0.5f), dxr({M, K}, 0.5f);
        kernels::linear_bwd_data(dy.data(), M, N, w.data(), K, dx.data());
        kernels::linear_bwd_data_ref(dy.data(), M, N, w.data(), K, dxr.data());
        REQUIRE(test::max_abs_diff(dx, dxr) < 1e-4);
        // accumulate = false overwrites without reading (NaN in the buffer must not leak through)
        tensor<float> dxo({M, K}, std::numeric_limits<float>::quiet_NaN()), dxz({M, K}, 0.f);
        kernels::linear_bwd_data(dy.data(), M, N, w.data(), K, dxo.data(), false);
        kernels::linear_bwd_data_ref(dy.data(), M, N, w.data(), K, dxz.data());
        REQUIRE(test::max_abs_diff(dxo, dxz) < 1e-4);

        tensor<float> dw({N, K}, 0.25f), dwr({N, K}, 0.25f), db({N}, 0.f), dbr({N}, 0.f);
        kernels::linear_bwd_weight(dy.data(), x.data(), M, K, N, dw.data(), db.data());
        kernels::linear_bwd_weight_ref(dy.data(), x.data(), M, K, N, dwr.data(), dbr.data());
        REQUIRE(test::rel_l2(dw, dwr) < 1e-5);
        REQUIRE(test::rel_l2(db, dbr) < 1e-5);
    }
}

TEST_CASE("linear kernels give bit-identical results on 1 and 2 threads", "[kernels][gemm][parallel]")
{
    for (auto [M, K, N] : {std::array<index_t, 3>{49, 300, 70}, {3000, 40, 160}}) {
        CAPTURE(M, K, N);
        auto x = test::random_tensor<float>({M, K}, 5);
        auto w = test::random_tensor<float>({N, K}, 6);
        auto dy = test::random_tensor<float>({M, N}, 7);
        auto run = [&](int threads) {
            tensor<float> y({M, N}), dx({M, K}, 0.f), dw({N, K}, 0.f), db({N}, 0.f);
            tbb::task_arena(threads).execute([&] {
                kernels::linear_fwd(x.data(), M, K, w.data(), static_cast<const float*>(nullptr), N, y.data());
                kernels::linear_bwd_data(dy.data(), M, N, w.data(), K, dx.data());
                kernels::linear_bwd_weight(dy.data(), x.data(), M, K, N, dw.data(), db.data());
            });
            return std::vector<tensor<float>>{y, dx, dw, db};
        };
        const auto one = run(1), two = run(2);
        for (std::size_t i = 0; i < one.size(); ++i) REQUIRE(test::max_abs_diff(one[i], two[i]) == 0.0);
    }
}

namespace {

// The fused pwconv1 + GELU kernels against the plain calls on the same data: exact on the
// AVX-512 path (same tiles, same reduction order), within rounding on the Eigen path.
template <class T>
void require_same(const tensor<T>& a, const tensor<T>& b, const char* what)
{
    INFO(what);
    if (CONVNEXTV2_AVX512_GEMM && std::is_same_v<T, float>) REQUIRE(test::max_abs_diff(a, b) == 0.0);
    else REQUIRE(test::rel_l2(a, b) < (std::is_same_v<T, float> ? 1e-6 : 1e-13));
}

template <class T>
void check_fused_linear_gelu(index_t M, index_t K, index_t N, bool with_bias, bool accumulate, bool with_dx)
{
    CAPTURE(M, K, N, with_bias, accumulate, with_dx);
    auto x = test::random_tensor<T>({M, K}, 1);
    auto w = test::random_tensor<T>({N, K}, 2);
    auto b = test::random_tensor<T>({N}, 3);
    auto g = test::random_tensor<T>({M, N}, 4);
    const T* bias = with_bias ? b.data() : nullptr;

    // forward: linear_fwd then gelu over all rows
    tensor<T> h_ref({M, N}), y_ref({M, N}), h({M, N}), y({M, N});
    kernels::linear_fwd(x.data(), M, K, w.data(), bias, N, h_ref.data());
    kernels::gelu_fwd(h_ref.data(), M * N, y_ref.data());
    std::vector<int> seen(static_cast<std::size_t>(M), 0);
    kernels::linear_fwd_then(x.data(), M, K, w.data(), bias, N, h.data(), [&](index_t m0, index_t m1) {
        for (index_t m = m0; m < m1; ++m) ++seen[static_cast<std::size_t>(m)];
        kernels::gelu_fwd_range(h.data() + m0 * N, (m1 - m0) * N, y.data() + m0 * N);
    });
    REQUIRE(std::count(seen.begin(), seen.end(), 1) == M);  // every row once
    require_same(h, h_ref, "pre-activation");
    require_same(y, y_ref, "output");

    // backward: dh = gelu'(h)·g made whole, then the two plain products
    tensor<T> dh({M, N});
    kernels::gelu_bwd(h_ref.data(), g.data(), M * N, dh.data(), false);
    tensor<T> dw_ref({N, K}, T(0.25)), db_ref({N}, T(0.5)), dx_ref({M, K}, T(0.75));
    kernels::linear_bwd_weight(dh.data(), x.data(), M, K, N, dw_ref.data(), with_bias ? db_ref.data() : nullptr);
    if (with_dx) kernels::linear_bwd_data(dh.data(), M, N, w.data(), K, dx_ref.data(), accumulate);

    tensor<T> dw({N, K}, T(0.25)), db({N}, T(0.5)), dx({M, K}, accumulate ? T(0.75) : std::numeric_limits<T>::quiet_NaN());
    auto make_dh = [&](index_t m0, index_t m1, T* out) {
        kernels::gelu_bwd_range(h.data() + m0 * N, g.data() + m0 * N, (m1 - m0) * N, out, false);
    };
    kernels::linear_bwd_from(make_dh, x.data(), M, K, N, w.data(), dw.data(), with_bias ? db.data() : nullptr,
                             with_dx ? dx.data() : nullptr, accumulate);
    require_same(dw, dw_ref, "weight gradient");
    require_same(db, db_ref, "bias gradient");
    if (with_dx) require_same(dx, dx_ref, "input gradient");
}

} // namespace

TEST_CASE("fused linear + GELU kernels equal the plain linear and GELU calls", "[kernels][gemm][fused]")
{
    // one reduction chunk (M <= 1024), several chunks with several 128-row blocks each, N < K
    // (the transposed weight partial), few rows (the transposed forward), odd edges
    for (auto [M, K, N] : {std::array<index_t, 3>{300, 8, 32}, {5000, 32, 128}, {20000, 40, 160}, {3000, 96, 24},
                           {3, 64, 256}, {2600, 13, 50}}) {
        check_fused_linear_gelu<float>(M, K, N, true, true, true);
        check_fused_linear_gelu<float>(M, K, N, false, false, true);
    }
    check_fused_linear_gelu<float>(5000, 32, 128, true, true, false);
    check_fused_linear_gelu<double>(300, 8, 32, true, true, true);
    check_fused_linear_gelu<double>(2600, 13, 50, true, false, true);
}
