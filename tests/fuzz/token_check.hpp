// Fuzz check for token endpoint answers (oci::parse_token_response) and how long a token is
// cached (oci::token_cache_time).
//
// Input: the answer's body, raw (JSON, or not). What must hold: a token is non-empty printable
// ASCII without spaces; expires_in is 1..86400; issued_at is there exactly when the answer had a
// valid one; the answer printed back as JSON parses to the same token; the cache time is never
// negative nor longer than the token lives, and follows the rule in oci_util.hpp; an error is one
// of the parser's fixed messages (no byte of the answer in it). Test code; any thread.
#pragma once

#include <algorithm>
#include <iterator>

#include <nlohmann/json.hpp>

#include "protocol/oci/oci_util.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/rfc3339_check.hpp"

namespace blobd::fuzz {

inline void check_cache_time(const oci::token_response& t, std::int64_t now) {
    const auto ms = oci::token_cache_time(t, now).count();
    std::int64_t life = std::int64_t{t.expires_in} * 1000;
    if (t.issued_at && *t.issued_at <= now && now - *t.issued_at < t.expires_in) life -= (now - *t.issued_at) * 1000;
    FUZZ_REQUIRE(ms >= 0 && ms <= std::int64_t{t.expires_in} * 1000);
    FUZZ_REQUIRE(ms == life - std::min<std::int64_t>(life / 4, 10'000));
}

inline void check_token_body(std::string_view body) {
    using json = nlohmann::json;
    const auto t = oci::parse_token_response(body);
    const json j = json::parse(body.begin(), body.end(), nullptr, false);
    if (!t) {
        // No byte of the answer reaches the message (so no token can leak into a log): it is one of
        // these fixed texts. (Checking that the token is not in the message cannot work: the
        // fuzzer found a token made of the message's own words.)
        static const std::string fixed[] = {
            "token answer is not JSON",
            "token answer is not a JSON object",
            "token answer: \"token\" is not a string",
            "token answer: \"access_token\" is not a string",
            "token answer: \"token\" has characters not allowed in a header",
            "token answer: \"access_token\" has characters not allowed in a header",
            "token answer has no \"token\" or \"access_token\"",
            "token answer: \"expires_in\" is not an integer",
            "token answer: \"issued_at\" is not a string",
            "token answer: \"issued_at\" is not an RFC 3339 time",
        };
        FUZZ_REQUIRE(std::find(std::begin(fixed), std::end(fixed), t.error()) != std::end(fixed));
        return;
    }
    FUZZ_REQUIRE(j.is_object());
    FUZZ_REQUIRE(!t->token.empty() && printable_no_space(t->token));
    FUZZ_REQUIRE(t->expires_in >= 1 && t->expires_in <= 86400);
    auto issued = j.find("issued_at");
    FUZZ_REQUIRE(t->issued_at.has_value() == (issued != j.end() && !issued->is_null()));
    if (t->issued_at) {
        FUZZ_REQUIRE(issued->is_string());
        check_rfc3339_value(issued->get_ref<const std::string&>());
        FUZZ_REQUIRE(t->issued_at == oci::parse_rfc3339(issued->get_ref<const std::string&>()));
    }

    json again = {{"token", t->token}, {"expires_in", t->expires_in}};
    if (t->issued_at) {
        if (auto s = format_utc(*t->issued_at)) again["issued_at"] = *s;
    }
    const auto t2 = oci::parse_token_response(again.dump());
    FUZZ_REQUIRE(t2 && t2->token == t->token && t2->expires_in == t->expires_in);
    if (again.contains("issued_at")) FUZZ_REQUIRE(t2->issued_at == t->issued_at);

    // Now: the Unix epoch, this decade, and around the token's own issue time and expiry (years
    // 0000-9999 only, so the arithmetic stays far from overflow, as with any real clock).
    std::vector<std::int64_t> nows = {0, 1'700'000'000};
    if (t->issued_at) {
        for (std::int64_t d : {-1, 0, 1, 59, 60, 61}) nows.push_back(*t->issued_at + d);
        for (std::int64_t d : {-1, 0, 1}) nows.push_back(*t->issued_at + t->expires_in + d);
    }
    for (std::int64_t now : nows) check_cache_time(*t, now);
}

inline void check_token(std::span<const std::uint8_t> in) { check_token_body(as_text(in)); }

}  // namespace blobd::fuzz
