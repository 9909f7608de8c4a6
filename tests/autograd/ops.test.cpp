#include <convnextv2/autograd/autograd.hpp>
#include <convnextv2/layers/linear.hpp>
#include <support/fixtures.hpp>

#include <functional>
#include <string>
#include <vector>

using namespace convnextv2;
namespace ag = convnextv2::autograd;

namespace {

using vars = std::vector<ag::var<double>>;
using graph_fn = std::function<ag::var<double>(ag::tape<double>&, const vars&)>;

// L = Σ out·g for a fixed random g, with the inputs as leaves (analytic, one backward) or as
// constants under no_grad (numeric: central differences on each probed element).
double loss_of(const std::vector<tensor<double>>& inputs, const graph_fn& f, const tensor<double>& g)
{
    ag::no_grad guard;
    ag::tape<double> t;
    vars in;
    for (auto& x : inputs) in.push_back(ag::constant(x));
    auto out = f(t, in);
    REQUIRE(t.size() == 0);
    double s = 0;
    for (index_t i = 0; i < g.size(); ++i) s += out.value()[i] * g[i];
    return s;
}

void check_op(const std::string& name, std::vector<tensor<double>> inputs, const graph_fn& f, double eps = 1e-6)
{
    INFO(name);
    ag::tape<double> t;
    vars in;
    for (auto& x : inputs) in.push_back(ag::leaf(t, x));
    auto out = f(t, in);
    REQUIRE(out.requires_grad());
    tensor<double> g = test::random_tensor<double>(out.shape(), 99);
    t.backward(out, g);
    REQUIRE(loss_of(inputs, f, g) == Approx([&] {
                double s = 0;
                for (index_t i = 0; i < g.size(); ++i) s += out.value()[i] * g[i];
                return s;
            }()).epsilon(1e-14));
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        tensor<double>& x = inputs[k];
        const tensor<double>& analytic = in[k].grad();
        const index_t step = std::max<index_t>(1, x.size() / 48);
        for (index_t i = 0; i < x.size(); i += step) {
            const double saved = x[i];
            x[i] = saved + eps;
            const double lp = loss_of(inputs, f, g);
            x[i] = saved - eps;
            const double lm = loss_of(inputs, f, g);
            x[i] = saved;
            const double numeric = (lp - lm) / (2 * eps), a = analytic[i];
            INFO("input " << k << " element " << i << ": analytic " << a << ", numeric " << numeric);
            REQUIRE(std::fabs(a - numeric) <= 1e-6 * std::max({1.0, std::fabs(a), std::fabs(numeric)}));
        }
    }
}

tensor<double> rnd(const shape_t& s, std::uint64_t seed, double lo = -1, double hi = 1)
{
    return test::random_tensor<double>(s, seed, lo, hi);
}

} // namespace

TEST_CASE("elementwise ops and reductions match finite differences", "[autograd][ops]")
{
    const shape_t s{2, 3, 4};
    check_op("add", {rnd(s, 1), rnd(s, 2)}, [](auto&, const vars& v) { return ag::add(v[0], v[1]); });
    check_op("sub", {rnd(s, 1), rnd(s, 2)}, [](auto&, const vars& v) { return ag::sub(v[0], v[1]); });
    check_op("mul", {rnd(s, 1), rnd(s, 2)}, [](auto&, const vars& v) { return ag::mul(v[0], v[1]); });
    check_op("scale", {rnd(s, 1)}, [](auto&, const vars& v) { return ag::scale(v[0], -2.5); });
    check_op("reshape", {rnd(s, 1)}, [](auto&, const vars& v) { return ag::reshape(v[0], {6, 4}); });
    check_op("sum", {rnd(s, 1)}, [](auto&, const vars& v) { return ag::sum(v[0]); });
    check_op("mean", {rnd(s, 1)}, [](auto&, const vars& v) { return ag::mean(v[0]); });
    check_op("mse", {rnd(s, 1), rnd(s, 2)}, [](auto&, const vars& v) { return ag::mse(v[0], v[1]); });
    check_op("fan-out x*x + x*y", {rnd(s, 1), rnd(s, 2)}, [](auto&, const vars& v) { return v[0] * v[0] + v[0] * v[1]; });
}

TEST_CASE("softmax cross entropy with soft targets matches finite differences", "[autograd][ops]")
{
    tensor<double> targets = rnd({3, 5}, 7, 0, 1);
    for (index_t n = 0; n < 3; ++n) {
        double s = 0;
        for (index_t k = 0; k < 5; ++k) s += targets[n * 5 + k];
        for (index_t k = 0; k < 5; ++k) targets[n * 5 + k] /= s;
    }
    check_op("softmax_cross_entropy", {rnd({3, 5}, 1, -3, 3)},
             [&](auto&, const vars& v) { return ag::softmax_cross_entropy(v[0], targets); });
    // Composed: a scalar loss after a nonlinearity (mean of gelu, times the cross entropy).
    check_op("ce * mean(gelu)", {rnd({3, 5}, 1, -3, 3)}, [&](auto&, const vars& v) {
        return ag::softmax_cross_entropy(v[0], targets) * ag::mean(ag::gelu(v[0]));
    });
}

TEST_CASE("layer ops match finite differences", "[autograd][ops]")
{
    check_op("linear", {rnd({2, 3, 4}, 1), rnd({5, 4}, 2), rnd({5}, 3)},
             [](auto&, const vars& v) { return ag::linear(v[0], v[1], v[2]); });
    check_op("linear without bias", {rnd({6, 4}, 1), rnd({3, 4}, 2)}, [](auto&, const vars& v) { return ag::linear(v[0], v[1]); });
    check_op("layer_norm", {rnd({2, 3, 4, 6}, 1, -2, 3), rnd({6}, 2), rnd({6}, 3)},
             [](auto&, const vars& v) { return ag::layer_norm(v[0], v[1], v[2]); });
    check_op("gelu", {rnd({2, 3, 7}, 1, -4, 4)}, [](auto&, const vars& v) { return ag::gelu(v[0]); });
    check_op("grn", {rnd({2, 3, 4, 5}, 1), rnd({5}, 2), rnd({5}, 3)},
             [](auto&, const vars& v) { return ag::grn(v[0], v[1], v[2]); });
    check_op("dwconv7x7", {rnd({2, 9, 8, 5}, 1), rnd({7, 7, 1, 5}, 2), rnd({5}, 3)},
             [](auto&, const vars& v) { return ag::dwconv7x7(v[0], v[1], v[2]); });
    check_op("patch_conv k2", {rnd({2, 4, 6, 3}, 1), rnd({5, 2, 2, 3}, 2), rnd({5}, 3)},
             [](auto&, const vars& v) { return ag::patch_conv(v[0], v[1], v[2]); });
    check_op("patch_conv k4", {rnd({1, 8, 4, 2}, 1), rnd({3, 4, 4, 2}, 2), rnd({3}, 3)},
             [](auto&, const vars& v) { return ag::patch_conv(v[0], v[1], v[2]); });
    check_op("global_avg_pool", {rnd({2, 3, 5, 4}, 1)}, [](auto&, const vars& v) { return ag::global_avg_pool(v[0]); });
}

TEST_CASE("apply_layer matches finite differences on its input", "[autograd][ops]")
{
    linear<double> lin(3);
    lin.setup({2, 4});
    param_list<double> ps;
    lin.collect_params(ps, "");
    lin.weight = rnd({3, 4}, 5);
    lin.bias = rnd({3}, 6);
    check_op("apply_layer(linear) then gelu", {rnd({2, 4}, 1)},
             [&](ag::tape<double>& t, const vars& v) { return ag::gelu(ag::apply_layer(t, lin, v[0])); });
}

TEST_CASE("ops skip gradients nobody asked for and still get the rest right", "[autograd][ops]")
{
    // Full: every input a leaf. Partial: the weight a constant. x and b gradients must agree.
    auto run = [](bool weight_leaf, auto op, std::vector<tensor<double>> in) {
        ag::tape<double> t;
        auto x = ag::leaf(t, in[0]);
        auto w = weight_leaf ? ag::leaf(t, in[1]) : ag::constant(in[1]);
        auto b = ag::leaf(t, in[2]);
        t.backward(ag::sum(ag::gelu(op(x, w, b))));
        return std::make_pair(tensor<double>(x.grad()), tensor<double>(b.grad()));
    };
    auto check = [&](auto op, std::vector<tensor<double>> in) {
        auto full = run(true, op, in);
        auto part = run(false, op, in);
        REQUIRE(test::max_abs_diff(full.first, part.first) == 0.0);
        REQUIRE(test::max_abs_diff(full.second, part.second) == 0.0);
    };
    check([](auto& x, auto& w, auto& b) { return ag::linear(x, w, b); }, {rnd({4, 3}, 1), rnd({2, 3}, 2), rnd({2}, 3)});
    check([](auto& x, auto& w, auto& b) { return ag::dwconv7x7(x, w, b); },
          {rnd({1, 4, 5, 3}, 1), rnd({7, 7, 1, 3}, 2), rnd({3}, 3)});
    check([](auto& x, auto& w, auto& b) { return ag::patch_conv(x, w, b); },
          {rnd({1, 4, 4, 3}, 1), rnd({2, 2, 2, 3}, 2), rnd({2}, 3)});
    check([](auto& x, auto& w, auto& b) { return ag::layer_norm(x, w, b); }, {rnd({4, 3}, 1), rnd({3}, 2), rnd({3}, 3)});
    check([](auto& x, auto& w, auto& b) { return ag::grn(x, w, b); }, {rnd({2, 2, 3, 3}, 1), rnd({3}, 2), rnd({3}, 3)});
}

TEST_CASE("ops reject shapes that do not fit", "[autograd][ops]")
{
    ag::tape<double> t;
    auto x = ag::leaf(t, rnd({2, 4}, 1));
    REQUIRE_THROWS_AS(ag::linear(x, ag::leaf(t, rnd({3, 5}, 2))), error);
    REQUIRE_THROWS_AS(ag::layer_norm(x, ag::leaf(t, rnd({3}, 2)), ag::leaf(t, rnd({4}, 2))), error);
    REQUIRE_THROWS_AS(ag::grn(x, ag::leaf(t, rnd({4}, 2)), ag::leaf(t, rnd({4}, 2))), error);
    REQUIRE_THROWS_AS(ag::softmax_cross_entropy(x, rnd({2, 3}, 2)), error);
    REQUIRE_THROWS_AS(ag::reshape(x, {3, 3}), error);
}

TEST_CASE("every op also instantiates and runs in float, close to double", "[autograd][ops]")
{
    auto run = [](auto zero) {
        using T = decltype(zero);
        ag::tape<T> t;
        auto x = ag::leaf(t, tensor_cast<T>(rnd({2, 8, 8, 3}, 1)));
        auto pc = ag::patch_conv(x, ag::leaf(t, tensor_cast<T>(rnd({4, 2, 2, 3}, 2))), ag::leaf(t, tensor_cast<T>(rnd({4}, 3))));
        auto h = ag::dwconv7x7(pc, ag::leaf(t, tensor_cast<T>(rnd({7, 7, 1, 4}, 4))), ag::leaf(t, tensor_cast<T>(rnd({4}, 5))));
        h = ag::layer_norm(h, ag::constant(tensor<T>({4}, T(1))), ag::leaf(t, tensor_cast<T>(rnd({4}, 6))));
        h = ag::gelu(ag::linear(h, ag::leaf(t, tensor_cast<T>(rnd({8, 4}, 7)))));
        h = ag::grn(h, ag::leaf(t, tensor_cast<T>(rnd({8}, 8))), ag::leaf(t, tensor_cast<T>(rnd({8}, 9))));
        h = ag::reshape(ag::global_avg_pool(h - T(0.5) * h), {2, 8});
        auto z = ag::linear(h, ag::leaf(t, tensor_cast<T>(rnd({3, 8}, 10))), ag::leaf(t, tensor_cast<T>(rnd({3}, 11))));
        auto loss = ag::softmax_cross_entropy(z, tensor<T>({2, 3}, T(1) / 3)) + ag::mse(z, ag::constant(tensor<T>({2, 3}, T(0)))) +
                    ag::mean(z * z) + ag::sum(z);
        t.backward(loss);
        return std::make_pair(static_cast<double>(loss.item()), tensor_cast<double>(x.grad()));
    };
    auto [lf, gf] = run(0.0f);
    auto [ld, gd] = run(0.0);
    REQUIRE(lf == Approx(ld).epsilon(1e-5));
    REQUIRE(test::rel_l2(gf, gd) < 1e-4);
}
