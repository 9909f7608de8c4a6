// Golden test against PyTorch (fixtures from tools/make_golden.py, computed in float64 by an
// independent PyTorch ConvNeXt V2 written from SPEC.md). Our float32 model must give logits within
// 1e-4 absolute, and every gradient within 1e-3 relative L2 error (||g - g_ref||_2 / ||g_ref||_2).
#include <convnextv2/io/safetensors.hpp>
#include <convnextv2/io/weights.hpp>
#include <convnextv2/kernels/cross_entropy.hpp>
#include <convnextv2/models/convnextv2.hpp>
#include <support/fixtures.hpp>
#include <support/golden.hpp>

#include <nlohmann/json.hpp>

#include <cmath>

using namespace convnextv2;

namespace {

using test::fill_golden_params;
using test::golden_fixture;
using test::torch_grad;

void run_golden(const std::string& name, bool full_grads)
{
    golden_fixture fx(name);
    convnextv2_model<float> m(fx.config());
    fill_golden_params(m.params());
    tensor<float> x = fx.get("input_nhwc");
    tensor<float> labels_f = fx.get("labels");
    const index_t N = x.dim(0), K = m.config().num_classes;

    m.set_training(true);  // drop_path_rate is 0: training mode only exercises the caches
    tensor<float> logits;
    m.forward(x, logits);
    CHECK(test::max_abs_diff(logits, fx.get("logits")) < 1e-4);
    CHECK(test::max_abs_diff(m.features(), fx.get("features")) < 1e-4);

    std::vector<int> labels(static_cast<std::size_t>(N));
    for (index_t i = 0; i < N; ++i) labels[static_cast<std::size_t>(i)] = static_cast<int>(labels_f[i]);
    tensor<float> targets({N, K}), dlogits({N, K});
    kernels::smooth_targets(labels.data(), N, K, 0.0, targets.data());
    double loss = kernels::softmax_cross_entropy(logits.data(), N, K, targets.data(), dlogits.data());
    CHECK(loss == Approx(fx.get("loss")[0]).epsilon(1e-5));

    m.zero_grad();
    tensor<float> dx(x.shape(), 0.f);
    m.backward(dlogits, &dx);
    CHECK(test::rel_l2(dx, fx.get("grad_input_nhwc")) < 1e-3);

    for (auto& p : m.params()) {
        CAPTURE(p.name);
        std::vector<float> g = torch_grad(p);
        if (full_grads) {
            tensor<float> ref = fx.get("grad." + p.name);
            tensor<float> ours(ref.shape());
            std::copy(g.begin(), g.end(), ours.begin());
            CHECK(test::rel_l2(ours, ref) < 1e-3);
        } else {  // first 16 values, sum, L2 norm
            tensor<float> ref = fx.get("gradsum." + p.name);
            const index_t n16 = std::min<index_t>(16, static_cast<index_t>(g.size()));
            double norm = 0, sum = 0;
            for (float v : g) { norm += double(v) * v; sum += v; }
            norm = std::sqrt(norm);
            const double ref_norm = ref[n16 + 1];
            CHECK(std::fabs(norm - ref_norm) <= 1e-3 * ref_norm + 1e-9);
            CHECK(std::fabs(sum - ref[n16]) <= 1e-3 * ref_norm * std::sqrt(double(g.size())) + 1e-9);
            for (index_t i = 0; i < n16; ++i) CHECK(std::fabs(g[static_cast<std::size_t>(i)] - ref[i]) <= 1e-3 * ref_norm + 1e-9);
        }
    }
}

} // namespace

TEST_CASE("golden: small custom variant vs PyTorch, logits and every gradient", "[models][golden]")
{
    run_golden("golden_small.safetensors", true);
}

TEST_CASE("golden: 1-channel variant with a 2x2 stem (the Fashion-MNIST shape)", "[models][golden]")
{
    run_golden("golden_small_stem2.safetensors", true);
}

TEST_CASE("golden: 28x28 with a 2x2 stem, sides the strides do not divide (14, 7, 3, 1)", "[models][golden]")
{
    run_golden("golden_small_stem2_28.safetensors", true);
}

TEST_CASE("golden: atto at 32x32 and 64x64 vs PyTorch", "[models][golden]")
{
    run_golden("golden_atto32.safetensors", false);
    run_golden("golden_atto64.safetensors", false);
}
