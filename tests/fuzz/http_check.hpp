// Fuzz check for HTTP responses as the HTTP client sees them: the status line and headers parsed
// by Boost.Beast with the client's limits, then everything protocol/http decides from them
// (Content-Range, Content-Length, Content-Encoding, body plans and the body's end, HEAD and probe
// sizes, status errnos, redirects, WWW-Authenticate), and the body framed by Beast counted against
// the plan.
//
// Input: a first line "<off> <len> <known size or -> <body limit>" (the range asked for, what a
// HEAD said, the whole-body limit), then the raw response bytes ("HTTP/1.1 206 ...\r\n...").
// What must hold: each decision agrees with the rules its header states (written out again here,
// independently); the parsers' values print back to themselves; our Content-Length never
// disagrees with the length Beast frames the body by. Test code; any thread.
#pragma once

#include <cerrno>
#include <limits>
#include <string>

#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "protocol/http/http_util.hpp"
#include "tests/fuzz/challenge_check.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/url_check.hpp"

namespace blobd::fuzz {

inline std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

inline bool ascii_iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto l = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
        if (l(a[i]) != l(b[i])) return false;
    }
    return true;
}

// Digits only, no sign, no overflow: the rule parse_content_length states.
inline std::optional<std::uint64_t> decimal_reference(std::string_view s) {
    if (s.empty()) return std::nullopt;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
    }
    while (s.size() > 1 && s.front() == '0') s.remove_prefix(1);
    if (s.size() > 20 || (s.size() == 20 && s > "18446744073709551615")) return std::nullopt;
    return number(s);
}

inline void check_content_length_value(std::string_view v) {
    const auto n = http::parse_content_length(v);
    FUZZ_REQUIRE(n == decimal_reference(trim_ows(v)));
}

inline void check_content_range_value(std::string_view v) {
    const auto cr = http::parse_content_range(v);
    if (!cr) return;
    const auto t = trim_ows(v);
    FUZZ_REQUIRE(t.size() >= 6 && ascii_iequals(t.substr(0, 6), "bytes "));
    if (cr->has_range) {
        FUZZ_REQUIRE(cr->first <= cr->last);
        FUZZ_REQUIRE(!cr->complete || cr->last < *cr->complete);
    } else {
        FUZZ_REQUIRE(cr->complete.has_value());
    }
    const std::string printed =
        "bytes " + (cr->has_range ? fmt::format("{}-{}", cr->first, cr->last) : std::string("*")) + "/" +
        (cr->complete ? std::to_string(*cr->complete) : std::string("*"));
    const auto again = http::parse_content_range(printed);
    FUZZ_REQUIRE(again && again->has_range == cr->has_range && again->first == cr->first &&
                 again->last == cr->last && again->complete == cr->complete);
}

struct range_request {
    std::uint64_t off = 0, len = 1;
    std::optional<std::uint64_t> known_size;
    std::uint64_t body_limit = 1 << 20;
};

// plan_range_body's contract (http_util.hpp), restated: whether the answer is usable at all.
inline bool plan_ok_reference(unsigned status, std::optional<std::string_view> cr, std::optional<std::string_view> cl,
                              std::optional<std::string_view> ce, const range_request& r) {
    if (r.len == 0 || r.off > std::numeric_limits<std::uint64_t>::max() - r.len) return false;
    if (status != 200 && status != 206) return false;
    if (ce && !trim_ows(*ce).empty() && !ascii_iequals(trim_ows(*ce), "identity")) return false;
    std::optional<std::uint64_t> length;
    if (cl) {
        length = decimal_reference(trim_ows(*cl));
        if (!length) return false;
    }
    const std::uint64_t end = r.off + r.len;
    if (status == 206) {
        if (!cr) return false;
        const auto range = http::parse_content_range(*cr);
        if (!range || !range->has_range || range->first != r.off || range->last != end - 1) return false;
        if (r.known_size && range->complete && *range->complete != *r.known_size) return false;
        return !length || *length == r.len;
    }
    if (r.known_size && *r.known_size > r.body_limit) return false;
    if (length && ((r.known_size && *length != *r.known_size) || *length > r.body_limit || *length < end)) return false;
    return true;
}

inline void check_body_end_against(const http::body_plan& plan, std::uint64_t received) {
    const bool ok = (!plan.total || received == *plan.total) && received >= plan.skip + plan.take;
    const auto end = http::check_body_end(plan, received);
    FUZZ_REQUIRE(end.has_value() == ok);
    if (!end) FUZZ_REQUIRE(end.error().err == -EIO);
}

inline void check_plan(unsigned status, std::optional<std::string_view> cr, std::optional<std::string_view> cl,
                       std::optional<std::string_view> ce, const range_request& r,
                       std::optional<std::uint64_t> received) {
    const auto plan = http::plan_range_body(status, cr, cl, ce, r.off, r.len, r.known_size, r.body_limit);
    FUZZ_REQUIRE(plan.has_value() == plan_ok_reference(status, cr, cl, ce, r));
    if (!plan) {
        const int err = plan.error().err;
        FUZZ_REQUIRE(err == -EINVAL || err == -EIO || err == -ENOENT || err == -EACCES);
        const bool range_ok = r.len != 0 && r.off <= std::numeric_limits<std::uint64_t>::max() - r.len;
        if (!range_ok) FUZZ_REQUIRE(err == -EINVAL);
        if (range_ok && status != 200 && status != 206) FUZZ_REQUIRE(err == http::status_errno(status));
        FUZZ_REQUIRE(!plan.error().what.empty());
        return;
    }
    const auto& p = *plan;
    FUZZ_REQUIRE(p.take == r.len);
    if (status == 206) {
        FUZZ_REQUIRE(p.skip == 0 && p.total == r.len && p.limit == r.len);
    } else {
        FUZZ_REQUIRE(p.skip == r.off);
        FUZZ_REQUIRE(p.limit <= r.body_limit);
        if (p.total) FUZZ_REQUIRE(p.limit == *p.total && *p.total <= r.body_limit);
        if (r.known_size) FUZZ_REQUIRE(p.total == r.known_size);
        if (cl) FUZZ_REQUIRE(p.total == http::parse_content_length(*cl) && *p.total >= r.off + r.len);
    }
    for (std::uint64_t n : {std::uint64_t{0}, r.len - 1, r.len, r.off + r.len, r.off + r.len + 1, p.limit}) {
        check_body_end_against(p, n);
    }
    if (received) check_body_end_against(p, *received);
}

inline void check_sizes(unsigned status, std::optional<std::string_view> cr, std::optional<std::string_view> cl) {
    const auto head = http::size_from_head(status, cl);
    FUZZ_REQUIRE(head == (status == 200 && cl ? decimal_reference(trim_ows(*cl)) : std::nullopt));

    const auto probe = http::size_from_probe(status, cr, cl);
    std::optional<std::uint64_t> expected;
    if (status == 206 || status == 416) {
        const auto range = cr ? http::parse_content_range(*cr) : std::nullopt;
        const bool shape = range && (status == 206 ? range->has_range && range->first == 0 && range->last == 0
                                                   : !range->has_range);
        if (shape) expected = range->complete;
    } else if (status == 200 && cl) {
        expected = decimal_reference(trim_ows(*cl));
    }
    FUZZ_REQUIRE(probe.has_value() == expected.has_value());
    if (probe) {
        FUZZ_REQUIRE(*probe == *expected);
    } else if (status != 200 && status != 206 && status != 416) {
        FUZZ_REQUIRE(probe.error().err == http::status_errno(status));
    } else {
        FUZZ_REQUIRE(probe.error().err == -EIO);
    }
}

inline void check_status(unsigned status, const range_request& r) {
    const int e = http::status_errno(status);
    FUZZ_REQUIRE(e == -ENOENT || e == -EACCES || e == -EIO);
    FUZZ_REQUIRE(http::is_retryable_status(status) == (status >= 500 && status < 600));
    FUZZ_REQUIRE(!(http::is_redirect(status) && http::is_retryable_status(status)));
    if (r.len > 0 && r.off <= std::numeric_limits<std::uint64_t>::max() - r.len) {
        FUZZ_REQUIRE(http::range_header(r.off, r.len) == fmt::format("bytes={}-{}", r.off, r.off + r.len - 1));
    }
    // Backoff before retry `attempt` (the status's last two digits here) with base off and cap len.
    const unsigned attempt = status % 100;
    const std::uint64_t b = http::backoff_ms(r.off, attempt, r.len);
    FUZZ_REQUIRE(b <= r.len);
    if (attempt == 0) FUZZ_REQUIRE(b == 0);
    if (attempt > 0 && attempt < 64) {
        // base * 2^(attempt-1), capped, without wrapping around.
        const unsigned __int128 want = static_cast<unsigned __int128>(r.off) << (attempt - 1);
        FUZZ_REQUIRE(b == (want < r.len ? static_cast<std::uint64_t>(want) : r.len));
    }
    if (attempt >= 65 && r.off > 0) FUZZ_REQUIRE(b == r.len);  // 2^64 times any base passes any cap
    if (attempt > 1) FUZZ_REQUIRE(b >= http::backoff_ms(r.off, attempt - 1, r.len));
}

inline void check_http(std::span<const std::uint8_t> in) {
    namespace bhttp = boost::beast::http;
    const std::string_view text = as_text(in);
    const auto nl = text.find('\n');
    const std::string_view spec = text.substr(0, nl);
    const std::string_view raw = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);

    range_request r;
    {
        std::vector<std::string_view> words;
        std::size_t i = 0;
        while (i < spec.size() && words.size() < 4) {
            const auto sp = spec.find(' ', i);
            words.push_back(spec.substr(i, sp == std::string_view::npos ? std::string_view::npos : sp - i));
            if (sp == std::string_view::npos) break;
            i = sp + 1;
        }
        words.resize(4);
        r.off = number(words[0]);
        r.len = number(words[1], 1);
        if (!words[2].empty() && words[2] != "-") r.known_size = number(words[2]);
        r.body_limit = number(words[3], 1 << 20);
    }

    // The client's parser settings (fetchers/http/http_client.cpp: header_limit, body_limit).
    bhttp::response_parser<bhttp::buffer_body> p;
    p.header_limit(16 * 1024);
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    char body[512];
    std::uint64_t received = 0;
    std::size_t used = 0;
    boost::beast::error_code ec;
    bool stalled = false;  // Beast wants more than there is: the peer closed the connection
    for (int guard = 0; guard < 1 << 16 && !p.is_done(); ++guard) {
        auto& b = p.get().body();
        b.data = body;
        b.size = sizeof body;
        if (used < raw.size() && !stalled) {
            const std::size_t n = p.put(boost::asio::buffer(raw.data() + used, raw.size() - used), ec);
            used += n;
            if (ec == bhttp::error::need_more && n == 0) stalled = true;
        } else {
            if (!p.got_some()) break;  // nothing parsed: the client's read fails before any header
            p.put_eof(ec);
            received += sizeof body - b.size;
            break;
        }
        received += sizeof body - b.size;
        if (ec == bhttp::error::need_buffer || ec == bhttp::error::need_more) {
            ec = {};
            continue;
        }
        if (ec) break;
    }
    if (!p.is_header_done()) return;  // the client fails with "read header"; nothing decided

    const auto& res = p.get();
    const unsigned status = res.result_int();
    auto field = [&](bhttp::field f) -> std::optional<std::string_view> {
        auto it = res.find(f);
        if (it == res.end()) return std::nullopt;
        return std::string_view(it->value().data(), it->value().size());
    };
    for (const auto& f : res) {
        const std::string_view v(f.value().data(), f.value().size());
        check_content_length_value(v);
        check_content_range_value(v);
    }
    const auto cr = field(bhttp::field::content_range), cl = field(bhttp::field::content_length),
               ce = field(bhttp::field::content_encoding);
    // Our reading of Content-Length must never differ from the length Beast frames the body by.
    if (cl && p.content_length() && http::parse_content_length(*cl)) {
        FUZZ_REQUIRE(*http::parse_content_length(*cl) == *p.content_length());
    }
    check_status(status, r);
    check_plan(status, cr, cl, ce, r, p.is_done() && !ec ? std::optional(received) : std::nullopt);
    check_sizes(status, cr, cl);
    if (http::is_redirect(status)) {
        static const http::url base = *http::parse_url("https://registry.example/v2/lib/app/blobs/sha256:ab");
        if (const auto loc = field(bhttp::field::location)) check_location(base, *loc);
    }
    for (auto it = res.find(bhttp::field::www_authenticate);
         it != res.end() && it->name() == bhttp::field::www_authenticate; ++it) {
        check_challenge_value(std::string_view(it->value().data(), it->value().size()));
    }
}

}  // namespace blobd::fuzz
