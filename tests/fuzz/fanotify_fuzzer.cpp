// libFuzzer target: fanotify event runs.
// What is checked, and the input format: tests/fuzz/fanotify_check.hpp. How to run: docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fanotify_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::fuzz::check_fanotify({data, size});
    return 0;
}
