// Fuzz check for RFC 3339 times (oci::parse_rfc3339, the token answers' "issued_at").
//
// Input: the time text, raw. What must hold: the parser accepts exactly RFC 3339's date-time
// (section 5.6: four-digit year, month 01-12, a day that exists in that month, hours 00-23,
// minutes 00-59, seconds 00-60, optional fraction, "Z" or a +hh:mm/-hh:mm offset; 't' and 'z' in
// either case) and yields the same Unix seconds as glibc's timegm, a second implementation; a
// result prints back (format_utc) to the same instant. Test code; any thread.
#pragma once

#include <ctime>

#include "protocol/oci/oci_util.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace blobd::fuzz {

inline std::optional<std::int64_t> rfc3339_reference(std::string_view s) {
    auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
        if (at + n > s.size()) return std::nullopt;
        int v = 0;
        for (std::size_t i = at; i < at + n; ++i) {
            if (s[i] < '0' || s[i] > '9') return std::nullopt;
            v = v * 10 + (s[i] - '0');
        }
        return v;
    };
    auto at = [&](std::size_t i, std::string_view any) { return i < s.size() && any.find(s[i]) != any.npos; };
    const auto Y = digits(0, 4), M = digits(5, 2), D = digits(8, 2), h = digits(11, 2), m = digits(14, 2),
               sec = digits(17, 2);
    if (!Y || !M || !D || !h || !m || !sec || !at(4, "-") || !at(7, "-") || !at(10, "Tt") || !at(13, ":") ||
        !at(16, ":")) {
        return std::nullopt;
    }
    const bool leap = (*Y % 4 == 0 && *Y % 100 != 0) || *Y % 400 == 0;
    static constexpr int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (*M < 1 || *M > 12) return std::nullopt;
    const int month_days = mdays[*M - 1] + (*M == 2 && leap ? 1 : 0);
    if (*D < 1 || *D > month_days || *h > 23 || *m > 59 || *sec > 60) return std::nullopt;
    std::size_t i = 19;
    if (at(i, ".")) {
        const std::size_t start = ++i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == start) return std::nullopt;
    }
    std::int64_t offset = 0;
    if (at(i, "Zz")) {
        ++i;
    } else if (at(i, "+-")) {
        const auto oh = digits(i + 1, 2), om = digits(i + 4, 2);
        if (!oh || !om || !at(i + 3, ":") || *oh > 23 || *om > 59) return std::nullopt;
        offset = (*oh * 3600 + *om * 60) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return std::nullopt;
    }
    if (i != s.size()) return std::nullopt;
    std::tm tm{};
    tm.tm_year = *Y - 1900;
    tm.tm_mon = *M - 1;
    tm.tm_mday = *D;
    tm.tm_hour = *h;
    tm.tm_min = *m;
    tm.tm_sec = *sec;  // 60 (a leap second) normalises to the next minute, as the parser counts it
    return static_cast<std::int64_t>(timegm(&tm)) - offset;
}

inline void check_rfc3339_value(std::string_view s) {
    const auto t = oci::parse_rfc3339(s);
    FUZZ_REQUIRE(t == rfc3339_reference(s));
    if (!t) return;
    if (const auto printed = format_utc(*t)) FUZZ_REQUIRE(oci::parse_rfc3339(*printed) == t);
}

inline void check_rfc3339(std::span<const std::uint8_t> in) { check_rfc3339_value(as_text(in)); }

}  // namespace blobd::fuzz
