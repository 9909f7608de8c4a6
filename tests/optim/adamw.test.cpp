#include <convnextv2/optim/adamw.hpp>
#include <support/fixtures.hpp>

#include <cmath>
#include <deque>
#include <memory>
#include <tbb/task_arena.h>

using namespace convnextv2;

namespace {

// Owns value/grad tensors for hand-built parameter lists.
struct param_store {
    std::deque<tensor<double>> tensors;
    param_list<double> list;
    tensor<double>& add(const std::string& name, shape_t torch_shape, std::vector<double> init = {})
    {
        tensors.emplace_back(shape_t{numel(torch_shape)}, 0.0);
        tensor<double>& v = tensors.back();
        for (std::size_t i = 0; i < init.size(); ++i) v[static_cast<index_t>(i)] = init[i];
        tensors.emplace_back();
        add_param(list, name, v, tensors.back(), torch_shape);
        return v;
    }
};

void set_grad(param_list<double>& l, std::size_t i, std::vector<double> g)
{
    for (std::size_t k = 0; k < g.size(); ++k) (*l[i].grad)[static_cast<index_t>(k)] = g[k];
}

} // namespace

TEST_CASE("adamw: two steps on a 3-element parameter, with and without weight decay", "[optim][adamw]")
{
    const std::vector<double> g1{0.1, -0.2, 0.3}, g2{-0.05, 0.4, 0.0};
    const double lr = 0.01, eps = 1e-8;
    for (bool decay : {true, false}) {
        param_store s;
        s.add("stages.0.0.pwconv1.weight", {3, 1}, {1.0, -2.0, 0.5});
        adamw_options o;
        o.weight_decay = 0.1;
        o.eps = eps;
        adamw<double> opt(s.list, {param_group_info{1.0, decay}}, o);
        set_grad(s.list, 0, g1);
        opt.step(lr);
        // Step 1 by hand: m̂ = g, v̂ = g², so p ← p(1 − lr·wd) − lr·g/(|g| + eps).
        const double keep = decay ? 1 - lr * 0.1 : 1.0;
        const std::vector<double> p0{1.0, -2.0, 0.5};
        for (int k = 0; k < 3; ++k) {
            double expect = p0[k] * keep - lr * g1[k] / (std::fabs(g1[k]) + eps);
            REQUIRE((*s.list[0].value)[k] == Approx(expect).epsilon(1e-14));
        }
        REQUIRE(opt.exp_avg(0)[2] == Approx(0.03));
        REQUIRE(opt.exp_avg_sq(0)[2] == Approx(0.001 * 0.09));
        set_grad(s.list, 0, g2);
        opt.step(lr);
        // Step 2 values from torch.optim.AdamW (float64, PyTorch 1.13), same settings.
        const std::vector<double> want = decay ? std::vector<double>{0.9853476309393391, -1.989673035654104, 0.4823099181075821}
                                               : std::vector<double>{0.9873366309403391, -1.9936610356546038, 0.48329941810791543};
        for (int k = 0; k < 3; ++k) REQUIRE((*s.list[0].value)[k] == Approx(want[static_cast<std::size_t>(k)]).epsilon(1e-14));
        REQUIRE(opt.step_count() == 2);
    }
}

TEST_CASE("adamw: lr_scale multiplies both the step and the decoupled decay", "[optim][adamw]")
{
    param_store s;
    s.add("stages.0.0.pwconv1.weight", {3, 1}, {1.0, -2.0, 0.5});
    adamw_options o;
    o.weight_decay = 0.1;
    adamw<double> opt(s.list, {param_group_info{0.5, true}}, o);
    set_grad(s.list, 0, {0.1, -0.2, 0.3});
    opt.step(0.01);
    set_grad(s.list, 0, {-0.05, 0.4, 0.0});
    opt.step(0.01);
    // torch.optim.AdamW with lr 0.005, wd 0.1.
    REQUIRE((*s.list[0].value)[0] == Approx(0.9926710654699197).epsilon(1e-14));
    REQUIRE((*s.list[0].value)[1] == Approx(-1.994833517827177).epsilon(1e-14));
    REQUIRE((*s.list[0].value)[2] == Approx(0.49115233405387443).epsilon(1e-14));
}

TEST_CASE("adamw: decay / no-decay grouping by official name and shape", "[optim][adamw]")
{
    param_store s;
    s.add("downsample_layers.0.0.weight", {8, 3, 4, 4});
    s.add("downsample_layers.0.0.bias", {8});
    s.add("downsample_layers.0.1.weight", {8});
    s.add("stages.0.0.dwconv.weight", {8, 1, 7, 7});
    s.add("stages.0.0.norm.weight", {8});
    s.add("stages.0.0.pwconv1.weight", {32, 8});
    s.add("stages.0.0.pwconv1.bias", {32});
    s.add("stages.0.0.grn.gamma", {1, 1, 1, 32});
    s.add("stages.0.0.grn.beta", {1, 1, 1, 32});
    s.add("norm.weight", {8});
    s.add("head.weight", {10, 8});
    s.add("head.bias", {10});
    s.add("stages.0.blocks.0.mlp.grn.weight", {1, 32});  // timm GRN name, 2-D here on purpose
    s.add("mask_token", {1, 8, 1, 1});

    const std::vector<bool> no_decay{false, true, true, false, true, false, true, true, true, true, false, true, true, false};
    for (std::size_t i = 0; i < s.list.size(); ++i) {
        INFO(s.list[i].name);
        REQUIRE(default_no_decay(s.list[i]) == no_decay[i]);
    }
    // Pretraining rule: GRN gamma/beta of rank > 1 and the mask token are decayed.
    REQUIRE_FALSE(pretrain_no_decay(s.list[7]));
    REQUIRE_FALSE(pretrain_no_decay(s.list[13]));
    REQUIRE(pretrain_no_decay(s.list[1]));

    auto g = make_param_groups(s.list);
    for (std::size_t i = 0; i < g.size(); ++i) REQUIRE(g[i].decay == !no_decay[i]);
    auto all = make_param_groups(s.list, /*filter_bias_and_bn=*/false);
    for (const auto& gi : all) REQUIRE(gi.decay);

    // Stem id 1, stage-0 block 0 id 1, norm/head id 13.
    // Layer decay on atto depths (official names only; a timm name is an error naming it).
    REQUIRE_THROWS_WITH(make_param_groups(s.list, true, 0.9, {2, 2, 6, 2}), Catch::Contains("stages.0.blocks.0.mlp.grn.weight"));
    param_list<double> official(s.list.begin(), s.list.begin() + 12);
    auto ld = make_param_groups(official, true, 0.9, {2, 2, 6, 2}, "single");
    REQUIRE(ld[0].lr_scale == Approx(std::pow(0.9, 12)));
    REQUIRE(ld[5].lr_scale == Approx(std::pow(0.9, 12)));
    REQUIRE(ld[10].lr_scale == 1.0);
    REQUIRE_THROWS_WITH(make_param_groups(s.list, true, 0.9), Catch::Contains("depths"));
}

TEST_CASE("adamw: state round trip resumes bit-identically", "[optim][adamw]")
{
    auto make = [](param_store& s) {
        s.add("stages.0.0.pwconv1.weight", {4, 2}, {0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8});
        s.add("stages.0.0.pwconv1.bias", {4}, {0.0, 0.1, 0.2, 0.3});
    };
    param_store a, b;
    make(a);
    make(b);
    adamw<double> oa(a.list), ob(b.list);
    auto grads = [](param_list<double>& l, double t) {
        for (auto& p : l)
            for (index_t k = 0; k < p.grad->size(); ++k) (*p.grad)[k] = std::sin(1.0 + k + 3 * t);
    };
    grads(a.list, 0);
    oa.step(1e-2);
    // Restore b from a's state (moments + step) and a's weights.
    std::map<std::string, tensor<double>> m, v;
    auto st = oa.state();
    REQUIRE(st.step == 1);
    REQUIRE(st.slots.size() == 2);
    for (auto& sl : st.slots) { m[sl.name] = *sl.exp_avg; v[sl.name] = *sl.exp_avg_sq; }
    for (std::size_t i = 0; i < a.list.size(); ++i) *b.list[i].value = *a.list[i].value;
    ob.load_state(st.step, m, v);
    grads(a.list, 1);
    grads(b.list, 1);
    oa.step(1e-2);
    ob.step(1e-2);
    for (std::size_t i = 0; i < a.list.size(); ++i) REQUIRE(test::max_abs_diff(*a.list[i].value, *b.list[i].value) == 0.0);

    m.erase("stages.0.0.pwconv1.bias");
    REQUIRE_THROWS_WITH(ob.load_state(1, m, v), Catch::Contains("missing parameter 'stages.0.0.pwconv1.bias'"));
    m["stages.0.0.pwconv1.bias"] = tensor<double>({5}, 0.0);
    REQUIRE_THROWS_WITH(ob.load_state(1, m, v), Catch::Contains("shape"));
}

TEST_CASE("adamw: float parameters, large tensor (parallel path) matches the scalar formula", "[optim][adamw]")
{
    tensor<float> w = test::random_tensor<float>({300, 200}, 3), gw;
    param_list<float> l;
    add_param(l, "stages.1.0.pwconv2.weight", w, gw);
    gw = test::random_tensor<float>({300, 200}, 4);
    tensor<float> w0 = w;
    adamw_options o;
    o.weight_decay = 0.05;
    adamw<float> opt(l, o);
    opt.step(1e-3);
    double worst = 0;
    for (index_t k = 0; k < w.size(); ++k) {
        double g = gw[k];
        double expect = w0[k] * (1 - 1e-3 * 0.05) - 1e-3 * g / (std::fabs(g) + 1e-8);
        worst = std::max(worst, std::fabs(expect - w[k]));
    }
    REQUIRE(worst < 1e-6);
    opt.zero_grad();
    REQUIRE(gw[17] == 0.0f);
}

TEST_CASE("adamw: many float tensors with tails: one blocked loop matches the per-element formula, any thread count",
          "[optim][adamw]")
{
    // Sizes around the 16-element block: tails, a whole block, a 1-element tensor, a large one.
    const std::vector<index_t> sizes{5, 37, 16, 1, 40001, 33};  // 40001: the loop splits into tasks
    auto run = [&](int threads, std::vector<tensor<float>>& w, std::vector<tensor<float>>& g) {
        tbb::task_arena arena(threads);
        param_list<float> l;
        for (std::size_t i = 0; i < sizes.size(); ++i) {
            w.push_back(test::random_tensor<float>({sizes[i]}, 10 + static_cast<std::uint64_t>(i)));
            g.push_back(test::random_tensor<float>({sizes[i]}, 20 + static_cast<std::uint64_t>(i)));
        }
        for (std::size_t i = 0; i < sizes.size(); ++i)
            add_param(l, "p" + std::to_string(i) + ".weight", w[i], g[i], shape_t{sizes[i]});
        std::vector<param_group_info> groups(sizes.size());
        groups[1].decay = false;
        groups[2].lr_scale = 0.5;
        adamw_options o;
        o.weight_decay = 0.05;
        adamw<float> opt(l, groups, o);
        arena.execute([&] {
            opt.step(1e-2);
            for (auto& t : g)
                for (auto& x : t) x = -0.5f * x + 0.1f;
            opt.step(3e-3);
        });
    };
    std::vector<tensor<float>> w1, g1, w2, g2;
    run(1, w1, g1);
    run(2, w2, g2);
    // Reference: the same two steps element by element with the scalar formula (double math).
    double worst = 0;
    index_t differ = 0;  // elements where 1 and 2 threads disagree
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        tensor<float> w = test::random_tensor<float>({sizes[i]}, 10 + static_cast<std::uint64_t>(i));
        tensor<float> g = test::random_tensor<float>({sizes[i]}, 20 + static_cast<std::uint64_t>(i));
        std::vector<float> m(static_cast<std::size_t>(sizes[i]), 0.0f), v(m);
        for (int t = 1; t <= 2; ++t) {
            const double lr = (t == 1 ? 1e-2 : 3e-3) * (i == 2 ? 0.5 : 1.0);
            detail::adamw_coef c{0.9, 0.999, 1e-8, std::sqrt(1 - std::pow(0.999, t)), i == 1 ? 1.0 : 1 - lr * 0.05,
                                 lr / (1 - std::pow(0.9, t))};
            for (index_t k = 0; k < sizes[i]; ++k) {
                if (t == 2) g[k] = -0.5f * g[k] + 0.1f;
                detail::adamw_element(w[k], g[k], m[static_cast<std::size_t>(k)], v[static_cast<std::size_t>(k)], c);
            }
        }
        for (index_t k = 0; k < sizes[i]; ++k) {
            differ += w1[i][k] != w2[i][k];
            worst = std::max(worst, static_cast<double>(std::fabs(w1[i][k] - w[k])));
        }
    }
    REQUIRE(differ == 0);
    REQUIRE(worst < 1e-6);
}
