// SPDX-License-Identifier: MIT
// Fuzz target: the JSON recipe loader (io/recipe.hpp): parsing with comments, the typed and
// range-checked fields, the effective-recipe round trip, and one command-line override taken
// from the first line of the input ("key=value").
#include "fuzz_common.hpp"

#include <convnextv2/io/recipe.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace convnextv2;
    fuzz::mem_file f(data, size);
    try {
        recipe r = load_recipe(f.path);
        recipe back = recipe_from_json(to_json(r), "round trip");  // what a checkpoint stores must load again
        if (to_json(back) != to_json(r)) std::abort();
        (void)recipe_notes(r);
        (void)recipe_lr(r, 0.5 * r.epoch_size);
    } catch (const error& e) {
        fuzz::rejected(e);
    }
    const std::string text(reinterpret_cast<const char*>(data), size);
    const std::size_t eq = text.find('='), nl = text.find('\n');
    if (eq != std::string::npos && eq < nl) {
        recipe r;
        try {
            apply_override(r, text.substr(0, eq), text.substr(eq + 1, nl == std::string::npos ? std::string::npos : nl - eq - 1));
        } catch (const error& e) {
            fuzz::rejected(e);
        }
    }
    return 0;
}
