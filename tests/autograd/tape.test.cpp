#include <convnextv2/autograd/autograd.hpp>
#include <support/fixtures.hpp>

#include <string>
#include <vector>

using namespace convnextv2;
namespace ag = convnextv2::autograd;

TEST_CASE("nodes are appended in forward order and closures run in reverse", "[autograd][tape]")
{
    ag::tape<double> t;
    auto x = ag::leaf(t, tensor<double>({3}, 2.0));
    std::vector<std::size_t> log;
    // A hand-written op: y = x (identity) that logs when its backward runs.
    auto tap = [&](const ag::var<double>& in) {
        std::size_t id = t.push_op(std::make_shared<tensor<double>>(in.value()), {in.id()},
                                   [&log](const ag::grad_context<double>& c) {
                                       log.push_back(c.inputs[0]);
                                       ag::detail::axpy(*c.dx(0), c.dy, 1.0);
                                   });
        return ag::var<double>(t, id);
    };
    auto a = tap(x);
    auto b = tap(a);
    auto c = tap(b);
    auto loss = ag::sum(c);
    REQUIRE(t.size() == 5);
    REQUIRE(x.id() == 0);
    REQUIRE(a.id() == 1);
    REQUIRE(b.id() == 2);
    REQUIRE(c.id() == 3);
    REQUIRE(loss.id() == 4);
    for (std::size_t i = 0; i < t.size(); ++i)
        for (std::size_t in : t.at(i).inputs) REQUIRE(in < i);
    REQUIRE(t.at(0).leaf);
    REQUIRE_FALSE(t.at(4).leaf);
    t.backward(loss);
    REQUIRE(log == std::vector<std::size_t>{2, 1, 0});
    for (index_t i = 0; i < 3; ++i) REQUIRE(x.grad()[i] == 1.0);
}

TEST_CASE("fan-out accumulates: y = x*x + x gives dy/dx = 2x + 1", "[autograd][tape]")
{
    ag::tape<double> t;
    tensor<double> xv({4});
    for (index_t i = 0; i < 4; ++i) xv[i] = 0.5 * static_cast<double>(i) - 1.0;
    auto x = ag::leaf(t, xv);
    auto y = x * x + x;
    t.backward(ag::sum(y));
    for (index_t i = 0; i < 4; ++i) REQUIRE(x.grad()[i] == Approx(2 * xv[i] + 1).margin(1e-15));
    // Also when the same var feeds both sides of one op.
    ag::tape<double> t2;
    auto z = ag::leaf(t2, xv);
    t2.backward(ag::sum(z + z));
    for (index_t i = 0; i < 4; ++i) REQUIRE(z.grad()[i] == 2.0);
}

TEST_CASE("a seed gradient gives the vector-Jacobian product of a non-scalar root", "[autograd][tape]")
{
    ag::tape<double> t;
    auto x = ag::leaf(t, test::random_tensor<double>({2, 3}, 1));
    auto y = ag::scale(x, 3.0);
    tensor<double> seed = test::random_tensor<double>({2, 3}, 2);
    t.backward(y, seed);
    for (index_t i = 0; i < 6; ++i) REQUIRE(x.grad()[i] == Approx(3 * seed[i]));
    REQUIRE_THROWS_AS(t.backward(y), error);  // not a scalar, no seed
}

TEST_CASE("retain_graph keeps the graph; without it a second sweep throws", "[autograd][tape]")
{
    ag::tape<double> t;
    auto x = ag::leaf(t, tensor<double>({2}, 3.0));
    auto loss = ag::sum(x * x);
    t.backward(loss, ag::backward_options{/*retain_graph=*/true});
    REQUIRE(x.grad()[0] == 6.0);
    t.backward(loss);  // leaf gradients accumulate over sweeps
    REQUIRE(x.grad()[0] == 12.0);
    REQUIRE(loss.grad()[0] == 1.0);  // intermediate gradients restart each sweep
    REQUIRE_FALSE(t.at(loss.id()).backward);
    REQUIRE_THROWS_AS(t.backward(loss), error);
    t.zero_grad();
    REQUIRE(x.grad()[0] == 0.0);
}

TEST_CASE("no_grad records nothing and returns constants", "[autograd][tape]")
{
    ag::tape<double> t;
    auto x = ag::leaf(t, tensor<double>({3}, 2.0));
    const std::size_t before = t.size();
    {
        ag::no_grad guard;
        REQUIRE_FALSE(ag::grad_enabled());
        auto y = ag::gelu(x * x + x);
        auto l = ag::mean(y);
        REQUIRE(t.size() == before);
        REQUIRE_FALSE(l.requires_grad());
        REQUIRE(l.owner() == nullptr);
        REQUIRE(l.item() == Approx(kernels::gelu_value(6.0)));
        REQUIRE_THROWS_AS(l.grad(), error);
        {
            ag::no_grad nested;
        }
        REQUIRE_FALSE(ag::grad_enabled());
    }
    REQUIRE(ag::grad_enabled());
    // Ops on constants only are not recorded either; mixing a constant in interns it as a leaf.
    auto c = ag::constant(tensor<double>({3}, 1.0));
    auto cc = c * c;
    REQUIRE(t.size() == before);
    REQUIRE_FALSE(cc.requires_grad());
    auto xc = x * c;
    REQUIRE(t.size() == before + 2);
    t.backward(ag::sum(xc));
    REQUIRE(x.grad()[0] == 1.0);
}

TEST_CASE("param leaves share the tensor and accumulate into the given grad", "[autograd][tape]")
{
    tensor<double> w({3}, 2.0), wg({3}, 10.0);
    ag::tape<double> t;
    auto p = ag::param(t, w, wg);
    REQUIRE(&p.value() == &w);
    t.backward(ag::sum(p * p));
    for (index_t i = 0; i < 3; ++i) REQUIRE(wg[i] == 14.0);
    REQUIRE(&p.grad() == &wg);
    t.clear();
    REQUIRE(t.size() == 0);
    REQUIRE(w[0] == 2.0);  // clear() leaves borrowed tensors alone
}

TEST_CASE("a chain of 10000 ops neither recurses nor overflows", "[autograd][tape]")
{
    ag::tape<double> t;
    auto x = ag::leaf(t, tensor<double>({2}, 1.0));
    auto y = x;
    for (int i = 0; i < 10000; ++i) y = y + x;
    REQUIRE(t.size() == 10001);
    t.backward(ag::sum(y));
    REQUIRE(x.grad()[0] == 10001.0);
    REQUIRE(y.value()[1] == 10001.0);
    ag::tape<double> deep;
    auto z = ag::leaf(deep, tensor<double>({1}, 1.0));
    for (int i = 0; i < 100000; ++i) z = ag::scale(z, 1.0);
    deep.backward(z);
    REQUIRE(deep.size() == 100001);
}

TEST_CASE("misuse fails loudly", "[autograd][tape]")
{
    ag::tape<double> t, u;
    auto a = ag::leaf(t, tensor<double>({2}, 1.0));
    auto b = ag::leaf(u, tensor<double>({2}, 1.0));
    auto c = ag::leaf(t, tensor<double>({3}, 1.0));
    REQUIRE_THROWS_AS(a + b, error);
    REQUIRE_THROWS_AS(a + c, error);
    REQUIRE_THROWS_AS(u.backward(ag::sum(a)), error);
    auto k = ag::leaf(t, tensor<double>({1}, 1.0), false);
    REQUIRE_THROWS_AS(t.backward(k), error);
}
