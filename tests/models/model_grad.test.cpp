#include <convnextv2/models/convnextv2.hpp>
#include <convnextv2/testing/gradcheck.hpp>
#include <support/fixtures.hpp>

using namespace convnextv2;

TEST_CASE("whole-model backward (derived by composition) passes a gradient check in double", "[models][gradcheck]")
{
    model_config c;
    c.depths = {1, 1, 2, 1};
    c.dims = {4, 8, 8, 12};
    c.num_classes = 3;
    c.drop_path_rate = 0.3;
    convnextv2_model<double> m(c, 7);
    m.set_training(true);  // drop path active, decisions fixed for the step
    m.set_step(3);
    testing::gradcheck_options o;
    o.max_checks_per_tensor = 12;
    o.param_scale = 0.3;
    o.rtol = 1e-4;
    counter_rng rng(1, 2);
    tensor<double> x({2, 32, 64, 3});
    for (auto& v : x) v = rng.uniform(-1, 1);
    REQUIRE_GRADCHECK(testing::check_gradients(m.net(), x, o));
}

TEST_CASE("gradient buffers are borrowed from the pool: few, reused across steps, same gradients", "[models][grad_pool]")
{
    model_config c;
    c.depths = {2, 2, 3, 2};
    c.dims = {8, 16, 24, 32};
    c.num_classes = 5;
    c.drop_path_rate = 0.2;
    convnextv2_model<float> m(c, 3);
    m.set_training(true);
    m.set_step(1);
    auto& pool = grad_pool<float>::local();
    pool.clear();
    counter_rng rng(4, 4);
    tensor<float> x({2, 32, 32, 3});
    for (auto& v : x) v = rng.uniform(-1, 1);
    tensor<float> y, dy;
    auto params = m.params();
    auto step = [&] {
        zero_grads(params);
        m.net().forward(x, y);
        dy.resize_like(y);
        for (index_t i = 0; i < dy.size(); ++i) dy[i] = static_cast<float>(i % 7) * 0.1f - 0.3f;
        m.net().backward(dy, nullptr);
        std::vector<float> g;
        for (auto& p : params) g.insert(g.end(), p.grad->begin(), p.grad->end());
        return g;
    };
    const auto g1 = step();
    const std::size_t buffers = pool.buffers_free(), bytes = pool.bytes_free();
    // Keeping one buffer per intermediate gradient would need dozens here (several per block);
    // borrowing needs only those live at once: an input and an output gradient at each level of
    // nesting (model, stage, block chain, residual, block).
    CHECK(buffers >= 3);
    CHECK(buffers <= 8);
    const auto g2 = step();
    CHECK(pool.buffers_free() == buffers);  // steady state: nothing new allocated
    CHECK(pool.bytes_free() == bytes);
    REQUIRE(g1.size() == g2.size());
    for (std::size_t i = 0; i < g1.size(); ++i) REQUIRE(g1[i] == g2[i]);  // reused buffers start at zero
}
