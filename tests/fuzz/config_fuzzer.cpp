// libFuzzer target: the JSON config, read with the daemon's table of source kinds.
// What is checked, and the input format: tests/fuzz/config_check.hpp. How to run: docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/config_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::fuzz::check_config({data, size});
    return 0;
}
