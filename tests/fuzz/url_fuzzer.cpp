// libFuzzer target: URLs and redirects (parse_url, resolve_location, blob URLs, repository names).
// What is checked, and the input format: tests/fuzz/url_check.hpp. How to run: docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/url_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::fuzz::check_url({data, size});
    return 0;
}
