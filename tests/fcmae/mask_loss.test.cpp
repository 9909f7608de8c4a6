// FCMAE masks (SPEC §3.2–3.3), active-site tables and the norm-pix loss (SPEC §3.7).
#include <convnextv2/fcmae/mask.hpp>
#include <convnextv2/fcmae/norm_pix_loss.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("mask: exactly floor(L(1-ratio)) visible patches per sample", "[fcmae][mask]")
{
    // SPEC §3.2 worked numbers: 224/32 -> 19 of 49; L = 36 -> 14; 64 -> 25; 144 -> 57.
    CHECK(fcmae_len_keep(49, 0.6) == 19);
    CHECK(fcmae_len_keep(36, 0.6) == 14);
    CHECK(fcmae_len_keep(64, 0.6) == 25);
    CHECK(fcmae_len_keep(144, 0.6) == 57);
    CHECK(fcmae_len_keep(10, 0.6) == 4);  // 10·0.4 = 4 exactly, despite 0.4's binary rounding
    for (index_t g : {2, 4, 7}) {
        auto m = random_fcmae_mask(5, g, 0.6, 1, 2);
        REQUIRE(m.masked.size() == static_cast<std::size_t>(5 * g * g));
        for (index_t n = 0; n < 5; ++n) CHECK(m.visible_count(n) == fcmae_len_keep(g * g, 0.6));
    }
    CHECK_THROWS_WITH(random_fcmae_mask(1, 1, 0.6, 0, 0), Catch::Contains("no visible patch"));
    CHECK_THROWS_WITH(random_fcmae_mask(1, 7, 1.0, 0, 0), Catch::Contains("mask_ratio"));
}

TEST_CASE("mask: reproducible from (seed, key), different keys and samples differ", "[fcmae][mask]")
{
    auto a = random_fcmae_mask(8, 7, 0.6, 42, 3), b = random_fcmae_mask(8, 7, 0.6, 42, 3), c = random_fcmae_mask(8, 7, 0.6, 42, 4);
    CHECK(a.masked == b.masked);
    CHECK(a.masked != c.masked);
    bool samples_differ = false;
    for (index_t l = 0; l < 49; ++l) samples_differ = samples_differ || a.masked[static_cast<std::size_t>(l)] != a.masked[static_cast<std::size_t>(49 + l)];
    CHECK(samples_differ);
    // Uniformity: over many samples every cell is masked about 30/49 of the time.
    auto big = random_fcmae_mask(4000, 7, 0.6, 9, 9);
    for (index_t l = 0; l < 49; ++l) {
        double f = 0;
        for (index_t n = 0; n < 4000; ++n) f += big.masked[static_cast<std::size_t>(n * 49 + l)];
        CHECK(f / 4000 == Approx(30.0 / 49).margin(0.03));
    }
}

TEST_CASE("mask: upsampled to each stage; every 2x2 downsample window all-visible or all-masked", "[fcmae][mask]")
{
    auto m = random_fcmae_mask(3, 7, 0.6, 5, 6);
    active_sites s0 = visible_sites(m, 8);
    REQUIRE(s0.H == 56);
    CHECK(s0.rows() == 3 * 19 * 64);
    for (index_t n = 0; n < 3; ++n) CHECK(s0.rows_of(n) == 19 * 64);
    active_sites s = s0;
    for (index_t f : {4, 2, 1}) {
        active_sites d = downsample_sites(s, 2);
        active_sites direct = visible_sites(m, f);
        CHECK(d.site == direct.site);      // the strided conv's active set is the downsampled mask
        for (auto p : d.parent) CHECK(p >= 0);  // ... and each window is fully visible
        CHECK(d.rows() * 4 == s.rows());        // ... and no visible site is left out
        s = d;
    }
    // Neighbour table: a tap is active iff the neighbouring site is visible and inside the grid.
    for (index_t r = 0; r < s0.rows(); r += 37) {
        const index_t i = s0.site[static_cast<std::size_t>(r)];
        const index_t n = i / (56 * 56), h = (i / 56) % 56, w = i % 56;
        for (index_t t = 0; t < 49; ++t) {
            const index_t y = h + t / 7 - 3, x = w + t % 7 - 3;
            const bool inside = y >= 0 && y < 56 && x >= 0 && x < 56;
            const bool vis = inside && !m.is_masked(n, y / 8, x / 8);
            const std::int32_t q = s0.nbr[static_cast<std::size_t>(r * 49 + t)];
            CHECK((q >= 0) == vis);
            if (q >= 0) CHECK(s0.site[static_cast<std::size_t>(q)] == (n * 56 + y) * 56 + x);
        }
    }
}

TEST_CASE("norm-pix loss: zero prediction gives (P-1)/P; only masked patches count", "[fcmae][loss]")
{
    const index_t N = 2, g = 2, p = 32, C = 3, P = p * p * C, L = N * g * g;
    tensor<double> img = test::random_tensor<double>({N, g * p, g * p, C}, 3, -2, 2);
    tensor<double> rows({L, P}), back(img.shape());
    kernels::patchify(img.data(), N, g, p, C, rows.data());
    kernels::unpatchify(rows.data(), N, g, p, C, back.data());
    CHECK(test::max_abs_diff(back, img) == 0.0);
    // Layout: element (py·p + px)·C + c of patch (i, j) is pixel (i·p + py, j·p + px), channel c.
    CHECK(rows[(1 * g + 1) * P + (5 * p + 7) * C + 2] == img[((0 * g * p + p + 5) * g * p + p + 7) * C + 2]);

    std::vector<double> mean(static_cast<std::size_t>(L)), scale(static_cast<std::size_t>(L));
    kernels::norm_pix(rows.data(), L, P, mean.data(), scale.data());
    std::vector<std::uint8_t> mask{1, 0, 1, 1, 0, 0, 1, 0};
    tensor<double> zero({L, P}, 0.0), d({L, P});
    const double loss = kernels::masked_mse(zero.data(), rows.data(), mask.data(), L, P, d.data());
    // (P−1)/P = 0.99967448 for P = 3072, times var/(var + 1e-6) from the eps.
    CHECK(loss == Approx(static_cast<double>(P - 1) / P).epsilon(1e-5));
    CHECK(loss == Approx(0.99967).margin(1e-5));
    // Visible patches contribute neither loss nor gradient.
    tensor<double> pred = test::random_tensor<double>({L, P}, 4);
    const double l1 = kernels::masked_mse(pred.data(), rows.data(), mask.data(), L, P, d.data());
    for (index_t l = 0; l < L; ++l)
        if (!mask[static_cast<std::size_t>(l)])
            for (index_t k = 0; k < P; ++k) pred[l * P + k] += 5.0;
    tensor<double> d2({L, P});
    CHECK(kernels::masked_mse(pred.data(), rows.data(), mask.data(), L, P, d2.data()) == Approx(l1).epsilon(1e-14));
    for (index_t l = 0; l < L; ++l)
        if (!mask[static_cast<std::size_t>(l)]) CHECK(d2[l * P] == 0.0);
    // Mean over masked patches: the hand sum.
    double s = 0;
    for (index_t l = 0; l < L; ++l) {
        if (!mask[static_cast<std::size_t>(l)]) continue;
        double e = 0;
        for (index_t k = 0; k < P; ++k) e += (pred[l * P + k] - rows[l * P + k]) * (pred[l * P + k] - rows[l * P + k]);
        s += e / P;
    }
    CHECK(l1 == Approx(s / 4).epsilon(1e-12));
}
