// libFuzzer target: WWW-Authenticate challenges and the token URLs they lead to.
// What is checked, and the input format: tests/fuzz/challenge_check.hpp. How to run: docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/challenge_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::fuzz::check_challenge({data, size});
    return 0;
}
