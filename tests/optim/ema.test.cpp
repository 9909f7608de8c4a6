#include <convnextv2/optim/ema.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

namespace {
struct two_params {
    tensor<double> w{{2, 2}}, gw, b{{2}}, gb;
    param_list<double> list;
    two_params(double w0, double b0)
    {
        w.fill(w0);
        b.fill(b0);
        add_param(list, "head.weight", w, gw);
        add_param(list, "head.bias", b, gb);
    }
};
} // namespace

TEST_CASE("ema: update is d*ema + (1-d)*p per step, no bias correction", "[optim][ema]")
{
    two_params m(1.0, -1.0);
    model_ema<double> ema(m.list);
    REQUIRE(ema.size() == 2);
    REQUIRE(ema.names()[0] == "head.weight");
    m.w.fill(2.0);
    m.b.fill(0.0);
    ema.update(m.list, 0.9);
    REQUIRE(ema.value("head.weight")[0] == Approx(1.1));
    REQUIRE(ema.value("head.bias")[1] == Approx(-0.9));
    ema.update(m.list, 0.9);
    REQUIRE(ema.value(0)[3] == Approx(0.9 * 1.1 + 0.1 * 2.0));
    ema.update(m.list, 0.0);  // decay 0 copies
    REQUIRE(ema.value(1)[0] == 0.0);
}

TEST_CASE("ema: swap_into twice restores, copy_to overwrites, by-name matching", "[optim][ema]")
{
    two_params m(1.0, 5.0);
    model_ema<double> ema(m.list);
    m.w.fill(3.0);
    ema.update(m.list, 0.5);  // ema w = 2, b = 5
    ema.swap_into(m.list);
    REQUIRE(m.w[0] == 2.0);
    REQUIRE(ema.value("head.weight")[0] == 3.0);
    ema.swap_into(m.list);
    REQUIRE(m.w[0] == 3.0);
    REQUIRE(ema.value("head.weight")[0] == 2.0);

    // Parameter order may differ from the stored order: matched by name.
    param_list<double> reversed{m.list[1], m.list[0]};
    ema.update(reversed, 0.5);  // w: 0.5*2 + 0.5*3 = 2.5
    REQUIRE(ema.value("head.weight")[1] == Approx(2.5));
    REQUIRE(ema.value("head.bias")[1] == Approx(5.0));

    ema.copy_to(m.list);
    REQUIRE(m.w[0] == Approx(2.5));

    two_params other(0, 0);
    other.list[0].name = "norm.weight";
    REQUIRE_THROWS_WITH(ema.update(other.list, 0.9), Catch::Contains("'norm.weight'"));
    REQUIRE_THROWS_WITH(ema.update(m.list, 1.5), Catch::Contains("decay"));
}

TEST_CASE("ema: float model, values accessible for checkpointing", "[optim][ema]")
{
    tensor<float> w = test::random_tensor<float>({64, 300}, 9), gw;
    param_list<float> l;
    add_param(l, "stages.0.0.pwconv1.weight", w, gw);
    model_ema<float> ema(l);
    tensor<float> w0 = w;
    w.fill(1.0f);
    ema.update(l, 0.9999);
    double worst = 0;
    for (index_t k = 0; k < w.size(); ++k)
        worst = std::max(worst, std::fabs(ema.value(0)[k] - (0.9999 * w0[k] + 0.0001)));
    REQUIRE(worst < 1e-6);
    ema.value("stages.0.0.pwconv1.weight").fill(0.25f);  // e.g. restored from a checkpoint
    ema.copy_to(l);
    REQUIRE(w[123] == 0.25f);
    REQUIRE(ema.contains("stages.0.0.pwconv1.weight"));
    REQUIRE_FALSE(ema.contains("head.weight"));
}
