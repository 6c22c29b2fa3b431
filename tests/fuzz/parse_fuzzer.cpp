// libFuzzer target: kernel messages (proto::parse, and what the engine derives from an OPEN).
// What is checked: tests/fuzz/parse_invariants.hpp. How to run: docs/fuzzing.md.
// tests/unit/parse_fuzz_test.cpp replays mutated messages through the same checks under g++.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/parse_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::test::check_parse_invariants(std::span(reinterpret_cast<const std::byte*>(data), size));
    return 0;
}
