// BLOBD_ASSERT(cond, msg): a check of an invariant of our own code, on in every build type. When
// it fails it logs "assertion failed: <cond>: <msg> (file:line)" through base/log and aborts: a
// broken invariant means state no later step can trust. Never feed it anything that comes from
// input (the kernel, a source, a config file): input is answered with an error, not a crash.
// Any thread.
#pragma once

#include <string_view>

namespace blobd::detail {
[[noreturn]] void assert_failed(std::string_view cond, std::string_view msg, std::string_view file, int line) noexcept;
}  // namespace blobd::detail

#define BLOBD_ASSERT(cond, msg)                                                       \
    do {                                                                              \
        if (!(cond)) [[unlikely]] {                                                   \
            ::blobd::detail::assert_failed(#cond, (msg), __FILE__, __LINE__);         \
        }                                                                             \
    } while (0)
