// libFuzzer target: RFC 3339 times.
// What is checked, and the input format: tests/fuzz/rfc3339_check.hpp. How to run: docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/rfc3339_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::fuzz::check_rfc3339({data, size});
    return 0;
}
