// libFuzzer target: mountinfo and the fanotify handoff state.
// What is checked, and the input format: tests/fuzz/handoff_check.hpp. How to run: docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/handoff_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::fuzz::check_handoff({data, size});
    return 0;
}
