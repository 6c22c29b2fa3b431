// oci_util: the pure parts of the OCI registry fetcher (no sockets, no Asio, no I/O): blob names
// to digests and URLs, repository name rules, WWW-Authenticate parsing, token responses, docker
// auth files, Basic credentials. Deterministic and unit-tested (tests/unit/oci_util_test.cpp); the
// parsers take untrusted input (registry answers, auth files) and never throw or crash on it.
//
// Nothing here logs, and no error message contains a credential or a token.
//
// Threading: pure functions; any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "protocol/http/http_util.hpp"

namespace blobd::oci {

/// Why a repository name is not valid, or nothing when it is. The OCI distribution spec's rule:
/// path components of [a-z0-9]+ joined by one '.', '_', "__" or any number of '-', separated by
/// '/'; at most 255 characters.
std::optional<std::string> repository_error(std::string_view repo);

/// Why a registry or mirror base URL cannot be used, or nothing: it must parse (http::parse_url)
/// and carry no query string (blob URLs are built below its path).
std::optional<std::string> registry_url_error(std::string_view text);

/// The blob URL: `<base path without trailing '/'>/v2/<repository>/blobs/sha256:<hex>`.
http::url blob_url(const http::url& base, std::string_view repository, std::string_view hex);

/// The pull scope the fetcher asks tokens for: "repository:<repo>:pull".
std::string pull_scope(std::string_view repository);

/// One challenge of a WWW-Authenticate header (RFC 9110 section 11.6.1).
struct challenge {
    std::string scheme;                          ///< lower case: "bearer", "basic", ...
    std::map<std::string, std::string> params;   ///< names lower case; values unquoted and unescaped
    std::string token68;                         ///< when the challenge carries a token68 instead
    bool operator==(const challenge&) const = default;
};

/// Parses one WWW-Authenticate field value, which may hold several challenges
/// (`Bearer realm="a",service="b", Basic realm="c"`). Quoted strings may contain commas and
/// backslash escapes. Lenient and bounded: parsing stops at the first malformed element and the
/// challenges complete by then are returned; a duplicate parameter keeps its first value.
std::vector<challenge> parse_challenges(std::string_view value);

/// A bearer token from a token endpoint's JSON answer.
struct token_response {
    std::string token;                      ///< "token", else "access_token"
    std::uint32_t expires_in = 60;          ///< seconds; 60 when absent (the distribution spec's default)
    std::optional<std::int64_t> issued_at;  ///< Unix seconds, when given (RFC 3339)
};

/// Parses `{"token"|"access_token": "...", "expires_in": n, "issued_at": "RFC 3339"}`. The token
/// must be non-empty printable ASCII without spaces (it goes into a header); expires_in a positive
/// integer (capped at a day); issued_at, when present, an RFC 3339 time. Errors never echo the token.
result<token_response, std::string> parse_token_response(std::string_view body);

/// "2024-01-02T03:04:05Z", with optional fractional seconds and a "+hh:mm"/"-hh:mm" offset, as
/// Unix seconds. The day must exist in its month (no April 31st); a leap second (":60") counts as
/// the next second.
std::optional<std::int64_t> parse_rfc3339(std::string_view s);

/// How long a token may be used from now: its expires_in, less its age when issued_at is in the
/// past and within that lifetime (otherwise the clocks disagree and the age is ignored), less a
/// margin (a quarter of what remains, at most 10 s) so it is not used just as it expires.
std::chrono::milliseconds token_cache_time(const token_response& t, std::int64_t now_unix);

/// Registry credentials.
struct credentials {
    std::string username;
    std::string password;
    bool operator==(const credentials&) const = default;
};

/// A docker-style auth file (~/.docker/config.json): `{"auths": {"<host[:port]>": {"auth":
/// "base64(user:pass)"} | {"username": "u", "password": "p"}}}`. Keys are normalised (scheme and
/// path dropped, lower case), so "https://host:5000/v1/" works too. Entries with neither form
/// (identity tokens, credential helpers) are skipped; other top-level keys are ignored. Errors
/// name the entry, never its secret.
result<std::map<std::string, credentials>, std::string> parse_auth_file(std::string_view text);

/// The credentials an auth file holds for the origin of `u`: the entry for its authority
/// ("host" or "host:port" as written in URLs), else for "host:port" with the port spelled out.
std::optional<credentials> credentials_for(const std::map<std::string, credentials>& auths, const http::url& u);

/// "Basic base64(user:pass)".
std::string basic_authorization(const credentials& c);

std::string base64_encode(std::string_view in);
/// Standard alphabet, padding optional; whitespace or other characters are an error.
std::optional<std::string> base64_decode(std::string_view in);

/// The token request URL: the realm (an absolute http(s) URL, its own query kept) plus
/// "service=<service>" (when non-empty) and "scope=<scope>", percent-encoded.
result<http::url, std::string> token_url(std::string_view realm, std::string_view service, std::string_view scope);

}  // namespace blobd::oci
