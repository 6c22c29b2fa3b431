// libFuzzer target: token endpoint answers (JSON) and their cache time.
// What is checked, and the input format: tests/fuzz/token_check.hpp. How to run: docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/token_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::fuzz::check_token({data, size});
    return 0;
}
