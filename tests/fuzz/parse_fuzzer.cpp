// libFuzzer target for the kernel message parser (clang: cmake -DBLOBD_FUZZ=ON, then
// build/bin/fuzz_parse -max_total_time=60). tests/unit/parse_fuzz_test.cpp replays mutated inputs
// through the same checks under g++ in every test run.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/parse_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::test::check_parse_invariants(std::span(reinterpret_cast<const std::byte*>(data), size));
    return 0;
}
