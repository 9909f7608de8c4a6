#include <convnextv2/core/parallel.hpp>
#include <convnextv2/core/rng.hpp>
#include <convnextv2/core/xtensor_interop.hpp>
#include <support/fixtures.hpp>

#include <tbb/task_arena.h>

#include <cstdio>
#include <filesystem>

using namespace convnextv2;

TEST_CASE("tensor: aligned storage, capacity reuse, views and reshape errors", "[core]")
{
    tensor<float> t({2, 3, 4, 5}, 1.5f);
    CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % tensor_alignment == 0);
    CHECK(t.size() == 120);
    CHECK(t.dim(-1) == 5);
    const float* before = t.data();
    t.resize({1, 3, 4, 5});  // smaller: same buffer, no allocation
    CHECK(t.data() == before);
    t.resize({2, 3, 4, 5});
    CHECK(t.data() == before);
    tensor<float> u({4, 2, 2, 1});
    for (index_t i = 0; i < u.size(); ++i) u[i] = static_cast<float>(i);
    auto v = u.batch_slice(2, 2);
    CHECK(v.shape == shape_t{2, 2, 2, 1});
    CHECK(v[0] == 8.f);
    v[0] = -1.f;
    CHECK(u[8] == -1.f);  // a view, not a copy
    REQUIRE_THROWS_WITH(u.reshape({3, 3}), Catch::Contains("cannot reshape (4, 2, 2, 1) to (3, 3)"));
    tensor<double> d = tensor_cast<double>(u);
    CHECK(d[9] == 9.0);
}

TEST_CASE("xtensor interop: no-copy adaptor, copy-in, and .npy round trip", "[core][xtensor]")
{
    auto t = test::random_tensor<float>({2, 3, 4}, 3);
    auto x = as_xtensor(t);
    CHECK(x.dimension() == 3);
    CHECK(x(1, 2, 3) == t[((1 * 3) + 2) * 4 + 3]);
    x(0, 0, 0) = 42.f;  // writes through to the tensor
    CHECK(t[0] == 42.f);
    xt::xtensor<float, 2> e = {{1.f, 2.f}, {3.f, 4.f}};
    tensor<float> c = from_xtensor<float>(e);
    CHECK(c.shape() == shape_t{2, 2});
    CHECK(c[3] == 4.f);
    const std::string path = (std::filesystem::temp_directory_path() / "convnextv2_interop.npy").string();
    save_npy_f32(path, t);
    tensor<float> back = load_npy_f32(path);
    CHECK(back.shape() == t.shape());
    CHECK(test::max_abs_diff(back, t) == 0);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    std::fputs("not a numpy file", f);
    std::fclose(f);
    REQUIRE_THROWS_WITH(load_npy_f32(path), Catch::Contains(path));
    std::remove(path.c_str());
}

TEST_CASE("parallel_chunks reductions are identical for 1 and 2 threads", "[core][parallel]")
{
    std::vector<double> data(100003);
    counter_rng rng(9, 1);
    for (auto& v : data) v = rng.uniform(-1, 1) * 1e6;
    auto reduce = [&] {
        const index_t chunk = 1000, nc = num_chunks(static_cast<index_t>(data.size()), chunk);
        std::vector<double> part(static_cast<std::size_t>(nc), 0.0);
        parallel_chunks(static_cast<index_t>(data.size()), chunk, [&](index_t c, index_t lo, index_t hi) {
            for (index_t i = lo; i < hi; ++i) part[static_cast<std::size_t>(c)] += data[static_cast<std::size_t>(i)];
        });
        double s = 0;
        for (double p : part) s += p;
        return s;
    };
    double one = 0, two = 0;
    tbb::task_arena(1).execute([&] { one = reduce(); });
    tbb::task_arena(2).execute([&] { two = reduce(); });
    CHECK(one == two);
}

TEST_CASE("counter_rng: reproducible streams and sane distributions", "[core][rng]")
{
    counter_rng a(5, 7), b(5, 7), c(5, 8);
    CHECK(a.next_u64() == b.next_u64());
    CHECK(a.next_u64() != c.next_u64());
    counter_rng r(1, 1);
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; ++i) {
        double v = r.normal();
        s += v;
        s2 += v * v;
    }
    CHECK(std::fabs(s / n) < 0.01);
    CHECK(std::fabs(s2 / n - 1.0) < 0.02);
}

TEST_CASE("max_threads reports a thread_limit cap", "[core][parallel]")
{
    const int before = max_threads();
    {
        thread_limit one(1);
        CHECK(max_threads() == 1);
    }
    CHECK(max_threads() == before);
}
