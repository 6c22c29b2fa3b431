#include "protocol/oci/oci_util.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace blobd::oci {

namespace {

using json = nlohmann::json;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// RFC 9110 tchar.
bool is_tchar(char c) {
    return is_alpha(c) || is_digit(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool is_token68_char(char c) { return is_alpha(c) || is_digit(c) || std::string_view("-._~+/").find(c) != std::string_view::npos; }

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Printable ASCII without spaces: safe inside a header value.
bool header_safe(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

constexpr std::string_view b64_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::optional<std::string> repository_error(std::string_view repo) {
    if (repo.empty()) return "must not be empty";
    if (repo.size() > 255) return fmt::format("{} characters long, at most 255 allowed", repo.size());
    // Component by component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    std::size_t i = 0;
    while (true) {
        if (i >= repo.size() || !is_lower_alnum(repo[i])) {
            return "path components must start with a lowercase letter or digit ([a-z0-9], separated by '/')";
        }
        while (i < repo.size() && is_lower_alnum(repo[i])) ++i;
        if (i == repo.size()) return std::nullopt;
        const char c = repo[i];
        if (c == '/') {
            ++i;
            continue;
        }
        if (c == '.') {
            ++i;
        } else if (c == '_') {
            ++i;
            if (i < repo.size() && repo[i] == '_') ++i;
        } else if (c == '-') {
            while (i < repo.size() && repo[i] == '-') ++i;
        } else {
            return fmt::format("invalid character at offset {} (allowed: a-z 0-9 . _ __ - and /)", i);
        }
        if (i >= repo.size() || !is_lower_alnum(repo[i])) {
            return "a separator ('.', '_', '__', '-') must be followed by a lowercase letter or digit";
        }
    }
}

std::optional<std::string> registry_url_error(std::string_view text) {
    auto u = http::parse_url(text);
    if (!u) return "expected an http:// or https:// URL with a host: " + u.error();
    if (u->has_query) return "must not have a query string (blob URLs are <url>/v2/<repository>/blobs/<digest>)";
    return std::nullopt;
}

http::url blob_url(const http::url& base, std::string_view repository, std::string_view hex) {
    http::url u = base;
    if (u.path.ends_with('/')) u.path.pop_back();
    // The repository is validated ([a-z0-9._/-] only): nothing in it needs encoding.
    u.path += fmt::format("/v2/{}/blobs/sha256:{}", repository, hex);
    u.query.clear();
    u.has_query = false;
    return u;
}

std::string pull_scope(std::string_view repository) { return fmt::format("repository:{}:pull", repository); }

std::vector<challenge> parse_challenges(std::string_view v) {
    std::vector<challenge> out;
    std::size_t i = 0;
    const std::size_t n = v.size();
    auto skip_ws = [&] {
        while (i < n && (v[i] == ' ' || v[i] == '\t')) ++i;
    };
    auto skip_ws_commas = [&] {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) ++i;
    };
    auto read_token = [&] {
        const std::size_t start = i;
        while (i < n && is_tchar(v[i])) ++i;
        return v.substr(start, i - start);
    };
    // Whether an auth-param ("name BWS = BWS value") starts at `at`, as opposed to a new challenge's
    // scheme or a token68 ending in '='.
    auto param_at = [&](std::size_t at) {
        std::size_t j = at;
        while (j < n && is_tchar(v[j])) ++j;
        if (j == at) return false;
        while (j < n && (v[j] == ' ' || v[j] == '\t')) ++j;
        if (j >= n || v[j] != '=') return false;
        ++j;
        while (j < n && (v[j] == ' ' || v[j] == '\t')) ++j;
        return j < n && v[j] != '=' && v[j] != ',';
    };

    while (true) {
        skip_ws_commas();
        if (i >= n) break;
        const std::string_view scheme = read_token();
        if (scheme.empty()) break;  // malformed: keep what we have
        challenge ch;
        ch.scheme = lower(scheme);
        const bool had_space = i < n && (v[i] == ' ' || v[i] == '\t');
        skip_ws();
        if (!had_space || i >= n || v[i] == ',') {  // a bare scheme
            out.push_back(std::move(ch));
            continue;
        }
        if (!param_at(i)) {
            // token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
            const std::size_t start = i;
            while (i < n && is_token68_char(v[i])) ++i;
            if (i == start) break;
            while (i < n && v[i] == '=') ++i;
            ch.token68 = std::string(v.substr(start, i - start));
            skip_ws();
            out.push_back(std::move(ch));
            if (i < n && v[i] != ',') break;
            continue;
        }
        bool malformed = false;
        while (true) {
            const std::string name = lower(read_token());
            skip_ws();
            ++i;  // the '=' param_at() saw
            skip_ws();
            std::string value;
            if (i < n && v[i] == '"') {
                ++i;
                bool closed = false;
                while (i < n) {
                    const char c = v[i++];
                    if (c == '"') {
                        closed = true;
                        break;
                    }
                    if (c == '\\') {
                        if (i >= n) break;
                        value += v[i++];
                    } else {
                        value += c;
                    }
                }
                if (!closed) {
                    malformed = true;
                    break;
                }
            } else {
                value = std::string(read_token());
                if (value.empty()) {
                    malformed = true;
                    break;
                }
            }
            ch.params.emplace(name, std::move(value));  // a duplicate keeps its first value
            skip_ws();
            if (i >= n) break;
            if (v[i] != ',') {
                malformed = true;
                break;
            }
            skip_ws_commas();
            if (i >= n || !param_at(i)) break;  // the end, or the next challenge
        }
        if (malformed) break;
        out.push_back(std::move(ch));
    }
    return out;
}

std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)
    auto num = [&](std::size_t at, std::size_t len) -> std::optional<int> {
        if (at + len > s.size()) return std::nullopt;
        int v = 0;
        for (std::size_t k = at; k < at + len; ++k) {
            if (!is_digit(s[k])) return std::nullopt;
            v = v * 10 + (s[k] - '0');
        }
        return v;
    };
    if (s.size() < 20) return std::nullopt;
    const auto Y = num(0, 4), M = num(5, 2), D = num(8, 2), h = num(11, 2), m = num(14, 2), sec = num(17, 2);
    if (!Y || !M || !D || !h || !m || !sec || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':') {
        return std::nullopt;
    }
    if (*M < 1 || *M > 12 || *h > 23 || *m > 59 || *sec > 60) return std::nullopt;
    // RFC 3339 section 5.7: the day must exist in its month. Days past the end (April 31,
    // February 29 of 2023) would otherwise count on into the next month.
    static constexpr int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (*Y % 4 == 0 && *Y % 100 != 0) || *Y % 400 == 0;
    if (*D < 1 || *D > month_days[*M - 1] + (*M == 2 && leap ? 1 : 0)) return std::nullopt;
    std::size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        ++i;
        const std::size_t start = i;
        while (i < s.size() && is_digit(s[i])) ++i;
        if (i == start) return std::nullopt;
    }
    std::int64_t offset = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        const auto oh = num(i + 1, 2), om = num(i + 4, 2);
        if (!oh || !om || i + 3 >= s.size() || s[i + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
        offset = (*oh * 60 + *om) * 60 * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return std::nullopt;
    }
    if (i != s.size()) return std::nullopt;
    // Days from civil (Howard Hinnant's algorithm).
    const int y = *Y - (*M <= 2 ? 1 : 0);
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int mp = (*M + 9) % 12;
    const int doy = (153 * mp + 2) / 5 + *D - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    const std::int64_t days = std::int64_t{era} * 146097 + doe - 719468;
    return days * 86400 + *h * 3600 + *m * 60 + *sec - offset;
}

result<token_response, std::string> parse_token_response(std::string_view body) {
    json j = json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_discarded()) return unexpected{std::string("token answer is not JSON")};
    if (!j.is_object()) return unexpected{std::string("token answer is not a JSON object")};
    token_response t;
    for (const char* key : {"token", "access_token"}) {
        auto it = j.find(key);
        if (it == j.end() || it->is_null()) continue;
        if (!it->is_string()) return unexpected{fmt::format("token answer: \"{}\" is not a string", key)};
        const auto& s = it->get_ref<const std::string&>();
        if (s.empty()) continue;
        if (!header_safe(s)) {
            return unexpected{fmt::format("token answer: \"{}\" has characters not allowed in a header", key)};
        }
        t.token = s;
        break;
    }
    if (t.token.empty()) return unexpected{std::string("token answer has no \"token\" or \"access_token\"")};
    if (auto it = j.find("expires_in"); it != j.end() && !it->is_null()) {
        if (!it->is_number_integer()) return unexpected{std::string("token answer: \"expires_in\" is not an integer")};
        if (it->is_number_unsigned() && it->get<std::uint64_t>() > 0) {
            t.expires_in = static_cast<std::uint32_t>(std::min<std::uint64_t>(it->get<std::uint64_t>(), 86400));
        }  // zero or negative: the default
    }
    if (auto it = j.find("issued_at"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) return unexpected{std::string("token answer: \"issued_at\" is not a string")};
        t.issued_at = parse_rfc3339(it->get_ref<const std::string&>());
        if (!t.issued_at) return unexpected{std::string("token answer: \"issued_at\" is not an RFC 3339 time")};
    }
    return t;
}

std::chrono::milliseconds token_cache_time(const token_response& t, std::int64_t now_unix) {
    std::int64_t life_ms = std::int64_t{t.expires_in} * 1000;
    if (t.issued_at && *t.issued_at <= now_unix && now_unix - *t.issued_at < t.expires_in) {
        life_ms -= (now_unix - *t.issued_at) * 1000;
    }
    const std::int64_t margin = std::min<std::int64_t>(life_ms / 4, 10'000);
    return std::chrono::milliseconds(std::max<std::int64_t>(0, life_ms - margin));
}

std::string base64_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                           static_cast<unsigned char>(in[i + 2]);
        out += b64_alphabet[(v >> 18) & 63];
        out += b64_alphabet[(v >> 12) & 63];
        out += b64_alphabet[(v >> 6) & 63];
        out += b64_alphabet[v & 63];
    }
    if (const std::size_t rest = in.size() - i; rest > 0) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16;
        if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
        out += b64_alphabet[(v >> 18) & 63];
        out += b64_alphabet[(v >> 12) & 63];
        out += rest == 2 ? b64_alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
    while (!in.empty() && in.back() == '=') in.remove_suffix(1);
    if (in.size() % 4 == 1) return std::nullopt;
    std::string out;
    unsigned acc = 0;
    int bits = 0;
    for (char c : in) {
        const auto pos = b64_alphabet.find(c);
        if (pos == std::string_view::npos) return std::nullopt;
        acc = (acc << 6) | static_cast<unsigned>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return out;
}

std::string basic_authorization(const credentials& c) { return "Basic " + base64_encode(c.username + ":" + c.password); }

namespace {
// "https://Host:5000/v1/" -> "host:5000".
std::string normalise_auth_key(std::string_view key) {
    if (auto p = key.find("://"); p != std::string_view::npos) key.remove_prefix(p + 3);
    if (auto p = key.find('/'); p != std::string_view::npos) key = key.substr(0, p);
    return lower(key);
}

// Header-safe enough: Basic credentials are base64-encoded, so only NUL-free strings are needed;
// a ':' in the user name would make the pair ambiguous.
bool usable(const credentials& c) { return c.username.find(':') == std::string::npos; }
}  // namespace

result<std::map<std::string, credentials>, std::string> parse_auth_file(std::string_view text) {
    json j = json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded()) return unexpected{std::string("not valid JSON")};
    if (!j.is_object()) return unexpected{std::string("expected a JSON object")};
    std::map<std::string, credentials> out;
    auto auths = j.find("auths");
    if (auths == j.end()) return out;
    if (!auths->is_object()) return unexpected{std::string("\"auths\" is not an object")};
    for (auto it = auths->begin(); it != auths->end(); ++it) {
        // The key is the file's own text, not a secret; still dumped through JSON to keep control
        // characters out of the message.
        const std::string where =
            fmt::format("auths[{}]", json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace));
        if (!it->is_object()) return unexpected{where + " is not an object"};
        credentials c;
        bool found = false;
        if (auto a = it->find("auth"); a != it->end() && !a->is_null()) {
            if (!a->is_string()) return unexpected{where + ".auth is not a string"};
            if (!a->get_ref<const std::string&>().empty()) {
                auto decoded = base64_decode(a->get_ref<const std::string&>());
                if (!decoded) return unexpected{where + ".auth is not valid base64"};
                const auto colon = decoded->find(':');
                if (colon == std::string::npos) return unexpected{where + ".auth does not decode to user:password"};
                c.username = decoded->substr(0, colon);
                c.password = decoded->substr(colon + 1);
                found = true;
            }
        }
        if (!found) {
            auto u = it->find("username");
            auto p = it->find("password");
            const bool has_u = u != it->end() && !u->is_null(), has_p = p != it->end() && !p->is_null();
            if (has_u || has_p) {
                if (!has_u || !has_p) return unexpected{where + ": \"username\" and \"password\" go together"};
                if (!u->is_string() || !p->is_string()) return unexpected{where + ": username/password must be strings"};
                c.username = u->get<std::string>();
                c.password = p->get<std::string>();
                found = true;
            }
        }
        if (!found) continue;
        if (!usable(c)) return unexpected{where + ": the user name must not contain ':'"};
        out.insert_or_assign(normalise_auth_key(it.key()), std::move(c));
    }
    return out;
}

std::optional<credentials> credentials_for(const std::map<std::string, credentials>& auths, const http::url& u) {
    if (auto it = auths.find(u.authority()); it != auths.end()) return it->second;
    const std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    if (auto it = auths.find(host + ":" + std::to_string(u.port)); it != auths.end()) return it->second;
    return std::nullopt;
}

result<http::url, std::string> token_url(std::string_view realm, std::string_view service, std::string_view scope) {
    auto u = http::parse_url(realm);
    if (!u) return unexpected{"bad token realm: " + u.error()};
    std::string q = u->query;
    auto add = [&](std::string_view k, std::string_view val) {
        if (!q.empty() && !q.ends_with('&')) q += '&';
        q += std::string(k) + "=" + http::percent_encode(val);
    };
    if (!service.empty()) add("service", service);
    add("scope", scope);
    u->query = std::move(q);
    u->has_query = true;
    return std::move(*u);
}

}  // namespace blobd::oci
