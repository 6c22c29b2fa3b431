// BLOBD_ASSERT: checks an invariant of the program itself, in every build type. Never fed by
// input (kernel messages, config, network bytes): those get errors, not asserts. On failure it
// logs the file, line, condition and message, then aborts (a core dump beats serving corrupt
// state). Any thread.
#pragma once

namespace blobd::detail {
[[noreturn]] void assert_failed(const char* file, int line, const char* cond, const char* msg) noexcept;
}

#define BLOBD_ASSERT(cond, msg)                                                         \
    do {                                                                                \
        if (!(cond)) [[unlikely]] ::blobd::detail::assert_failed(__FILE__, __LINE__, #cond, msg); \
    } while (0)
