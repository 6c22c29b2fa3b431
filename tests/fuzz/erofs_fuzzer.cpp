// libFuzzer target: erofs bootstraps (superblock and device table).
// What is checked, and the input format: tests/fuzz/erofs_check.hpp. How to run: docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/erofs_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::fuzz::check_erofs({data, size});
    return 0;
}
