// scripts/tsan.sh self-check: with the suppressions in scripts/tsan.supp, ThreadSanitizer must
// still report a race inside a parallel_for body (argv[1] == "race") and nothing for the same
// loop without it (writes in workers read by the caller after the join).
#include <convnextv2/core/parallel.hpp>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv)
{
    const bool race = argc > 1 && std::strcmp(argv[1], "race") == 0;
    tbb::task_arena arena(2);
    long shared = 0;
    std::vector<float> v(1 << 16, 1.f);
    for (int rep = 0; rep < 200; ++rep)
        arena.execute([&] {
            convnextv2::parallel_for(0, 1 << 16, 1024, [&](convnextv2::index_t a, convnextv2::index_t b) {
                for (auto i = a; i < b; ++i) v[static_cast<std::size_t>(i)] *= 1.0001f;
                if (race) shared += b - a;  // unsynchronised read-modify-write from every worker
            });
        });
    std::printf("%ld %f\n", shared, static_cast<double>(v[5]));
    return 0;
}
