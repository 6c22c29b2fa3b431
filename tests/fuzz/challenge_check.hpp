// Fuzz check for WWW-Authenticate values (oci::parse_challenges) and the token request URL a
// bearer challenge leads to (oci::token_url), as the OCI fetcher uses them.
//
// Input: one WWW-Authenticate field value, raw. What must hold: schemes and parameter names are
// non-empty lower-case tokens; a challenge has a token68 or parameters, not both; printing the
// challenges back (parameters quoted and escaped) parses to the same challenges; a bearer realm
// that is a URL yields a token URL that keeps the realm's query and appends service and scope,
// percent-encoded. Test code; any thread.
#pragma once

#include <string>
#include <vector>

#include "protocol/oci/oci_util.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/url_check.hpp"

namespace blobd::fuzz {

inline bool is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

inline bool lower_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        if (!is_tchar(c) || (c >= 'A' && c <= 'Z')) return false;
    }
    return true;
}

/// The challenges as one field value, every parameter value quoted (RFC 9110 quoted-string).
inline std::string print_challenges(const std::vector<oci::challenge>& cs) {
    std::string out;
    for (const auto& c : cs) {
        if (!out.empty()) out += ", ";
        out += c.scheme;
        if (!c.token68.empty()) {
            out += " " + c.token68;
            continue;
        }
        bool first = true;
        for (const auto& [name, value] : c.params) {
            out += first ? " " : ", ";
            first = false;
            out += name + "=\"";
            for (char ch : value) {
                if (ch == '"' || ch == '\\') out += '\\';
                out += ch;
            }
            out += '"';
        }
    }
    return out;
}

inline void check_token_url(const oci::challenge& c) {
    const auto realm = c.params.find("realm");
    if (realm == c.params.end()) return;
    const auto service = c.params.find("service");
    const std::string sv = service == c.params.end() ? "" : service->second;
    const std::string scope = "repository:library/app:pull";
    auto u = oci::token_url(realm->second, sv, scope);
    auto realm_url = http::parse_url(realm->second);
    FUZZ_REQUIRE(u.has_value() == realm_url.has_value());
    if (!u) return;
    check_url_shape(*u);
    FUZZ_REQUIRE(u->has_query);
    std::string q = realm_url->query;
    if (!q.empty() && !q.ends_with('&')) q += '&';
    if (!sv.empty()) q += "service=" + http::percent_encode(sv) + "&";
    q += "scope=repository%3Alibrary%2Fapp%3Apull";
    FUZZ_REQUIRE(u->query == q);
    FUZZ_REQUIRE(u->scheme == realm_url->scheme && u->host == realm_url->host && u->path == realm_url->path);
}

inline void check_challenge_value(std::string_view value) {
    const auto cs = oci::parse_challenges(value);
    FUZZ_REQUIRE(cs.size() <= value.size());
    for (const auto& c : cs) {
        FUZZ_REQUIRE(lower_token(c.scheme));
        FUZZ_REQUIRE(c.token68.empty() || c.params.empty());
        for (const auto& [name, v] : c.params) FUZZ_REQUIRE(lower_token(name));
        if (c.scheme == "bearer") check_token_url(c);
    }
    const std::string printed = print_challenges(cs);
    FUZZ_REQUIRE(oci::parse_challenges(printed) == cs);
}

inline void check_challenge(std::span<const std::uint8_t> in) { check_challenge_value(as_text(in)); }

}  // namespace blobd::fuzz
