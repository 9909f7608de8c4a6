// SPDX-License-Identifier: MIT
// Shared by the fuzz targets: an in-memory file (memfd) for readers that take a path, and the
// tiny model whose parameter list the weight and checkpoint loaders are fuzzed against.
#pragma once
#include <convnextv2/models/convnextv2.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

namespace fuzz {

// The bytes as a file at /proc/self/fd/N (no disk I/O; removed when the object dies).
struct mem_file {
    int fd = -1;
    std::string path;
    mem_file(const std::uint8_t* data, std::size_t size)
    {
        fd = ::memfd_create("convnextv2_fuzz", MFD_CLOEXEC);
        if (fd < 0) std::abort();
        std::size_t done = 0;
        while (done < size) {
            ssize_t w = ::write(fd, data + done, size - done);
            if (w <= 0) std::abort();
            done += static_cast<std::size_t>(w);
        }
        path = "/proc/self/fd/" + std::to_string(fd);
    }
    ~mem_file() { ::close(fd); }
    mem_file(const mem_file&) = delete;
    mem_file& operator=(const mem_file&) = delete;
};

// depths 1,1,1,1, dims 2,2,2,4, 1 input channel, 3 classes: every parameter kind, few bytes.
inline convnextv2::model_config tiny_config()
{
    convnextv2::model_config c;
    c.name = "fuzz_tiny";
    c.depths = {1, 1, 1, 1};
    c.dims = {2, 2, 2, 4};
    c.in_chans = 1;
    c.num_classes = 3;
    return c;
}

// A clean rejection (convnextv2::error); printed when CONVNEXTV2_FUZZ_VERBOSE is set, so one
// can check which seeds reach the success path.
inline void rejected(const std::exception& e)
{
    static const bool verbose = std::getenv("CONVNEXTV2_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "  rejected: %s\n", e.what());
}

} // namespace fuzz
