// http_util: the pure parts of the HTTP fetcher (no sockets, no Asio): URL parsing and joining,
// Content-Range / Content-Length parsing, and the checks that decide whether a response may be
// used. Everything here is deterministic and unit-tested (tests/unit/http_util_test.cpp).
//
// Errors are an errno the fetcher reports (`err`, negative) plus a short explanation for the log
// (`what`). Explanations never contain a URL's query string.
//
// Threading: pure functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace blobd::http {

/// A problem with a response (or a URL): the negative errno to report and why, for the log.
struct failure {
    int err;
    std::string what;
};

/// An absolute http(s) URL, split. Only what the fetcher needs: no userinfo (refused), no
/// fragment (dropped from redirects, refused in configs).
struct url {
    std::string scheme;      ///< "http" or "https" (lower case)
    std::string host;        ///< lower case; an IPv6 literal without its brackets
    std::uint16_t port = 0;  ///< explicit or the scheme's default
    std::string path = "/";  ///< starts with '/'; percent-encoded as given
    std::string query;       ///< without the '?'; empty when absent (may carry tokens: never logged)
    bool has_query = false;  ///< "?" present (even if empty)

    bool tls() const { return scheme == "https"; }
    bool default_port() const { return port == (tls() ? 443 : 80); }
    bool host_is_ip() const;
    /// "host" or "host:port" (IPv6 in brackets): the Host header and the pool key's host part.
    std::string authority() const;
    /// "scheme://authority": connections are pooled per origin.
    std::string origin() const { return scheme + "://" + authority(); }
    /// The request target: path plus "?query" when present.
    std::string target() const { return has_query ? path + "?" + query : path; }
    /// "scheme://authority/path": what logs and describe() show; never the query.
    std::string redacted() const { return origin() + path; }
};

/// Parses an absolute http:// or https:// URL. The error explains what is wrong (for config
/// messages). Refused: other schemes, an empty host, userinfo ("user:pass@"), a fragment, a port
/// outside 1..65535, spaces, control and non-ASCII characters.
result<url, std::string> parse_url(std::string_view text);

/// A forward proxy (a source's "proxy" key): "http://[user:password@]host[:port][/]". https
/// origins are reached through it with CONNECT (a tunnel: TLS end to end with the origin), http
/// origins with absolute-form requests. The credentials, taken literally (no percent-decoding),
/// become a `Proxy-Authorization: Basic` value, sent to the proxy only.
struct proxy {
    std::string host;            ///< lower case; an IPv6 literal without its brackets
    std::uint16_t port = 80;     ///< explicit or 80
    std::string authorization;   ///< "Basic base64(user:password)", or "" without credentials
    std::string shown;           ///< "http://[user:***@]host:port": for logs and --check-config
};
/// Parses a proxy URL. The error explains what is wrong and never repeats the password.
result<proxy, std::string> parse_proxy(std::string_view text);
/// The proxy URL as --check-config prints it: the password replaced by "***" (text that does not
/// parse: "***" as a whole, as it may hold one).
std::string masked_proxy(std::string_view text);

/// The URL a redirect's Location value points to, resolved against the URL that answered (RFC 3986
/// section 5.2: absolute, scheme-relative "//host/p", absolute-path "/p", relative "p", "?q").
/// A fragment is dropped.
result<url, std::string> resolve_location(const url& base, std::string_view location);

/// A URL as configs and logs may show it: a query string (signed URLs carry their secret there)
/// replaced by "***", the rest as given. Userinfo never gets this far (parse_url refuses it).
std::string masked_url(std::string_view text);

/// Percent-encodes every byte outside RFC 3986's unreserved set (ALPHA DIGIT - . _ ~).
std::string percent_encode(std::string_view s);

/// The blob URL: the base URL's path (one trailing '/' dropped) + "/" + percent-encoded name; the
/// base's query string, if any, is kept after the name.
url blob_url(const url& base, std::string_view name);

/// A Content-Range value: "bytes first-last/complete", "bytes first-last/*" or "bytes */complete".
struct content_range {
    bool has_range = false;
    std::uint64_t first = 0, last = 0;   ///< inclusive, when has_range
    std::optional<std::uint64_t> complete;  ///< the full length, when not "*"
};
/// Strict parse (RFC 9110 section 14.4): first <= last < complete; nothing else is accepted.
std::optional<content_range> parse_content_range(std::string_view value);

/// A Content-Length value: decimal digits only, no overflow.
std::optional<std::uint64_t> parse_content_length(std::string_view value);

/// The Range header value for [off, off+len): "bytes=off-(off+len-1)". len must be > 0.
std::string range_header(std::uint64_t off, std::uint64_t len);

bool is_redirect(unsigned status);
/// A Content-Encoding value that leaves bytes as they are: empty or "identity".
bool is_identity_encoding(std::string_view content_encoding);
/// Worth another attempt: 5xx. 4xx (and everything else) is final.
bool is_retryable_status(unsigned status);
/// The errno for a final error status: 404/410 -ENOENT, 401/403 -EACCES, anything else -EIO.
int status_errno(unsigned status);

/// How to consume the body of a response to a range GET for [off, off+len).
struct body_plan {
    std::uint64_t skip = 0;               ///< body bytes before the wanted range (200 only)
    std::uint64_t take = 0;               ///< == len
    std::optional<std::uint64_t> total;   ///< the exact body length required, when known up front
    std::uint64_t limit = 0;              ///< more body bytes than this: reject while reading
};

/// Decides, from the status line and headers alone, whether a response to `Range: bytes=off-
/// (off+len-1)` may be used and how its body maps onto the range:
///   - 206: Content-Range must be exactly "bytes off-(off+len-1)/N" (N may be "*"; if known_size
///     is given, N must equal it); Content-Length, if sent, must equal len.
///   - 200 (server ignored the Range): the body is the whole blob. Its length (Content-Length, or
///     counted while reading) must equal known_size when given, cover [off, off+len), and not
///     exceed body_limit.
///   - anything else: an error (status_errno); redirects and retries are the caller's business.
/// `content_encoding` other than identity is refused: bytes must arrive as stored.
result<body_plan, failure> plan_range_body(unsigned status, std::optional<std::string_view> content_range,
                                           std::optional<std::string_view> content_length,
                                           std::optional<std::string_view> content_encoding, std::uint64_t off,
                                           std::uint64_t len, std::optional<std::uint64_t> known_size,
                                           std::uint64_t body_limit);

/// After the body: `received` bytes arrived in all. Checks them against the plan (exact total,
/// range covered).
result<bool, failure> check_body_end(const body_plan& plan, std::uint64_t received);

/// The blob size from a successful HEAD (2xx): its Content-Length, or nothing (then probe with a
/// range GET).
std::optional<std::uint64_t> size_from_head(unsigned status, std::optional<std::string_view> content_length);

/// The blob size from the answer to a `Range: bytes=0-0` GET: 206 with "bytes 0-0/N", 200 with a
/// Content-Length, or 416 with "bytes */N" (an empty blob).
result<std::uint64_t, failure> size_from_probe(unsigned status, std::optional<std::string_view> content_range,
                                               std::optional<std::string_view> content_length);

/// Exponential backoff before retry number `attempt` (1-based): base * 2^(attempt-1), capped.
std::uint64_t backoff_ms(std::uint64_t base_ms, unsigned attempt, std::uint64_t cap_ms = 5000);

}  // namespace blobd::http
