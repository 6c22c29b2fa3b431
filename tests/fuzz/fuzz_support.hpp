// Helpers shared by the fuzz checks (tests/fuzz/*_check.hpp): failing a check with a message,
// splitting an input into text fields, lenient numbers, and an independent UTC formatter for the
// time round trips. Used by the libFuzzer targets (clang) and by their replay under g++
// (tests/unit/fuzz_corpus_test.cpp); test code only, header-only, any thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace blobd::fuzz {

/// What the replay test (tests/unit/fuzz_corpus_test.cpp) is checking, for the failure message;
/// empty under libFuzzer, which saves the input itself.
inline std::string& input_name() {
    static std::string name;
    return name;
}

/// Stops the run with the failed condition, where it is, and the input's name (when the replay
/// test set one): a broken invariant is a finding, like a crash.
[[noreturn]] inline void failed(const char* cond, const char* file, int line) {
    std::fprintf(stderr, "fuzz check failed: %s (%s:%d)%s%s\n", cond, file, line,
                 input_name().empty() ? "" : " on input ", input_name().c_str());
    std::abort();
}

#define FUZZ_REQUIRE(cond)                                                      \
    do {                                                                        \
        if (!(cond)) ::blobd::fuzz::failed(#cond, __FILE__, __LINE__);          \
    } while (0)

inline std::string_view as_text(std::span<const std::uint8_t> in) {
    return {reinterpret_cast<const char*>(in.data()), in.size()};
}

/// The first `n - 1` lines of `text` (without their '\n') and the rest as the last field; missing
/// fields are absent. How the multi-field targets read their inputs (see docs/fuzzing.md).
inline std::vector<std::optional<std::string_view>> fields(std::string_view text, std::size_t n) {
    std::vector<std::optional<std::string_view>> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (text.empty() && i > 0) break;
        if (i + 1 == n) {
            out[i] = text;
            break;
        }
        const auto nl = text.find('\n');
        out[i] = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (nl == std::string_view::npos) break;
    }
    return out;
}

/// A field as an optional header value: absent, or "-" alone, means no such header.
inline std::optional<std::string_view> header(const std::optional<std::string_view>& f) {
    if (!f || *f == "-") return std::nullopt;
    return f;
}

/// Leading decimal digits as a number, saturating at the maximum; no digits is 0 (or `fallback`).
inline std::uint64_t number(const std::optional<std::string_view>& f, std::uint64_t fallback = 0) {
    if (!f || f->empty() || (*f)[0] < '0' || (*f)[0] > '9') return fallback;
    std::uint64_t v = 0;
    for (char c : *f) {
        if (c < '0' || c > '9') break;
        const unsigned d = static_cast<unsigned>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return UINT64_MAX;
        v = v * 10 + d;
    }
    return v;
}

/// Unix seconds as "YYYY-MM-DDTHH:MM:SSZ", for years 0000..9999 (else nothing). Civil-from-days
/// after Howard Hinnant, written independently of protocol/oci so the round trips test something.
inline std::optional<std::string> format_utc(std::int64_t t) {
    constexpr std::int64_t min_t = -62167219200;  // 0000-01-01T00:00:00Z
    constexpr std::int64_t max_t = 253402300799;  // 9999-12-31T23:59:59Z
    if (t < min_t || t > max_t) return std::nullopt;
    std::int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        --days;
    }
    days += 719468;
    const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const std::int64_t doe = days - era * 146097;
    const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const std::int64_t mp = (5 * doy + 2) / 153;
    const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
    const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
    char buf[64];  // room for any int64 fields, though the years are 0000..9999 here
    std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", static_cast<long long>(y),
                  static_cast<long long>(m), static_cast<long long>(d), static_cast<long long>(secs / 3600),
                  static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
    return std::string(buf);
}

/// Printable ASCII without space: what may go into a request line or a header value.
inline bool printable_no_space(std::string_view s) {
    for (char c : s) {
        if (c <= 0x20 || c >= 0x7f) return false;
    }
    return true;
}

}  // namespace blobd::fuzz
