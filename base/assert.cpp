#include "base/assert.hpp"

#include <cstdio>
#include <cstdlib>

namespace blobd::detail {

void assert_failed(const char* file, int line, const char* cond, const char* msg) noexcept {
    // Straight to stderr with the journald "critical" prefix: the logger may be what is broken.
    std::fprintf(stderr, "<2>erofs-blobd: %s:%d: assertion failed: %s (%s)\n", file, line, cond, msg);
    std::fflush(stderr);
    std::abort();
}

}  // namespace blobd::detail
