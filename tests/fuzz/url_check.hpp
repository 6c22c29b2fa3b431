// Fuzz check for URLs and redirects (protocol/http, protocol/oci): parse_url, resolve_location,
// masked_url, percent_encode, the blob URLs, registry_url_error and repository_error.
//
// Input: three lines, "<url>\n<Location value>\n<blob name or repository>" (fields() in
// fuzz_support.hpp). What must hold: every URL that parses is well formed (scheme, lower-case
// host, port, a path starting with '/', nothing a request line could not carry) and prints back
// to itself; a redirect that is not absolute keeps the base's origin and leaves no dot segments;
// masking hides the whole query; percent-encoding decodes back; the repository rule matches the
// OCI regular expression. Test code; any thread.
#pragma once

#include <regex>

#include "protocol/http/http_util.hpp"
#include "protocol/oci/oci_util.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace blobd::fuzz {

inline bool same_url(const http::url& a, const http::url& b) {
    return a.scheme == b.scheme && a.host == b.host && a.port == b.port && a.path == b.path && a.query == b.query &&
           a.has_query == b.has_query;
}

/// What every URL the parsers hand out must satisfy, whatever they were given.
inline void check_url_shape(const http::url& u) {
    FUZZ_REQUIRE(u.scheme == "http" || u.scheme == "https");
    FUZZ_REQUIRE(!u.host.empty());
    FUZZ_REQUIRE(u.host.find_first_of("/?#@[] ABCDEFGHIJKLMNOPQRSTUVWXYZ") == std::string::npos);
    FUZZ_REQUIRE(u.port != 0);
    FUZZ_REQUIRE(!u.path.empty() && u.path.front() == '/');
    FUZZ_REQUIRE(u.path.find_first_of("?#") == std::string::npos);
    FUZZ_REQUIRE(u.query.find('#') == std::string::npos);
    FUZZ_REQUIRE(u.has_query || u.query.empty());
    // The request line and the Host header are built from these: no space, control or non-ASCII.
    FUZZ_REQUIRE(printable_no_space(u.host) && printable_no_space(u.path) && printable_no_space(u.query));
    FUZZ_REQUIRE(u.redacted().find('?') == std::string::npos);
    FUZZ_REQUIRE(u.target() == (u.has_query ? u.path + "?" + u.query : u.path));
    auto again = http::parse_url(u.origin() + u.target());
    FUZZ_REQUIRE(again.has_value());
    FUZZ_REQUIRE(same_url(*again, u));
}

inline bool has_dot_segment(std::string_view path) {
    std::size_t i = 0;
    while (i <= path.size()) {
        const auto slash = path.find('/', i);
        const auto seg = path.substr(i, slash == std::string_view::npos ? std::string_view::npos : slash - i);
        if (seg == "." || seg == "..") return true;
        if (slash == std::string_view::npos) break;
        i = slash + 1;
    }
    return false;
}

inline std::optional<std::string> percent_decode(std::string_view s) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;  // percent_encode writes upper case only
    };
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

inline void check_percent_encode(std::string_view s) {
    const std::string e = http::percent_encode(s);
    for (char c : e) {
        const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                c == '-' || c == '.' || c == '_' || c == '~';
        FUZZ_REQUIRE(unreserved || c == '%');
    }
    auto d = percent_decode(e);
    FUZZ_REQUIRE(d && *d == s);
}

// The OCI distribution spec's rule, as its regular expression: the implementation walks it by
// hand, so the two are compared.
inline bool repository_ok_reference(std::string_view repo) {
    static const std::regex re("[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*)*");
    return repo.size() <= 255 && std::regex_match(repo.begin(), repo.end(), re);
}

inline void check_location(const http::url& base, std::string_view location) {
    auto r = http::resolve_location(base, location);
    if (!r) {
        FUZZ_REQUIRE(!r.error().empty());
        return;
    }
    check_url_shape(*r);
    // Only an absolute or scheme-relative Location ("//host/...") may leave the base's origin.
    if (r->scheme != base.scheme || r->host != base.host || r->port != base.port) {
        FUZZ_REQUIRE(location.find("//") != std::string_view::npos);
    } else if (location.find("//") == std::string_view::npos && location.find(':') == std::string_view::npos) {
        // A path reference is resolved (RFC 3986 5.2): no "." or ".." segment survives, unless
        // only the query changed and the base's own path is kept as it was.
        FUZZ_REQUIRE(!has_dot_segment(r->path) || r->path == base.path);
    }
}

inline void check_url(std::span<const std::uint8_t> in) {
    const auto f = fields(as_text(in), 3);
    const std::string_view text = f[0].value_or(""), location = f[1].value_or(""), name = f[2].value_or("");

    auto u = http::parse_url(text);
    if (u) {
        check_url_shape(*u);
        // No fragment anywhere, no userinfo in the authority (an '@' in the path is fine).
        FUZZ_REQUIRE(text.find('#') == std::string_view::npos);
        const auto rest = text.substr(text.find("://") + 3);
        FUZZ_REQUIRE(rest.substr(0, rest.find_first_of("/?")).find('@') == std::string_view::npos);
    } else {
        FUZZ_REQUIRE(!u.error().empty());
    }

    const auto masked = http::masked_url(text);
    if (const auto q = text.find('?'); q != std::string_view::npos) {
        FUZZ_REQUIRE(masked == std::string(text.substr(0, q)) + "?***");
    } else {
        FUZZ_REQUIRE(masked == text);
    }

    const auto reg = oci::registry_url_error(text);
    FUZZ_REQUIRE(reg.has_value() == (!u || u->has_query));

    // Redirects: against the URL itself when it parses, and against a typical registry blob URL.
    static const http::url registry = *http::parse_url("https://registry.example:5000/v2/lib/app/blobs/sha256:ab?n=1");
    check_location(registry, location);
    if (u) check_location(*u, location);

    check_percent_encode(name);
    const http::url& base = u ? *u : registry;
    const http::url blob = http::blob_url(base, name);
    check_url_shape(blob);
    std::string prefix = base.path;
    if (prefix.ends_with('/')) prefix.pop_back();
    FUZZ_REQUIRE(blob.path == prefix + "/" + http::percent_encode(name));
    FUZZ_REQUIRE(blob.query == base.query && blob.has_query == base.has_query);

    const auto repo_problem = oci::repository_error(name);
    FUZZ_REQUIRE(repo_problem.has_value() != repository_ok_reference(name));
    if (!repo_problem) {
        const http::url b = oci::blob_url(base, name, "0123456789abcdef");
        check_url_shape(b);
        FUZZ_REQUIRE(!b.has_query);
        FUZZ_REQUIRE(b.path == prefix + "/v2/" + std::string(name) + "/blobs/sha256:0123456789abcdef");
        FUZZ_REQUIRE(oci::pull_scope(name) == "repository:" + std::string(name) + ":pull");
    }
}

}  // namespace blobd::fuzz
