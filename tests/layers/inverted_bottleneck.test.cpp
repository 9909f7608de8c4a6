// grn_linear (GRN + pwconv2) and inverted_bottleneck (pwconv1 → GELU → GRN → pwconv2): the dense
// block's fused layers against the plain layers in turn.
#include <convnextv2/layers/inverted_bottleneck.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

#include <cstring>

using namespace convnextv2;

namespace {

template <class T>
bool same_bits(const tensor<T>& a, const tensor<T>& b)
{
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(T) * static_cast<std::size_t>(a.size())) == 0;
}

// grn_linear against grn then linear with the same parameters: every output and gradient equal
// bit for bit, with dx overwritten and accumulated. Returns whether the fused kernels ran.
bool compare_with_two_layers(const shape_t& s, index_t out)
{
    grn_linear<float> fused;
    fused.proj.out_features = out;
    grn<float> norm;
    linear<float> proj(out);
    const shape_t so = fused.setup(s);
    REQUIRE(proj.setup(norm.setup(s)) == so);
    param_list<float> pf, pr;
    fused.collect_params(pf, "stages.0.1");
    norm.collect_params(pr, "stages.0.1.grn");
    proj.collect_params(pr, "stages.0.1.pwconv2");
    REQUIRE(pf.size() == 4);
    for (std::size_t i = 0; i < pf.size(); ++i) {
        REQUIRE(pf[i].name == pr[i].name);
        *pf[i].value = test::random_tensor<float>(pf[i].value->shape(), 10 + static_cast<std::uint64_t>(i));
        *pr[i].value = *pf[i].value;
    }
    REQUIRE(pf[0].name == "stages.0.1.grn.gamma");
    REQUIRE(pf[3].name == "stages.0.1.pwconv2.bias");

    const auto x = test::random_tensor<float>(s, 1);
    tensor<float> y, z, y_ref;
    fused.forward(x, y);
    norm.forward(x, z);
    proj.forward(z, y_ref);
    REQUIRE(same_bits(y, y_ref));

    for (bool accumulate : {false, true}) {
        const auto dy = test::random_tensor<float>(so, accumulate ? 3 : 2);
        zero_grads(pf);
        zero_grads(pr);
        tensor<float> dx(s, 0.25f), dx_ref(s, 0.25f), dz(s);
        fused.backward(dy, &dx, accumulate);
        proj.backward(dy, &dz, false);
        norm.backward(dz, &dx_ref, accumulate);
        CHECK(same_bits(dx, dx_ref));
        for (std::size_t i = 0; i < pf.size(); ++i) {
            INFO(pf[i].name);
            CHECK(same_bits(*pf[i].grad, *pr[i].grad));
        }
    }
    // no input gradient wanted: the parameter gradients alone
    zero_grads(pf);
    fused.backward(test::random_tensor<float>(so, 2), nullptr);
    zero_grads(pr);
    proj.backward(test::random_tensor<float>(so, 2), &z, false);
    norm.backward(z, nullptr);
    for (std::size_t i = 0; i < pf.size(); ++i) CHECK(same_bits(*pf[i].grad, *pr[i].grad));
    return fused.fused();
}

// f(on) with fp32 products (on = false), then with bf16 products where the build has them (on = true).
template <class F>
void for_each_precision(F&& f)
{
    for (matmul_precision p : {matmul_precision::fp32, matmul_precision::bf16}) {
        if (p == matmul_precision::bf16 && !bf16_matmul_available()) {
            WARN("this build has no AVX512-BF16 path: the fused bf16 kernels are not exercised");
            continue;
        }
        scoped_matmul_precision scope(p);
        const bool on = p == matmul_precision::bf16;
        INFO("bf16 " << on);
        f(on);
    }
}

// inverted_bottleneck against linear_gelu, grn and linear in turn, same parameters: outputs and
// every gradient equal bit for bit, dx overwritten and accumulated. Returns whether the backward
// took the fused path.
bool compare_with_layers(const shape_t& s)
{
    const index_t C = s.back();
    INFO("shape " << to_string(s));
    inverted_bottleneck<float> blk;
    blk.expand.out_features = 4 * C;
    blk.project.proj.out_features = C;
    linear_gelu<float> pw1(4 * C);
    grn<float> norm;
    linear<float> pw2(C);
    REQUIRE(blk.setup(s) == s);
    REQUIRE(pw2.setup(norm.setup(pw1.setup(s))) == s);
    param_list<float> pb, pr;
    blk.collect_params(pb, "stages.1.0");
    pw1.collect_params(pr, "stages.1.0.pwconv1");
    norm.collect_params(pr, "stages.1.0.grn");
    pw2.collect_params(pr, "stages.1.0.pwconv2");
    REQUIRE(pb.size() == 6);
    for (std::size_t i = 0; i < pb.size(); ++i) {
        REQUIRE(pb[i].name == pr[i].name);
        *pb[i].value = test::random_tensor<float>(pb[i].value->shape(), 20 + static_cast<std::uint64_t>(i));
        *pr[i].value = *pb[i].value;
    }

    const auto x = test::random_tensor<float>(s, 1);
    tensor<float> y, h, z, y_ref;
    blk.forward(x, y);
    pw1.forward(x, h);
    norm.forward(h, z);
    pw2.forward(z, y_ref);
    REQUIRE(same_bits(y, y_ref));

    for (bool accumulate : {false, true}) {
        const auto dy = test::random_tensor<float>(s, accumulate ? 3 : 2);
        zero_grads(pb);
        zero_grads(pr);
        tensor<float> dx(s, 0.25f), dx_ref(s, 0.25f), dz(z.shape()), dh(h.shape());
        blk.backward(dy, &dx, accumulate);
        pw2.backward(dy, &dz, false);
        norm.backward(dz, &dh, false);
        pw1.backward(dh, &dx_ref, accumulate);
        CHECK(same_bits(dx, dx_ref));
        for (std::size_t i = 0; i < pb.size(); ++i) {
            INFO(pb[i].name);
            CHECK(same_bits(*pb[i].grad, *pr[i].grad));
        }
    }
    return blk.fusable();
}


} // namespace

TEST_CASE("grn_linear: gradient check (double: the two layers in turn)", "[layers][grn_linear]")
{
    grn_linear<double> l;
    l.proj.out_features = 3;
    REQUIRE_GRADCHECK(testing::check_layer(l, {2, 3, 2, 5}));
}

TEST_CASE("grn_linear equals grn followed by linear bit for bit, fp32 and bf16 products", "[layers][grn_linear]")
{
    // 9 samples of 4x4 sites (>= grn_per_group_min: one task per sample), odd widths for the masked tails
    for_each_precision([](bool on) {
        CHECK(compare_with_two_layers({9, 4, 4, 24}, 10) == on);
        CHECK(compare_with_two_layers({9, 2, 5, 37}, 7) == on);
        CHECK(compare_with_two_layers({10, 12, 12, 20}, 6) == on);  // 1440 rows: two weight-gradient chunks
        // the two layers in turn: fewer samples than one task each; an odd number of sites per sample
        CHECK_FALSE(compare_with_two_layers({3, 4, 4, 24}, 10));
        CHECK_FALSE(compare_with_two_layers({9, 3, 5, 20}, 7));
    });
}

TEST_CASE("grn_linear: a wrong input width is a clear error", "[layers][grn_linear]")
{
    grn_linear<float> l;
    l.proj.out_features = 4;
    l.setup({9, 2, 2, 8});
    tensor<float> x({9, 2, 2, 5}), y;
    REQUIRE_THROWS_WITH(l.forward(x, y), Catch::Contains("grn: expected input with 8 channels"));
}

TEST_CASE("inverted_bottleneck: gradient check (double: the layers in turn)", "[layers][inverted_bottleneck]")
{
    inverted_bottleneck<double> l;
    l.expand.out_features = 8;
    l.project.proj.out_features = 2;
    REQUIRE_GRADCHECK(testing::check_layer(l, {2, 3, 2, 2}));
}

TEST_CASE("inverted_bottleneck equals pwconv1, GELU, GRN, pwconv2 in turn bit for bit, fp32 and bf16", "[layers][inverted_bottleneck]")
{
    for_each_precision([](bool on) {
        CHECK(compare_with_layers({9, 4, 4, 6}) == on);    // one weight-gradient chunk
        CHECK(compare_with_layers({80, 4, 4, 6}) == on);   // 1280 rows: two chunks of whole samples
        CHECK(compare_with_layers({9, 2, 3, 10}) == on);   // 6 sites per sample, odd widths
        CHECK_FALSE(compare_with_layers({10, 12, 12, 6})); // 144-site samples straddle the 1024-row chunks
        CHECK_FALSE(compare_with_layers({4, 4, 4, 6}));    // too few samples for GRN's task per sample
    });
}
