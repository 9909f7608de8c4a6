// SPDX-License-Identifier: MIT
// Umbrella header: everything public in the core library (no image decoding, no MPI).
#pragma once
#include "version.hpp"
#include "core/config.hpp"
#include "core/parallel.hpp"
#include "core/rng.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "compose/repeat.hpp"
#include "compose/residual.hpp"
#include "compose/sequential.hpp"
#include "layers/concepts.hpp"
#include "models/convnextv2.hpp"
#include "models/variants.hpp"
#include "io/safetensors.hpp"
#include "io/weights.hpp"
#include "kernels/cross_entropy.hpp"
