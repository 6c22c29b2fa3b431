// libFuzzer target: docker auth files (config.json), base64, Basic credentials.
// What is checked, and the input format: tests/fuzz/auth_file_check.hpp. How to run: docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/auth_file_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::fuzz::check_auth_file({data, size});
    return 0;
}
