// Unit tests of the HTTP fetcher's pure rules (protocol/http/http_util): URL parsing and joining,
// redirect resolution, Content-Range/Content-Length parsing and the response checks that decide
// whether bytes may be used. No sockets.
#include "protocol/http/http_util.hpp"

#include <cerrno>
#include <limits>

#include <catch2/catch.hpp>

using namespace blobd::http;

namespace {

url must_parse(const std::string& text) {
    auto u = parse_url(text);
    INFO("url: " << text);
    if (!u) FAIL("unexpected error: " << u.error());
    return *u;
}

std::string resolved(const std::string& base, const std::string& location) {
    auto u = resolve_location(must_parse(base), location);
    if (!u) return "error: " + u.error();
    return u->origin() + u->target();
}

using sv = std::string_view;
constexpr std::uint64_t limit = 64 << 20;

}  // namespace

TEST_CASE("parse_url splits http and https URLs", "[http]") {
    // Description: scheme and host are lower-cased, default ports filled in, path defaults to "/",
    // query kept apart (and out of redacted()), IPv6 literals lose their brackets.
    auto u = must_parse("HTTPS://Blobs.Example.COM/v2/x?token=abc");
    CHECK(u.scheme == "https");
    CHECK(u.host == "blobs.example.com");
    CHECK(u.port == 443);
    CHECK(u.path == "/v2/x");
    CHECK(u.query == "token=abc");
    CHECK(u.has_query);
    CHECK(u.tls());
    CHECK(u.authority() == "blobs.example.com");
    CHECK(u.origin() == "https://blobs.example.com");
    CHECK(u.target() == "/v2/x?token=abc");
    CHECK(u.redacted() == "https://blobs.example.com/v2/x");

    auto p = must_parse("http://127.0.0.1:8080");
    CHECK(p.port == 8080);
    CHECK(p.path == "/");
    CHECK_FALSE(p.has_query);
    CHECK(p.authority() == "127.0.0.1:8080");
    CHECK(p.host_is_ip());
    CHECK_FALSE(p.tls());

    auto v6 = must_parse("https://[::1]:8443/b?");
    CHECK(v6.host == "::1");
    CHECK(v6.port == 8443);
    CHECK(v6.host_is_ip());
    CHECK(v6.authority() == "[::1]:8443");
    CHECK(v6.has_query);
    CHECK(v6.target() == "/b?");
    CHECK(must_parse("http://h:80/").authority() == "h");
    CHECK(must_parse("https://h:443/").authority() == "h");
    CHECK(must_parse("https://h:80/").authority() == "h:80");
    CHECK_FALSE(must_parse("https://registry.example/").host_is_ip());
}

TEST_CASE("parse_url refuses what the fetcher cannot use safely", "[http]") {
    // Description: other schemes, missing hosts, credentials, fragments, bad ports and raw spaces,
    // control or non-ASCII characters are errors with a reason.
    const std::pair<std::string, std::string> bad[] = {
        {"ftp://h/x", "unsupported scheme"},
        {"h/x", "expected an http:// or https:// URL"},
        {"http://", "missing host"},
        {"http://:80/", "missing host"},
        {"http://u:p@h/", "credentials"},
        {"http://@h/", "credentials"},
        {"http://h/#x", "fragment"},
        {"http://h:0/", "invalid port"},
        {"http://h:65536/", "invalid port"},
        {"http://h:8x/", "invalid port"},
        {"http://h:/", "empty port"},
        {"http://h/a b", "spaces"},
        {"http://h/a\r\nHost: evil", "control"},
        {"http://h\xc3\xa9/", "non-ASCII"},
        {"http://[::1/", "unterminated IPv6"},
        {"http://[zz]/", "invalid IPv6"},
        {"http://[::1]x/", "after the IPv6"},
        {"http://ho$t/", "invalid character in the host"},
    };
    for (const auto& [text, why] : bad) {
        INFO("url: " << text);
        auto u = parse_url(text);
        REQUIRE_FALSE(u.has_value());
        CHECK_THAT(u.error(), Catch::Contains(why));
    }
}

TEST_CASE("percent_encode and blob_url", "[http]") {
    // Description: only unreserved characters pass through; the name is appended to the base path
    // with exactly one '/', and the base's query string stays after it.
    CHECK(percent_encode("abcXYZ019-._~") == "abcXYZ019-._~");
    CHECK(percent_encode("a b/c?d#e%f+g:h") == "a%20b%2Fc%3Fd%23e%25f%2Bg%3Ah");
    CHECK(percent_encode("\xff\x01") == "%FF%01");
    CHECK(percent_encode("") == "");

    CHECK(blob_url(must_parse("http://h/blobs"), "sha256:ab").target() == "/blobs/sha256%3Aab");
    CHECK(blob_url(must_parse("http://h/blobs/"), "x").target() == "/blobs/x");
    CHECK(blob_url(must_parse("http://h"), "x").target() == "/x");
    CHECK(blob_url(must_parse("http://h/"), "x").target() == "/x");
    auto q = blob_url(must_parse("https://h:9/b?sig=1&e=2"), "img 1");
    CHECK(q.target() == "/b/img%201?sig=1&e=2");
    CHECK(q.redacted() == "https://h:9/b/img%201");
}

TEST_CASE("resolve_location follows RFC 3986 references", "[http]") {
    // Description: absolute, scheme-relative, absolute-path, relative (with dot segments) and
    // query-only Locations resolve against the answering URL; fragments are dropped.
    const std::string base = "https://reg.example/v2/repo/blobs/sha256:1?x=1";
    CHECK(resolved(base, "https://cdn.example:8443/p/q?sig=2") == "https://cdn.example:8443/p/q?sig=2");
    CHECK(resolved(base, "HTTP://Other/p") == "http://other/p");
    CHECK(resolved(base, "//cdn.example/p") == "https://cdn.example/p");
    CHECK(resolved(base, "/data/1?t=3") == "https://reg.example/data/1?t=3");
    CHECK(resolved(base, "/a/./b/../c") == "https://reg.example/a/c");
    CHECK(resolved(base, "other") == "https://reg.example/v2/repo/blobs/other");
    CHECK(resolved(base, "../x/y") == "https://reg.example/v2/repo/x/y");
    CHECK(resolved(base, "../../../../../z") == "https://reg.example/z");
    CHECK(resolved(base, "?y=2") == "https://reg.example/v2/repo/blobs/sha256:1?y=2");
    CHECK(resolved(base, "/p#frag") == "https://reg.example/p");
    CHECK(resolved(base, "  /p  ") == "https://reg.example/p");
    // "sha256:2" is an absolute URI (scheme "sha256"), not a relative path: refused.
    CHECK_THAT(resolved(base, "sha256:2"), Catch::StartsWith("error: expected an http"));
    CHECK(resolved(base, "./sha256:2") == "https://reg.example/v2/repo/blobs/sha256:2");
    CHECK_THAT(resolved(base, ""), Catch::StartsWith("error: empty"));
    CHECK_THAT(resolved(base, "#only"), Catch::StartsWith("error: empty"));
    CHECK_THAT(resolved(base, "/a b"), Catch::StartsWith("error:"));
    CHECK_THAT(resolved(base, "ftp://h/x"), Catch::StartsWith("error: unsupported scheme"));
    CHECK_THAT(resolved(base, "https://u:p@h/x"), Catch::Contains("credentials"));
}

TEST_CASE("parse_content_range is strict", "[http]") {
    // Description: the three RFC 9110 forms parse; anything malformed, inverted, out of bounds or
    // overflowing is refused.
    auto a = parse_content_range("bytes 0-99/1000");
    REQUIRE(a);
    CHECK(a->has_range);
    CHECK(a->first == 0);
    CHECK(a->last == 99);
    CHECK(a->complete == 1000u);
    auto b = parse_content_range("Bytes 5-5/*");
    REQUIRE(b);
    CHECK(b->first == 5);
    CHECK(b->last == 5);
    CHECK_FALSE(b->complete);
    auto c = parse_content_range("bytes */0");
    REQUIRE(c);
    CHECK_FALSE(c->has_range);
    CHECK(c->complete == 0u);
    CHECK(parse_content_range(" bytes 0-0/1 "));
    CHECK(parse_content_range("bytes 18446744073709551614-18446744073709551614/18446744073709551615"));
    for (sv bad : {"", "bytes", "bytes ", "bytes=0-1/2", "items 0-1/2", "bytes 0-1", "bytes -1/2", "bytes 1-/2",
                   "bytes 0-1/", "bytes */*", "bytes 5-4/10", "bytes 0-10/10", "bytes 0 -1/2", "bytes +0-1/2",
                   "bytes 0-1/2,3", "bytes 0-99999999999999999999/*", "bytes  0-1/2", "bytes 0x0-1/2",
                   "bytes 0-1/2 junk"}) {
        INFO("value: " << bad);
        CHECK_FALSE(parse_content_range(bad));
    }
}

TEST_CASE("Content-Length and Range headers", "[http]") {
    // Description: Content-Length is digits only; the Range header names an inclusive last byte.
    CHECK(parse_content_length("0") == 0u);
    CHECK(parse_content_length(" 1234 ") == 1234u);
    CHECK(parse_content_length("18446744073709551615") == 18446744073709551615u);
    for (sv bad : {"", "-1", "+1", "1e3", "12 34", "18446744073709551616", "0x10", "1,2"}) {
        CHECK_FALSE(parse_content_length(bad));
    }
    CHECK(range_header(0, 1) == "bytes=0-0");
    CHECK(range_header(1048576, 1048576) == "bytes=1048576-2097151");
}

TEST_CASE("statuses: redirects, retries, errnos", "[http]") {
    // Description: which statuses redirect, which are retried (5xx only) and which errno a final
    // error status becomes.
    for (unsigned s : {301u, 302u, 303u, 307u, 308u}) CHECK(is_redirect(s));
    for (unsigned s : {200u, 206u, 300u, 304u, 305u, 404u}) CHECK_FALSE(is_redirect(s));
    for (unsigned s : {500u, 502u, 503u, 504u, 599u}) CHECK(is_retryable_status(s));
    for (unsigned s : {400u, 401u, 403u, 404u, 408u, 416u, 429u, 200u, 600u}) CHECK_FALSE(is_retryable_status(s));
    CHECK(status_errno(404) == -ENOENT);
    CHECK(status_errno(410) == -ENOENT);
    CHECK(status_errno(401) == -EACCES);
    CHECK(status_errno(403) == -EACCES);
    CHECK(status_errno(400) == -EIO);
    CHECK(status_errno(500) == -EIO);
}

TEST_CASE("plan_range_body accepts only the exact 206", "[http]") {
    // Description: a 206 must name exactly the requested bytes, and its length must match; a
    // multipart 206 (no Content-Range), another range, or a changed blob size are refused.
    auto ok = plan_range_body(206, sv("bytes 100-199/1000"), sv("100"), std::nullopt, 100, 100, 1000u, limit);
    REQUIRE(ok);
    CHECK(ok->skip == 0);
    CHECK(ok->take == 100);
    CHECK(ok->total == 100u);
    CHECK(ok->limit == 100);
    CHECK(plan_range_body(206, sv("bytes 100-199/*"), std::nullopt, sv("identity"), 100, 100, std::nullopt, limit));
    CHECK(plan_range_body(206, sv("bytes 100-199/1000"), std::nullopt, std::nullopt, 100, 100, std::nullopt, limit));

    struct bad_case {
        std::optional<sv> range, length, encoding;
        std::optional<std::uint64_t> known;
        const char* why;
    };
    const bad_case bad[] = {
        {std::nullopt, sv("100"), std::nullopt, std::nullopt, "without Content-Range"},
        {sv("bytes 0-99/1000"), sv("100"), std::nullopt, std::nullopt, "does not match"},
        {sv("bytes 100-198/1000"), sv("99"), std::nullopt, std::nullopt, "does not match"},
        {sv("bytes 100-200/1000"), sv("101"), std::nullopt, std::nullopt, "does not match"},
        {sv("bytes 100-199/1000"), sv("99"), std::nullopt, std::nullopt, "Content-Length 99"},
        {sv("bytes 100-199/1000"), sv("101"), std::nullopt, std::nullopt, "Content-Length 101"},
        {sv("bytes 100-199/1000"), sv("x"), std::nullopt, std::nullopt, "malformed Content-Length"},
        {sv("bytes 100-199/1001"), sv("100"), std::nullopt, 1000u, "blob size changed"},
        {sv("bytes */1000"), sv("100"), std::nullopt, std::nullopt, "malformed Content-Range"},
        {sv("bytes=100-199"), sv("100"), std::nullopt, std::nullopt, "malformed Content-Range"},
        {sv("bytes 100-199/1000"), sv("100"), sv("gzip"), std::nullopt, "Content-Encoding"},
    };
    for (const auto& c : bad) {
        auto r = plan_range_body(206, c.range, c.length, c.encoding, 100, 100, c.known, limit);
        INFO("expecting: " << c.why);
        REQUIRE_FALSE(r);
        CHECK(r.error().err == -EIO);
        CHECK_THAT(r.error().what, Catch::Contains(c.why));
    }
}

TEST_CASE("plan_range_body takes a slice of a whole-body 200", "[http]") {
    // Description: a 200 (Range ignored) is usable only when it is the whole blob: equal to the
    // known size, covering the range, within the body limit.
    auto ok = plan_range_body(200, std::nullopt, sv("1000"), std::nullopt, 100, 100, 1000u, limit);
    REQUIRE(ok);
    CHECK(ok->skip == 100);
    CHECK(ok->take == 100);
    CHECK(ok->total == 1000u);
    CHECK(ok->limit == 1000);
    // Chunked (no Content-Length): the known size is the required total; unknown: only the limit.
    auto chunked = plan_range_body(200, std::nullopt, std::nullopt, std::nullopt, 0, 10, 50u, limit);
    REQUIRE(chunked);
    CHECK(chunked->total == 50u);
    auto unknown = plan_range_body(200, std::nullopt, std::nullopt, std::nullopt, 0, 10, std::nullopt, 4096);
    REQUIRE(unknown);
    CHECK_FALSE(unknown->total);
    CHECK(unknown->limit == 4096);

    auto wrong_size = plan_range_body(200, std::nullopt, sv("999"), std::nullopt, 0, 100, 1000u, limit);
    REQUIRE_FALSE(wrong_size);
    CHECK_THAT(wrong_size.error().what, Catch::Contains("but the blob has 1000"));
    auto too_big = plan_range_body(200, std::nullopt, sv("5000"), std::nullopt, 0, 100, std::nullopt, 4096);
    REQUIRE_FALSE(too_big);
    CHECK_THAT(too_big.error().what, Catch::Contains("exceeds"));
    auto known_too_big = plan_range_body(200, std::nullopt, std::nullopt, std::nullopt, 0, 100, 5000u, 4096);
    REQUIRE_FALSE(known_too_big);
    CHECK_THAT(known_too_big.error().what, Catch::Contains("exceeds"));
    auto short_body = plan_range_body(200, std::nullopt, sv("150"), std::nullopt, 100, 100, std::nullopt, limit);
    REQUIRE_FALSE(short_body);
    CHECK_THAT(short_body.error().what, Catch::Contains("ends before"));
}

TEST_CASE("plan_range_body maps error statuses", "[http]") {
    // Description: anything but 200/206 is an error carrying the status's errno.
    CHECK(plan_range_body(404, std::nullopt, std::nullopt, std::nullopt, 0, 1, std::nullopt, limit).error().err ==
          -ENOENT);
    CHECK(plan_range_body(403, std::nullopt, std::nullopt, std::nullopt, 0, 1, std::nullopt, limit).error().err ==
          -EACCES);
    CHECK(plan_range_body(416, sv("bytes */10"), std::nullopt, std::nullopt, 20, 1, std::nullopt, limit)
              .error()
              .err == -EIO);
    CHECK(plan_range_body(204, std::nullopt, std::nullopt, std::nullopt, 0, 1, std::nullopt, limit).error().err ==
          -EIO);
    CHECK(plan_range_body(206, sv("bytes 0-0/1"), std::nullopt, std::nullopt, 0, 0, std::nullopt, limit).error().err ==
          -EINVAL);
}

TEST_CASE("check_body_end counts the bytes that arrived", "[http]") {
    // Description: short and long bodies are errors; a 200 must reach past the wanted range.
    const body_plan exact{0, 100, 100u, 100};
    CHECK(check_body_end(exact, 100));
    CHECK_THAT(check_body_end(exact, 99).error().what, Catch::Contains("body of 99 bytes, expected 100"));
    CHECK(check_body_end(exact, 101).error().err == -EIO);
    const body_plan whole{100, 100, std::nullopt, 4096};
    CHECK(check_body_end(whole, 200));
    CHECK(check_body_end(whole, 4000));
    CHECK_THAT(check_body_end(whole, 199).error().what, Catch::Contains("ends before"));
}

TEST_CASE("blob sizes from HEAD and from a one-byte range GET", "[http]") {
    // Description: HEAD gives Content-Length; the probe answer gives Content-Range's complete length
    // (206, or 416 for an empty blob) or a 200's Content-Length.
    CHECK(size_from_head(200, sv("1234")) == 1234u);
    CHECK_FALSE(size_from_head(200, std::nullopt));
    CHECK_FALSE(size_from_head(200, sv("12a")));
    CHECK_FALSE(size_from_head(404, sv("12")));

    CHECK(*size_from_probe(206, sv("bytes 0-0/4096"), sv("1")) == 4096u);
    CHECK(*size_from_probe(416, sv("bytes */0"), std::nullopt) == 0u);
    CHECK(*size_from_probe(200, std::nullopt, sv("77")) == 77u);
    CHECK(size_from_probe(206, sv("bytes 0-0/*"), sv("1")).error().err == -EIO);
    CHECK(size_from_probe(206, sv("bytes 1-1/5"), sv("1")).error().err == -EIO);
    CHECK(size_from_probe(206, std::nullopt, sv("1")).error().err == -EIO);
    CHECK(size_from_probe(416, sv("bytes 0-0/5"), std::nullopt).error().err == -EIO);
    CHECK(size_from_probe(200, std::nullopt, std::nullopt).error().err == -EIO);
    CHECK(size_from_probe(404, std::nullopt, std::nullopt).error().err == -ENOENT);
    CHECK(size_from_probe(401, std::nullopt, std::nullopt).error().err == -EACCES);
}

TEST_CASE("backoff doubles up to a cap", "[http]") {
    // Description: retry n waits base * 2^(n-1) ms, never more than the cap.
    CHECK(backoff_ms(100, 0) == 0);
    CHECK(backoff_ms(100, 1) == 100);
    CHECK(backoff_ms(100, 2) == 200);
    CHECK(backoff_ms(100, 3) == 400);
    CHECK(backoff_ms(100, 10) == 5000);
    CHECK(backoff_ms(100, 4000000000u) == 5000);
    CHECK(backoff_ms(7000, 1) == 5000);
    // Large bases saturate at the cap instead of wrapping around to a tiny delay (found by
    // fuzz_http: base 2^63+1, attempt 302, cap 2^64-1 gave 0).
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    CHECK(backoff_ms((std::uint64_t{1} << 63) + 1, 2, max) == max);
    CHECK(backoff_ms((std::uint64_t{1} << 63) + 1, 302, max) == max);
    CHECK(backoff_ms(3, 64, max) == max);
    CHECK(backoff_ms(3, 63, max) == 3 * (std::uint64_t{1} << 62));
    CHECK(backoff_ms(0, 4000000000u, max) == 0);
}
