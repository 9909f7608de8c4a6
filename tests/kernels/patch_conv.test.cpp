#include <convnextv2/kernels/patch_conv.hpp>
#include <support/fixtures.hpp>

#include <array>

using namespace convnextv2;

namespace {
using dims = std::array<index_t, 6>;  // N, H, W, I, k, O
const dims odd_shapes[] = {{1, 4, 4, 3, 4, 1},  {1, 4, 4, 1, 4, 17},  {2, 8, 12, 3, 4, 5},  {1, 2, 2, 17, 2, 3},
                           {3, 6, 2, 5, 2, 33}, {1, 16, 8, 3, 4, 96}, {2, 14, 14, 40, 2, 80}, {1, 3, 6, 2, 1, 7}};
} // namespace

TEST_CASE("patch_conv kernels equal their _ref twins on odd shapes", "[kernels][patch_conv]")
{
    for (auto [N, H, W, I, k, O] : odd_shapes) {
        CAPTURE(N, H, W, I, k, O);
        const index_t Ho = H / k, Wo = W / k, M = N * Ho * Wo, K = k * k * I;
        auto x = test::random_tensor<float>({N, H, W, I}, 1);
        auto w = test::random_tensor<float>({O, k, k, I}, 2);
        auto b = test::random_tensor<float>({O}, 3);
        auto dy = test::random_tensor<float>({N, Ho, Wo, O}, 4);
        tensor<float> patches({M, K});

        tensor<float> y({N, Ho, Wo, O}), yr({N, Ho, Wo, O});
        kernels::patch_conv_fwd(x.data(), N, H, W, I, k, w.data(), b.data(), O, y.data(), patches.data());
        kernels::patch_conv_fwd_ref(x.data(), N, H, W, I, k, w.data(), b.data(), O, yr.data());
        REQUIRE(test::rel_l2(y, yr) < 1e-5);
        REQUIRE(test::max_abs_diff(y, yr) < 1e-5);

        // bwd_weight consumes the patches left by fwd
        tensor<float> dw({O, k, k, I}, 0.25f), dwr({O, k, k, I}, 0.25f), db({O}, 1.f), dbr({O}, 1.f);
        kernels::patch_conv_bwd_weight(dy.data(), patches.data(), N, H, W, I, k, O, dw.data(), db.data());
        kernels::patch_conv_bwd_weight_ref(dy.data(), x.data(), N, H, W, I, k, O, dwr.data(), dbr.data());
        REQUIRE(test::rel_l2(dw, dwr) < 1e-5);
        REQUIRE(test::rel_l2(db, dbr) < 1e-5);

        tensor<float> dx({N, H, W, I}, 0.5f), dxr({N, H, W, I}, 0.5f);
        kernels::patch_conv_bwd_data(dy.data(), N, H, W, I, k, w.data(), O, dx.data(), patches.data());
        kernels::patch_conv_bwd_data_ref(dy.data(), N, H, W, I, k, w.data(), O, dxr.data());
        REQUIRE(test::rel_l2(dx, dxr) < 1e-5);
        REQUIRE(test::max_abs_diff(dx, dxr) < 1e-5);
    }
}

TEST_CASE("patch_gather and patch_scatter_add are adjoint permutations", "[kernels][patch_conv]")
{
    const index_t N = 2, H = 6, W = 4, I = 3, k = 2;
    tensor<float> x({N, H, W, I});
    for (index_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
    tensor<float> p({N * 3 * 2, k * k * I});
    kernels::patch_gather(x.data(), N, H, W, I, k, p.data());
    // row (n=1, i=2, j=1), element (kh=1, kw=0, c=2) is x[1, 5, 2, 2]
    REQUIRE(p[((1 * 3 + 2) * 2 + 1) * 12 + (1 * 2 + 0) * 3 + 2] == x[((1 * H + 5) * W + 2) * I + 2]);
    tensor<float> back({N, H, W, I}, 1.f);
    kernels::patch_scatter_add(p.data(), N, H, W, I, k, back.data());
    for (index_t i = 0; i < x.size(); ++i) REQUIRE(back[i] == x[i] + 1.f);
}

TEST_CASE("patch_conv hand-computed example", "[kernels][patch_conv]")
{
    // 1x2x2x2 input, k = 2, one output channel: y = b + Σ w·x over the single patch.
    // x[h,w,c] = 1 + (h*2 + w)*2 + c -> 1..8 in (kh, kw, c) order; w = (1, -1, 2, 0, 0.5, 0, 0, 3), b = 0.25
    // y = 1 - 2 + 2*3 + 0 + 0.5*5 + 0 + 0 + 3*8 + 0.25 = 31.75
    tensor<float> x({1, 2, 2, 2}), w({1, 2, 2, 2}), b({1}, 0.25f), y({1, 1, 1, 1}), p({1, 8});
    for (index_t i = 0; i < 8; ++i) x[i] = static_cast<float>(i + 1);
    const float wv[8] = {1, -1, 2, 0, 0.5f, 0, 0, 3};
    std::copy(wv, wv + 8, w.data());
    kernels::patch_conv_fwd(x.data(), 1, 2, 2, 2, 2, w.data(), b.data(), 1, y.data(), p.data());
    REQUIRE(y[0] == 31.75f);

    // dy = 2: dw = 2·x, db = 2, dx = 2·w.
    tensor<float> dy({1, 1, 1, 1}, 2.f), dw({1, 2, 2, 2}, 0.f), db({1}, 0.f), dx({1, 2, 2, 2}, 0.f);
    kernels::patch_conv_bwd_weight(dy.data(), p.data(), 1, 2, 2, 2, 2, 1, dw.data(), db.data());
    kernels::patch_conv_bwd_data(dy.data(), 1, 2, 2, 2, 2, w.data(), 1, dx.data(), p.data());
    for (index_t i = 0; i < 8; ++i) {
        REQUIRE(dw[i] == 2.f * x[i]);
        REQUIRE(dx[i] == 2.f * wv[i]);
    }
    REQUIRE(db[0] == 2.f);

    // Two output sites of a 1x2x4x1 input with k = 2 and all-ones weight: sums of each 2x2 block.
    tensor<float> x2({1, 2, 4, 1}), w2({1, 2, 2, 1}, 1.f), y2({1, 1, 2, 1}), p2({2, 4});
    const float xv[8] = {1, 2, 10, 20, 3, 4, 30, 40};
    std::copy(xv, xv + 8, x2.data());
    kernels::patch_conv_fwd(x2.data(), 1, 2, 4, 1, 2, w2.data(), static_cast<const float*>(nullptr), 1, y2.data(), p2.data());
    REQUIRE(y2[0] == 10.f);
    REQUIRE(y2[1] == 100.f);
}
