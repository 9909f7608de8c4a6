#include <convnextv2/kernels/dwconv7x7.hpp>
#include <support/fixtures.hpp>

#include <array>
#include <cstring>

using namespace convnextv2;

namespace {
using dims = std::array<index_t, 4>;  // N, H, W, C
const dims odd_shapes[] = {{1, 1, 1, 1}, {1, 1, 1, 17}, {2, 5, 3, 3}, {1, 9, 4, 17}, {3, 2, 11, 1},
                           {1, 8, 8, 40}, {2, 7, 9, 33}, {1, 13, 6, 64}, {4, 3, 3, 5},
                           // W > 8: a left window clipped at column 0 (ends at min(8, W - 3)), middle windows of
                           // 8 and one of 1..7 columns, a right window clipped at column W; with and without a
                           // half block (40 = 2 x 16 + 8, 27 = 16 + 8 + 3) and a channel tail
                           {1, 5, 12, 17}, {2, 3, 14, 48}, {1, 2, 21, 16}, {1, 10, 10, 35},
                           {2, 4, 12, 40}, {1, 3, 11, 27}, {2, 3, 16, 40}, {1, 2, 19, 27},
                           {1, 3, 17, 16}, {1, 2, 25, 8}, {1, 2, 28, 24}, {1, 2, 56, 16},
                           // narrow maps (W <= 8, C >= 8): whole-row clipped windows, full/half blocks and tails
                           {2, 4, 2, 256}, {1, 7, 7, 48}, {3, 4, 4, 24}, {1, 2, 1, 16}, {2, 3, 5, 9}, {1, 6, 3, 41}};
} // namespace

TEST_CASE("dwconv7x7 kernels equal their _ref twins on odd shapes", "[kernels][dwconv7x7]")
{
    for (auto [N, H, W, C] : odd_shapes) {
        CAPTURE(N, H, W, C);
        auto x = test::random_tensor<float>({N, H, W, C}, 1);
        auto w = test::random_tensor<float>({7, 7, 1, C}, 2);
        auto b = test::random_tensor<float>({C}, 3);
        auto dy = test::random_tensor<float>({N, H, W, C}, 4);

        tensor<float> y({N, H, W, C}), yr({N, H, W, C});
        kernels::dwconv7x7_fwd(x.data(), N, H, W, C, w.data(), b.data(), y.data());
        kernels::dwconv7x7_fwd_ref(x.data(), N, H, W, C, w.data(), b.data(), yr.data());
        REQUIRE(test::rel_l2(y, yr) < 1e-5);
        REQUIRE(test::max_abs_diff(y, yr) < 1e-5);

        // without bias
        kernels::dwconv7x7_fwd(x.data(), N, H, W, C, w.data(), static_cast<const float*>(nullptr), y.data());
        kernels::dwconv7x7_fwd_ref(x.data(), N, H, W, C, w.data(), static_cast<const float*>(nullptr), yr.data());
        REQUIRE(test::max_abs_diff(y, yr) < 1e-5);

        tensor<float> dx({N, H, W, C}, 0.5f), dxr({N, H, W, C}, 0.5f);
        kernels::dwconv7x7_bwd_data(dy.data(), N, H, W, C, w.data(), dx.data());
        kernels::dwconv7x7_bwd_data_ref(dy.data(), N, H, W, C, w.data(), dxr.data());
        REQUIRE(test::rel_l2(dx, dxr) < 1e-5);
        REQUIRE(test::max_abs_diff(dx, dxr) < 1e-5);

        tensor<float> dw({7, 7, 1, C}, 0.25f), dwr({7, 7, 1, C}, 0.25f), db({C}, -1.f), dbr({C}, -1.f);
        kernels::dwconv7x7_bwd_weight(dy.data(), x.data(), N, H, W, C, dw.data(), db.data());
        kernels::dwconv7x7_bwd_weight_ref(dy.data(), x.data(), N, H, W, C, dwr.data(), dbr.data());
        REQUIRE(test::rel_l2(dw, dwr) < 1e-5);
        REQUIRE(test::rel_l2(db, dbr) < 1e-5);
    }
}

TEST_CASE("dwconv7x7 kernels in double agree with _ref to rounding", "[kernels][dwconv7x7]")
{
    const index_t N = 2, H = 6, W = 10, C = 19;
    auto x = test::random_tensor<double>({N, H, W, C}, 11);
    auto w = test::random_tensor<double>({7, 7, 1, C}, 12);
    auto b = test::random_tensor<double>({C}, 13);
    auto dy = test::random_tensor<double>({N, H, W, C}, 14);
    tensor<double> y({N, H, W, C}), yr({N, H, W, C});
    kernels::dwconv7x7_fwd(x.data(), N, H, W, C, w.data(), b.data(), y.data());
    kernels::dwconv7x7_fwd_ref(x.data(), N, H, W, C, w.data(), b.data(), yr.data());
    REQUIRE(test::max_abs_diff(y, yr) < 1e-12);
    tensor<double> dx({N, H, W, C}, 0.0), dxr({N, H, W, C}, 0.0);
    kernels::dwconv7x7_bwd_data(dy.data(), N, H, W, C, w.data(), dx.data());
    kernels::dwconv7x7_bwd_data_ref(dy.data(), N, H, W, C, w.data(), dxr.data());
    REQUIRE(test::max_abs_diff(dx, dxr) < 1e-12);
    tensor<double> dw({7, 7, 1, C}, 0.0), dwr({7, 7, 1, C}, 0.0), db({C}, 0.0), dbr({C}, 0.0);
    kernels::dwconv7x7_bwd_weight(dy.data(), x.data(), N, H, W, C, dw.data(), db.data());
    kernels::dwconv7x7_bwd_weight_ref(dy.data(), x.data(), N, H, W, C, dwr.data(), dbr.data());
    REQUIRE(test::max_abs_diff(dw, dwr) < 1e-11);
    REQUIRE(test::max_abs_diff(db, dbr) < 1e-11);
}

TEST_CASE("dwconv7x7 hand-computed example: all-ones kernel on a single impulse", "[kernels][dwconv7x7]")
{
    // 1x3x3x2 input, a single 1 at (h=1, w=1, c=0); all-ones 7x7 kernel; bias (0.5, -2).
    // Every output site of a 3x3 map sees every input site (|offset| <= 2 < 3), so channel 0 is
    // 1 + 0.5 everywhere and channel 1 is just its bias.
    tensor<float> x({1, 3, 3, 2}, 0.f), w({7, 7, 1, 2}, 1.f), b({2}), y({1, 3, 3, 2});
    x[(1 * 3 + 1) * 2 + 0] = 1.f;
    b[0] = 0.5f;
    b[1] = -2.f;
    kernels::dwconv7x7_fwd(x.data(), 1, 3, 3, 2, w.data(), b.data(), y.data());
    for (index_t s = 0; s < 9; ++s) {
        REQUIRE(y[s * 2 + 0] == 1.5f);
        REQUIRE(y[s * 2 + 1] == -2.f);
    }

    // Impulse at the top-left corner of a 1x5x5x1 map with w[kh,kw] = 10*kh + kw: output (h, w)
    // reads input (0,0) through tap (kh, kw) = (3 - h, 3 - w), so y[h,w] = 10(3-h) + (3-w) for
    // h, w <= 3 and 0 beyond (tap index 3 - 4 < 0).
    tensor<float> x2({1, 5, 5, 1}, 0.f), w2({7, 7, 1, 1}), y2({1, 5, 5, 1});
    x2[0] = 1.f;
    for (index_t kh = 0; kh < 7; ++kh)
        for (index_t kw = 0; kw < 7; ++kw) w2[kh * 7 + kw] = static_cast<float>(10 * kh + kw);
    kernels::dwconv7x7_fwd(x2.data(), 1, 5, 5, 1, w2.data(), static_cast<const float*>(nullptr), y2.data());
    for (index_t h = 0; h < 5; ++h)
        for (index_t wo = 0; wo < 5; ++wo) {
            CAPTURE(h, wo);
            float expect = (h <= 3 && wo <= 3) ? static_cast<float>(10 * (3 - h) + (3 - wo)) : 0.f;
            REQUIRE(y2[h * 5 + wo] == expect);
        }

    // Gradients of the same 5x5 example with dy = 1 at (0,0): dw[kh,kw] = x[kh-3, kw-3] is 1 only
    // at tap (3,3); db = 1; dx[ih,iw] reads dy(0,0) through tap (kh,kw) = (ih+3, iw+3).
    tensor<float> dy2({1, 5, 5, 1}, 0.f), dw2({7, 7, 1, 1}, 0.f), db2({1}, 0.f), dx2({1, 5, 5, 1}, 0.f);
    dy2[0] = 1.f;
    kernels::dwconv7x7_bwd_weight(dy2.data(), x2.data(), 1, 5, 5, 1, dw2.data(), db2.data());
    for (index_t t = 0; t < 49; ++t) REQUIRE(dw2[t] == (t == 3 * 7 + 3 ? 1.f : 0.f));
    REQUIRE(db2[0] == 1.f);
    kernels::dwconv7x7_bwd_data(dy2.data(), 1, 5, 5, 1, w2.data(), dx2.data());
    for (index_t ih = 0; ih < 5; ++ih)
        for (index_t iw = 0; iw < 5; ++iw) {
            CAPTURE(ih, iw);
            float expect = (ih <= 3 && iw <= 3) ? static_cast<float>(10 * (ih + 3) + (iw + 3)) : 0.f;
            REQUIRE(dx2[ih * 5 + iw] == expect);
        }
}

TEST_CASE("dwconv7x7 bwd_weight is bit-identical for 1 and 2 threads", "[kernels][dwconv7x7]")
{
    for (auto [N, H, W, C] : {dims{4, 14, 14, 37}, dims{2, 56, 9, 8}, dims{1, 3, 3, 5}}) {
        CAPTURE(N, H, W, C);
        auto x = test::random_tensor<float>({N, H, W, C}, 21);
        auto dy = test::random_tensor<float>({N, H, W, C}, 22);
        auto run = [&](int threads) {
            tensor<float> g({50 * C}, 0.f);
            tbb::task_arena arena(threads);
            arena.execute([&] { kernels::dwconv7x7_bwd_weight(dy.data(), x.data(), N, H, W, C, g.data(), g.data() + 49 * C); });
            return g;
        };
        auto g1 = run(1), g2 = run(2);
        REQUIRE(std::memcmp(g1.data(), g2.data(), sizeof(float) * static_cast<std::size_t>(g1.size())) == 0);
    }
}
