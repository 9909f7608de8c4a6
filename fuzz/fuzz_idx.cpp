// SPDX-License-Identifier: MIT
// Fuzz target: the IDX reader behind Fashion-MNIST (data/src/fashion_mnist.cpp), plain and
// gzip, as images (magic 2051) and as labels (magic 2049).
#include "fuzz_common.hpp"

#include <convnextv2/data/fashion_mnist.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace convnextv2;
    fuzz::mem_file f(data, size);
    for (std::uint32_t magic : {2051u, 2049u}) {
        try {
            idx_array a = read_idx(f.path, magic);
            std::size_t n = 1;
            for (index_t d : a.dims) n *= static_cast<std::size_t>(d);
            if (n != a.data.size()) std::abort();  // the header's size must be what was read
        } catch (const error& e) {
            fuzz::rejected(e);
        }
    }
    return 0;
}
