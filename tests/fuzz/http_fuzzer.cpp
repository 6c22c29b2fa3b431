// libFuzzer target: HTTP responses as the client reads them (Beast's header parser with the
// client's limits; Content-Range/Length, body plans, sizes, redirects, challenges).
// What is checked, and the input format: tests/fuzz/http_check.hpp. How to run: docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/http_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    blobd::fuzz::check_http({data, size});
    return 0;
}
