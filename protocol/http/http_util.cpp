#include "protocol/http/http_util.hpp"
#include "protocol/oci/oci_util.hpp"  // base64_encode

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <limits>

#include <fmt/format.h>

namespace blobd::http {

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_unreserved(char c) { return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~'; }

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Decimal digits only (no sign, no spaces), without overflow.
std::optional<std::uint64_t> parse_u64(std::string_view s) {
    if (s.empty() || !std::all_of(s.begin(), s.end(), is_digit)) return std::nullopt;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

// Printable ASCII without space: a URL arrives percent-encoded; anything else is a mistake (or an
// attempt to smuggle something into the request line).
bool url_chars_ok(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// RFC 3986 section 5.2.4.
std::string remove_dot_segments(std::string_view in) {
    std::string out;
    std::string input(in);
    while (!input.empty()) {
        if (input.starts_with("../")) {
            input.erase(0, 3);
        } else if (input.starts_with("./")) {
            input.erase(0, 2);
        } else if (input.starts_with("/./")) {
            input.erase(0, 2);
        } else if (input == "/.") {
            input = "/";
        } else if (input.starts_with("/../") || input == "/..") {
            input = input == "/.." ? std::string("/") : input.substr(3);
            const auto slash = out.rfind('/');
            out.erase(slash == std::string::npos ? 0 : slash);
        } else if (input == "." || input == "..") {
            input.clear();
        } else {
            const std::size_t next = input.find('/', input.front() == '/' ? 1 : 0);
            const std::size_t n = next == std::string::npos ? input.size() : next;
            out += input.substr(0, n);
            input.erase(0, n);
        }
    }
    return out;
}

}  // namespace

bool url::host_is_ip() const {
    if (host.find(':') != std::string::npos) return true;  // IPv6 literal
    return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; });
}

std::string url::authority() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return default_port() ? h : h + ":" + std::to_string(port);
}

result<url, std::string> parse_url(std::string_view text) {
    if (!url_chars_ok(text)) {
        return unexpected{std::string("must not contain spaces, control or non-ASCII characters (percent-encode them)")};
    }
    const auto sep = text.find("://");
    if (sep == std::string_view::npos) return unexpected{std::string("expected an http:// or https:// URL")};
    url u;
    u.scheme = lower(text.substr(0, sep));
    if (u.scheme != "http" && u.scheme != "https") {
        return unexpected{"unsupported scheme \"" + u.scheme + "\" (expected http or https)"};
    }
    std::string_view rest = text.substr(sep + 3);
    const auto auth_end = std::min(rest.find_first_of("/?#"), rest.size());
    std::string_view authority = rest.substr(0, auth_end);
    rest.remove_prefix(auth_end);
    if (authority.find('@') != std::string_view::npos) {
        return unexpected{std::string("credentials in the URL (user@host) are not supported")};
    }
    std::string_view host, port;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return unexpected{std::string("unterminated IPv6 address")};
        host = authority.substr(1, close - 1);
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return unexpected{std::string("unexpected characters after the IPv6 address")};
            port = after.substr(1);
            if (port.empty()) return unexpected{std::string("empty port")};
        }
        if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
                return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
            })) {
            return unexpected{std::string("invalid IPv6 address")};
        }
    } else {
        const auto colon = authority.rfind(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
            if (port.empty()) return unexpected{std::string("empty port")};
        }
        if (!std::all_of(host.begin(), host.end(), is_unreserved)) {
            return unexpected{std::string("invalid character in the host name")};
        }
    }
    if (host.empty()) return unexpected{std::string("missing host")};
    u.host = lower(host);
    if (!port.empty()) {
        auto p = parse_u64(port);
        if (!p || *p == 0 || *p > 65535) return unexpected{"invalid port \"" + std::string(port) + "\""};
        u.port = static_cast<std::uint16_t>(*p);
    } else {
        u.port = u.tls() ? 443 : 80;
    }
    if (rest.find('#') != std::string_view::npos) {
        return unexpected{std::string("a URL fragment (#...) has no meaning here")};
    }
    const auto q = rest.find('?');
    std::string_view path = rest.substr(0, q);
    u.path = path.empty() ? "/" : std::string(path);
    if (q != std::string_view::npos) {
        u.has_query = true;
        u.query = std::string(rest.substr(q + 1));
    }
    return u;
}

result<url, std::string> resolve_location(const url& base, std::string_view location) {
    location = trim(location);
    if (const auto hash = location.find('#'); hash != std::string_view::npos) location = location.substr(0, hash);
    if (location.empty()) return unexpected{std::string("empty Location")};
    if (!url_chars_ok(location)) return unexpected{std::string("Location has spaces, control or non-ASCII characters")};
    // scheme ":" ... (RFC 3986 section 3.1): an absolute URL.
    if (is_alpha(location.front())) {
        const auto colon = location.find(':');
        const auto first_delim = location.find_first_of("/?");
        if (colon != std::string_view::npos && colon < first_delim &&
            std::all_of(location.begin(), location.begin() + static_cast<std::ptrdiff_t>(colon),
                        [](char c) { return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.'; })) {
            return parse_url(location);
        }
    }
    if (location.starts_with("//")) return parse_url(base.scheme + ":" + std::string(location));
    url u = base;
    const auto q = location.find('?');
    std::string_view path = location.substr(0, q);
    if (q != std::string_view::npos) {
        u.has_query = true;
        u.query = std::string(location.substr(q + 1));
    } else if (!path.empty()) {
        u.has_query = false;
        u.query.clear();
    }
    if (path.empty()) {
        u.path = base.path;
    } else if (path.front() == '/') {
        u.path = remove_dot_segments(path);
    } else {
        const auto slash = base.path.rfind('/');
        u.path = remove_dot_segments(base.path.substr(0, slash + 1) + std::string(path));
    }
    if (u.path.empty() || u.path.front() != '/') u.path.insert(0, "/");
    return u;
}

std::string percent_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (is_unreserved(c)) {
            out += c;
        } else {
            const auto b = static_cast<unsigned char>(c);
            out += '%';
            out += hex[b >> 4];
            out += hex[b & 15];
        }
    }
    return out;
}

url blob_url(const url& base, std::string_view name) {
    url u = base;
    if (u.path.ends_with('/')) u.path.pop_back();
    u.path += "/" + percent_encode(name);
    return u;
}

std::optional<content_range> parse_content_range(std::string_view value) {
    value = trim(value);
    if (value.size() < 6 || !iequals(value.substr(0, 5), "bytes") || value[5] != ' ') return std::nullopt;
    std::string_view rest = value.substr(6);
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    std::string_view range = rest.substr(0, slash), complete = rest.substr(slash + 1);
    content_range cr;
    if (complete != "*") {
        cr.complete = parse_u64(complete);
        if (!cr.complete) return std::nullopt;
    }
    if (range == "*") {
        // "bytes */N" (unsatisfied range): the length is the whole point of it.
        if (!cr.complete) return std::nullopt;
        return cr;
    }
    const auto dash = range.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    auto first = parse_u64(range.substr(0, dash)), last = parse_u64(range.substr(dash + 1));
    if (!first || !last || *first > *last) return std::nullopt;
    if (cr.complete && *last >= *cr.complete) return std::nullopt;
    cr.has_range = true;
    cr.first = *first;
    cr.last = *last;
    return cr;
}

std::optional<std::uint64_t> parse_content_length(std::string_view value) { return parse_u64(trim(value)); }

std::string range_header(std::uint64_t off, std::uint64_t len) { return fmt::format("bytes={}-{}", off, off + len - 1); }

bool is_redirect(unsigned status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool is_identity_encoding(std::string_view content_encoding) {
    const auto v = trim(content_encoding);
    return v.empty() || iequals(v, "identity");
}

bool is_retryable_status(unsigned status) { return status >= 500 && status <= 599; }

int status_errno(unsigned status) {
    switch (status) {
    case 404:
    case 410:
        return -ENOENT;
    case 401:
    case 403:
        return -EACCES;
    default:
        return -EIO;
    }
}

result<body_plan, failure> plan_range_body(unsigned status, std::optional<std::string_view> content_range,
                                           std::optional<std::string_view> content_length,
                                           std::optional<std::string_view> content_encoding, std::uint64_t off,
                                           std::uint64_t len, std::optional<std::uint64_t> known_size,
                                           std::uint64_t body_limit) {
    if (len == 0 || off > std::numeric_limits<std::uint64_t>::max() - len) {
        return unexpected{failure{-EINVAL, "invalid range"}};
    }
    if (status != 200 && status != 206) {
        return unexpected{failure{status_errno(status), fmt::format("HTTP status {}", status)}};
    }
    if (content_encoding && !is_identity_encoding(*content_encoding)) {
        return unexpected{failure{-EIO, fmt::format("Content-Encoding \"{}\" refused (bytes must arrive as stored)",
                                                    trim(*content_encoding))}};
    }
    std::optional<std::uint64_t> cl;
    if (content_length) {
        cl = parse_content_length(*content_length);
        if (!cl) return unexpected{failure{-EIO, "malformed Content-Length"}};
    }
    const std::uint64_t end = off + len;  // exclusive
    if (status == 206) {
        if (!content_range) {
            return unexpected{failure{-EIO, "206 without Content-Range (multipart answers are not accepted)"}};
        }
        auto cr = parse_content_range(*content_range);
        if (!cr || !cr->has_range) {
            return unexpected{failure{-EIO, fmt::format("malformed Content-Range \"{}\"", *content_range)}};
        }
        if (cr->first != off || cr->last != end - 1) {
            return unexpected{failure{-EIO, fmt::format("Content-Range {}-{} does not match the requested {}-{}",
                                                        cr->first, cr->last, off, end - 1)}};
        }
        if (known_size && cr->complete && *cr->complete != *known_size) {
            return unexpected{failure{-EIO, fmt::format("blob size changed: Content-Range says {} bytes, stat said {}",
                                                        *cr->complete, *known_size)}};
        }
        if (cl && *cl != len) {
            return unexpected{failure{-EIO, fmt::format("Content-Length {} for a {}-byte range", *cl, len)}};
        }
        return body_plan{0, len, len, len};
    }
    // 200: the server ignored the Range and sends the whole blob.
    if (known_size && *known_size > body_limit) {
        return unexpected{failure{-EIO, fmt::format("server ignores Range and the blob ({} bytes) exceeds the {}-byte "
                                                    "limit for whole-body answers",
                                                    *known_size, body_limit)}};
    }
    if (cl) {
        if (known_size && *cl != *known_size) {
            return unexpected{failure{-EIO, fmt::format("whole-body answer of {} bytes, but the blob has {}", *cl,
                                                        *known_size)}};
        }
        if (*cl > body_limit) {
            return unexpected{failure{-EIO, fmt::format("server ignores Range and its {}-byte answer exceeds the "
                                                        "{}-byte limit for whole-body answers",
                                                        *cl, body_limit)}};
        }
        if (*cl < end) {
            return unexpected{failure{-EIO, fmt::format("whole-body answer of {} bytes ends before the requested "
                                                        "range {}-{}",
                                                        *cl, off, end - 1)}};
        }
    }
    body_plan plan{off, len, cl ? cl : known_size, body_limit};
    if (plan.total) plan.limit = *plan.total;
    return plan;
}

result<bool, failure> check_body_end(const body_plan& plan, std::uint64_t received) {
    if (plan.total && received != *plan.total) {
        return unexpected{failure{-EIO, fmt::format("body of {} bytes, expected {}", received, *plan.total)}};
    }
    if (received < plan.skip + plan.take) {
        return unexpected{failure{-EIO, fmt::format("body of {} bytes ends before the requested range {}-{}", received,
                                                    plan.skip, plan.skip + plan.take - 1)}};
    }
    return true;
}

std::optional<std::uint64_t> size_from_head(unsigned status, std::optional<std::string_view> content_length) {
    if (status != 200 || !content_length) return std::nullopt;
    return parse_content_length(*content_length);
}

result<std::uint64_t, failure> size_from_probe(unsigned status, std::optional<std::string_view> content_range,
                                               std::optional<std::string_view> content_length) {
    if (status == 206 || status == 416) {
        auto cr = content_range ? parse_content_range(*content_range) : std::nullopt;
        if (!cr) return unexpected{failure{-EIO, fmt::format("{} without a valid Content-Range", status)}};
        if (status == 206 && (!cr->has_range || cr->first != 0 || cr->last != 0)) {
            return unexpected{failure{-EIO, "Content-Range does not match the requested 0-0"}};
        }
        if (status == 416 && cr->has_range) return unexpected{failure{-EIO, "416 with a satisfied Content-Range"}};
        if (!cr->complete) return unexpected{failure{-EIO, "Content-Range does not tell the blob size"}};
        return *cr->complete;
    }
    if (status == 200) {
        auto cl = content_length ? parse_content_length(*content_length) : std::nullopt;
        if (!cl) return unexpected{failure{-EIO, "200 without a Content-Length: blob size unknown"}};
        return *cl;
    }
    return unexpected{failure{status_errno(status), fmt::format("HTTP status {}", status)}};
}

std::uint64_t backoff_ms(std::uint64_t base_ms, unsigned attempt, std::uint64_t cap_ms) {
    if (attempt == 0 || base_ms == 0) return 0;  // zero doubles to zero: no need to count to `attempt`
    std::uint64_t v = base_ms;
    // Saturating: a doubling past the cap is the cap, never a wrap-around to a small delay.
    for (unsigned i = 1; i < attempt && v < cap_ms; ++i) v = v > cap_ms / 2 ? cap_ms : v * 2;
    return std::min(v, cap_ms);
}

std::string masked_url(std::string_view text) {
    const auto q = text.find('?');
    if (q == std::string_view::npos) return std::string(text);
    return std::string(text.substr(0, q)) + "?***";
}

// The credentials are cut off before parse_url sees the rest: it refuses userinfo everywhere else
// (a URL with credentials in a log is a leak), and here they are the point.
result<proxy, std::string> parse_proxy(std::string_view text) {
    constexpr std::string_view scheme = "http://";
    if (text.size() < scheme.size() || lower(text.substr(0, scheme.size())) != scheme) {
        if (lower(text.substr(0, std::min<std::size_t>(text.size(), 8))) == "https://") {
            return unexpected{std::string("an https:// proxy is not supported (use http://; https origins are tunnelled with CONNECT)")};
        }
        return unexpected{std::string("expected an http:// proxy URL, e.g. http://proxy:3128")};
    }
    std::string_view rest = text.substr(scheme.size());
    const auto auth_end = std::min(rest.find_first_of("/?#"), rest.size());
    const auto at = rest.substr(0, auth_end).rfind('@');
    proxy p;
    std::string userinfo;
    if (at != std::string_view::npos) {
        userinfo = std::string(rest.substr(0, at));
        rest.remove_prefix(at + 1);
        const auto colon = userinfo.find(':');
        if (userinfo.empty() || colon == 0) return unexpected{std::string("empty proxy user name before '@'")};
        if (std::any_of(userinfo.begin(), userinfo.end(),
                        [](char c) { return static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f; })) {
            return unexpected{std::string("proxy credentials must not contain spaces, control or non-ASCII characters")};
        }
        p.authorization = "Basic " + oci::base64_encode(colon == std::string::npos ? userinfo + ":" : userinfo);
    }
    auto u = parse_url(std::string(scheme) + std::string(rest));
    if (!u) return unexpected{u.error()};
    if (u->path != "/" || u->has_query) return unexpected{std::string("a proxy URL has no path or query (http://host:port)")};
    p.host = u->host;
    p.port = u->port;
    const std::string hostport =
        (u->host.find(':') != std::string::npos ? "[" + u->host + "]" : u->host) + ":" + std::to_string(u->port);
    p.shown = "http://" + (userinfo.empty() ? "" : userinfo.substr(0, userinfo.find(':')) + ":***@") + hostport;
    return p;
}

std::string masked_proxy(std::string_view text) {
    auto p = parse_proxy(text);
    return p ? p->shown : std::string("***");
}

}  // namespace blobd::http
