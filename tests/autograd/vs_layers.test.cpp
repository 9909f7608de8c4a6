// The tape as a second implementation of the fused layers: the same parameters (shared by
// reference), the same output and the same input and parameter gradients.
#include <convnextv2/autograd/autograd.hpp>
#include <convnextv2/models/convnextv2.hpp>
#include <support/fixtures.hpp>

#include <string>
#include <vector>

using namespace convnextv2;
namespace ag = convnextv2::autograd;

namespace {

void randomize(param_list<double>& ps, std::uint64_t seed, double scale)
{
    counter_rng rng(seed, 3);
    for (auto& p : ps)
        for (auto& v : *p.value) v = rng.uniform(-1, 1) * scale;
}

std::vector<tensor<double>> take_grads(param_list<double>& ps)
{
    std::vector<tensor<double>> g;
    for (auto& p : ps) {
        g.push_back(*p.grad);
        p.grad->zero();
    }
    return g;
}

void require_close(const tensor<double>& a, const tensor<double>& b, const std::string& what, double tol = 1e-12)
{
    double scale = 1;
    for (double v : b) scale = std::max(scale, std::fabs(v));
    const double d = test::max_abs_diff(a, b);
    INFO(what << ": max |diff| " << d << " (scale " << scale << ")");
    REQUIRE(d <= tol * scale);
}

void require_same_grads(param_list<double>& ps, const std::vector<tensor<double>>& ref)
{
    REQUIRE(ps.size() == ref.size());
    for (std::size_t i = 0; i < ps.size(); ++i) require_close(*ps[i].grad, ref[i], ps[i].name);
}

} // namespace

TEST_CASE("a ConvNeXt block composed from ops equals the fused convnext_block", "[autograd][vs_layers]")
{
    const index_t C = 6;
    const shape_t s{2, 9, 10, C};
    convnext_block<double> blk(C, 0.0);
    blk.setup(s);
    param_list<double> ps;
    blk.collect_params(ps, "");
    randomize(ps, 11, 0.5);
    const tensor<double> x = test::random_tensor<double>(s, 1);
    const tensor<double> g = test::random_tensor<double>(s, 2);

    tensor<double> y_ref, dx_ref(s, 0.0);
    blk.forward(x, y_ref);
    blk.backward(g, &dx_ref);
    const auto grads_ref = take_grads(ps);

    auto& body = blk.body;
    auto& dw = body.get<0>();
    auto& norm = body.get<1>();
    auto& pw1 = body.get<2>().expand;  // the dense block's inverted_bottleneck
    auto& gr = body.get<2>().project.norm;
    auto& pw2 = body.get<2>().project.proj;
    ag::tape<double> t;
    auto xv = ag::leaf(t, x);
    auto p = [&](tensor<double>& v, tensor<double>& dv) { return ag::param(t, v, dv); };
    auto h = ag::dwconv7x7(xv, p(dw.weight, dw.weight_grad), p(dw.bias, dw.bias_grad));
    h = ag::layer_norm(h, p(norm.weight, norm.weight_grad), p(norm.bias, norm.bias_grad), norm.eps);
    h = ag::linear(h, p(pw1.weight, pw1.weight_grad), p(pw1.bias, pw1.bias_grad));
    h = ag::gelu(h);
    h = ag::grn(h, p(gr.gamma, gr.gamma_grad), p(gr.beta, gr.beta_grad));
    h = ag::linear(h, p(pw2.weight, pw2.weight_grad), p(pw2.bias, pw2.bias_grad));
    auto y = xv + h;
    t.backward(y, g);

    require_close(y.value(), y_ref, "output");
    require_close(xv.grad(), dx_ref, "input gradient");
    require_same_grads(ps, grads_ref);
}

namespace {

model_config small_config()
{
    model_config c;
    c.depths = {1, 1, 2, 1};
    c.dims = {4, 8, 8, 12};
    c.num_classes = 3;
    return c;
}

} // namespace

TEST_CASE("the model as one node followed by an MSE loss matches the model's backward", "[autograd][vs_layers]")
{
    convnextv2_model<double> m(small_config(), 7);
    randomize(m.params(), 5, 0.3);
    const tensor<double> x = test::random_tensor<double>({2, 32, 32, 3}, 1);
    const tensor<double> target = test::random_tensor<double>({2, 3}, 2);

    tensor<double> logits, dx_ref(x.shape(), 0.0);
    m.zero_grad();
    m.forward(x, logits);
    tensor<double> dlogits(logits.shape());
    double loss_ref = 0;
    for (index_t i = 0; i < logits.size(); ++i) {
        const double e = logits[i] - target[i];
        loss_ref += e * e / static_cast<double>(logits.size());
        dlogits[i] = 2 * e / static_cast<double>(logits.size());
    }
    m.backward(dlogits, &dx_ref);
    const auto grads_ref = take_grads(m.params());

    SECTION("apply_layer on model.net()")
    {
        ag::tape<double> t;
        auto xv = ag::leaf(t, x);
        auto loss = ag::mse(ag::apply_layer(t, m.net(), xv), ag::constant(target));
        REQUIRE(t.size() == 4);  // x, net, target, mse
        t.backward(loss);
        REQUIRE(loss.item() == Approx(loss_ref).epsilon(1e-13));
        require_close(xv.grad(), dx_ref, "input gradient");
        require_same_grads(m.params(), grads_ref);
    }
    SECTION("apply_layer on the model itself, input a constant: parameter gradients still flow")
    {
        ag::tape<double> t;
        auto out = ag::apply_layer(t, m, ag::constant(x));
        REQUIRE(out.requires_grad());
        t.backward(ag::mse(out, ag::constant(target)));
        require_same_grads(m.params(), grads_ref);
    }
    SECTION("under no_grad the model runs but nothing is recorded")
    {
        ag::tape<double> t;
        ag::no_grad guard;
        auto out = ag::apply_layer(t, m.net(), ag::leaf(t, x));
        REQUIRE(t.size() == 1);
        REQUIRE_FALSE(out.requires_grad());
        require_close(out.value(), logits, "logits");
    }
}

TEST_CASE("backbone parts as nodes plus a custom head from ops match the model's backward", "[autograd][vs_layers]")
{
    convnextv2_model<double> m(small_config(), 9);
    randomize(m.params(), 6, 0.3);
    const tensor<double> x = test::random_tensor<double>({2, 32, 32, 3}, 3);
    tensor<double> targets({2, 3}, 0.1);
    targets[0] = 0.8;
    targets[5] = 0.8;

    tensor<double> logits, dx_ref(x.shape(), 0.0);
    m.zero_grad();
    m.forward(x, logits);
    tensor<double> dlogits(logits.shape());
    const double loss_ref = kernels::softmax_cross_entropy(logits.data(), 2, 3, targets.data(), dlogits.data());
    m.backward(dlogits, &dx_ref);
    const auto grads_ref = take_grads(m.params());

    auto& net = m.net();
    auto& head = net.get<8>();
    auto& norm = head.get<1>();
    auto& fc = head.get<2>();
    ag::tape<double> t;
    auto xv = ag::leaf(t, x);
    auto h = ag::apply_layer(t, net.get<0>(), xv);
    h = ag::apply_layer(t, net.get<1>(), h);
    h = ag::apply_layer(t, net.get<2>(), h);
    h = ag::apply_layer(t, net.get<3>(), h);
    h = ag::apply_layer(t, net.get<4>(), h);
    h = ag::apply_layer(t, net.get<5>(), h);
    h = ag::apply_layer(t, net.get<6>(), h);
    h = ag::apply_layer(t, net.get<7>(), h);
    h = ag::global_avg_pool(h);
    h = ag::layer_norm(h, ag::param(t, norm.weight, norm.weight_grad), ag::param(t, norm.bias, norm.bias_grad), norm.eps);
    h = ag::linear(h, ag::param(t, fc.weight, fc.weight_grad), ag::param(t, fc.bias, fc.bias_grad));
    auto loss = ag::softmax_cross_entropy(h, targets);
    t.backward(loss);

    require_close(h.value(), logits, "logits");
    REQUIRE(loss.item() == Approx(loss_ref).epsilon(1e-13));
    require_close(xv.grad(), dx_ref, "input gradient");
    require_same_grads(m.params(), grads_ref);
}
