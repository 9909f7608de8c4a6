#include <convnextv2/kernels/gemm.hpp>
#include <support/fixtures.hpp>

#include <tbb/task_arena.h>

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
