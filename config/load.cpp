// JSON config loading and validation. See docs/config.md for the schema.
//
// Every validation step returns the first problem it finds (or nothing) and the first one wins:
// one precise message naming its JSON path beats a cascade of follow-up errors. Sources are read
// through the kinds the caller passes (sources/kinds.cpp holds the table), so nothing here knows a
// source type.
#include "config/config.hpp"

#include "base/log.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <array>
#include <bit>
#include <cctype>
#include <filesystem>
#include <memory>
#include <set>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/file.hpp"
#include "config/json_reader.hpp"

namespace blobd::cfg {

// The listener is for a scraper on the same host (or one reaching it through a tunnel): metrics
// name domains and sources, which are not for the network. So only loopback addresses, written as
// numbers (no resolver at start), plus "localhost" as the common spelling of 127.0.0.1.
result<listen_address, std::string> parse_loopback_listen(std::string_view text) {
    const std::string expected = "expected \"HOST:PORT\" with a loopback HOST (127.0.0.1, [::1] or localhost), got \"" +
                                 std::string(text) + "\"";
    std::string_view host, port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return unexpected{expected};
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            return unexpected{expected};
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
        return unexpected{expected};
    }
    const unsigned long p = std::stoul(std::string(port));
    if (p > 65535) {
        return unexpected{"port " + std::string(port) + " is above 65535"};
    }
    listen_address out;
    out.port = static_cast<std::uint16_t>(p);
    if (host == "localhost") {
        out.host = "127.0.0.1";
        return out;
    }
    const std::string h(host);
    in_addr v4{};
    in6_addr v6{};
    if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) {
        if ((ntohl(v4.s_addr) >> 24) != 127) {
            return unexpected{"\"" + h + "\" is not a loopback address (127.0.0.0/8, ::1 or localhost): the listener is loopback only"};
        }
    } else if (::inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&v6)) {
            return unexpected{"\"" + h + "\" is not a loopback address (127.0.0.0/8, ::1 or localhost): the listener is loopback only"};
        }
    } else {
        return unexpected{expected};
    }
    out.host = h;
    return out;
}
namespace {

using json = nlohmann::json;

constexpr std::uint64_t min_chunk_size = 4096;
constexpr std::uint64_t max_chunk_size = std::uint64_t{64} << 20;
constexpr std::size_t max_domain_name = 255;
constexpr std::size_t max_socket_path = 107;  // sizeof(sockaddr_un::sun_path) minus the NUL
constexpr std::size_t max_file_size = 1 << 20;  // a config is a few hundred bytes; bounds a mistake

// "known types: local, http, oci": the table given to parse, so a new kind is listed by itself.
std::string known_types(source_kinds kinds) {
    std::string out;
    for (const source_kind* k : kinds) {
        out += out.empty() ? "" : ", ";
        out += k->type;
    }
    return "known types: " + out;
}

// Every key some kind accepts, each once, in table order.
std::vector<std::string_view> all_source_keys(source_kinds kinds) {
    std::vector<std::string_view> out;
    for (const source_kind* k : kinds) {
        for (std::string_view key : k->keys) {
            if (std::find(out.begin(), out.end(), key) == out.end()) {
                out.push_back(key);
            }
        }
    }
    return out;
}

// The type picks the kind; the kind's keys are checked here, so its reader sees only keys it knows.
result<source, config_error> read_source(const json& v, const std::string& path, source_kinds kinds) {
    if (!v.is_object()) {
        return unexpected{*wrong_type(path, "an object", v)};
    }
    const json* type = find(v, "type");
    if (!type) {
        // Checked against every key any source type accepts, so a typo like "typ" gets its hint.
        if (auto p = check_keys(v, path, all_source_keys(kinds))) {
            return unexpected{std::move(*p)};
        }
        return unexpected{config_error{member(path, "type"), "required key missing (" + known_types(kinds) + ")"}};
    }
    if (!type->is_string()) {
        return unexpected{*wrong_type(member(path, "type"), "a string", *type)};
    }
    for (const source_kind* k : kinds) {
        if (type->get_ref<const std::string&>() != k->type) {
            continue;
        }
        if (auto p = check_keys(v, path, k->keys)) {
            return unexpected{std::move(*p)};
        }
        auto settings = k->read(v, path);
        if (!settings) {
            return unexpected{std::move(settings.error())};
        }
        return source(*k, std::move(*settings));
    }
    return unexpected{config_error{member(path, "type"),
                                   "unknown source type " + describe(*type) + " (" + known_types(kinds) + ")"}};
}

// A reader for an array of sources of the given kinds.
auto read_sources(source_kinds kinds) {
    return [kinds](const json& v, const std::string& path, std::vector<source>& out) -> problem {
        if (!v.is_array()) {
            return wrong_type(path, "an array", v);
        }
        out.clear();
        for (std::size_t i = 0; i < v.size(); ++i) {
            auto s = read_source(v[i], element(path, i), kinds);
            if (!s) {
                return std::move(s.error());
            }
            out.push_back(std::move(*s));
        }
        return {};
    };
}

problem check_domain_name(const std::string& path, const std::string& name) {
    if (name.empty()) {
        return fail(path, "invalid domain name: must not be empty");
    }
    if (name.size() > max_domain_name) {
        return fail(path, "invalid domain name: " + std::to_string(name.size()) + " bytes long, at most " +
                              std::to_string(max_domain_name) + " allowed");
    }
    if (name.find('/') != std::string::npos) {
        return fail(path, "invalid domain name: must not contain '/'");
    }
    if (std::any_of(name.begin(), name.end(), [](char ch) { return std::iscntrl(static_cast<unsigned char>(ch)); })) {
        return fail(path, "invalid domain name: must not contain control characters");
    }
    return {};
}

// false, "remote" or true.
problem read_store_use(const json& v, const std::string& path, store_use& out) {
    if (v.is_boolean()) {
        out = v.get<bool>() ? store_use::all : store_use::off;
        return {};
    }
    if (v.is_string() && v.get_ref<const std::string&>() == "remote") {
        out = store_use::remote;
        return {};
    }
    return fail(path, "expected true, false or \"remote\" (remote sources only), got " + describe(v));
}

json store_use_json(store_use u) {
    return u == store_use::remote ? json("remote") : json(u == store_use::all);
}

// Names cachefiles itself owns in the cache dir: it looks up exactly these two there
// (fs/cachefiles/cache.c, cachefiles_add_cache) and never lists the directory.
constexpr std::array<std::string_view, 2> cachefiles_dirs{"cache", "graveyard"};

// A size in bytes: any integer from 0 up.
problem read_byte_count(const json& v, const std::string& path, std::uint64_t& out) {
    if (!v.is_number_integer()) {
        return wrong_type(path, "an integer (bytes)", v);
    }
    if (!v.is_number_unsigned()) {
        return fail(path, "expected a number of bytes, 0 or more, got " + describe(v));
    }
    out = v.get<std::uint64_t>();
    return {};
}

problem read_store(const json& v, const std::string& path, config& c) {
    if (!v.is_object()) {
        return wrong_type(path, "an object", v);
    }
    if (auto p = check_keys(v, path, {"enabled", "dir", "verify", "max_bytes"})) {
        return p;
    }
    if (auto p = read_optional(v, path, "enabled", c.store.use, read_store_use)) {
        return p;
    }
    if (auto p = read_optional(v, path, "dir", c.store.dir, read_absolute_path)) {
        return p;
    }
    if (auto p = read_optional(v, path, "verify", c.store.verify, read_bool)) {
        return p;
    }
    if (auto p = read_optional(v, path, "max_bytes", c.store.max_bytes, read_byte_count)) {
        return p;
    }
    if (!find(v, "dir")) {
        return {};
    }
    // cachefiles owns the cache dir's "cache" and "graveyard" trees and culls, renames and deletes
    // in them; the store's files there would be taken for (or as) cache objects.
    const std::filesystem::path dir = std::filesystem::path(c.store.dir).lexically_normal();
    const std::filesystem::path cache = std::filesystem::path(c.cache_dir).lexically_normal();
    auto within = [](const std::filesystem::path& p, const std::filesystem::path& base) {
        auto rel = p.lexically_relative(base);
        return !rel.empty() && *rel.begin() != "..";
    };
    const std::string at = member(path, "dir");
    if (dir.lexically_relative(cache) == ".") {
        return fail(at, "must not be the cache dir itself (the default is <cache.dir>/blobd-store)");
    }
    for (std::string_view owned : cachefiles_dirs) {
        if (within(dir, cache / owned)) {
            return fail(at, "must not be inside " + quote((cache / owned).string()) + ", which cachefiles owns");
        }
    }
    return {};
}

problem read_domains(const json& v, const std::string& path, std::map<std::string, domain_config, std::less<>>& out,
                     source_kinds kinds) {
    if (!v.is_object()) {
        return wrong_type(path, "an object", v);
    }
    for (auto it = v.begin(); it != v.end(); ++it) {
        const std::string at = member(path, it.key());
        if (auto p = check_domain_name(at, it.key())) {
            return p;
        }
        if (!it->is_object()) {
            return wrong_type(at, "an object", *it);
        }
        if (auto p = check_keys(*it, at, {"sources", "prefetch", "store"})) {
            return p;
        }
        const json* sources = find(*it, "sources");
        if (!sources) {
            return fail(member(at, "sources"), "required key missing (the domain's own list of sources)");
        }
        domain_config d;
        if (auto p = read_sources(kinds)(*sources, member(at, "sources"), d.sources)) {
            return p;
        }
        if (const json* pf = find(*it, "prefetch")) {
            bool on = false;
            if (auto p = read_bool(*pf, member(at, "prefetch"), on)) {
                return p;
            }
            d.prefetch = on;
        }
        if (const json* st = find(*it, "store")) {
            store_use use = store_use::remote;
            if (auto p = read_store_use(*st, member(at, "store"), use)) {
                return p;
            }
            d.store = use;
        }
        // An empty override would make every fetch for the domain fail; omitting it is the way
        // to use the top-level list.
        if (d.sources.empty()) {
            return fail(member(at, "sources"), "must not be empty (remove the domain to use the top-level sources)");
        }
        out.emplace(it.key(), std::move(d));
    }
    return {};
}

problem read_cache(const json& v, const std::string& path, config& c) {
    if (!v.is_object()) {
        return wrong_type(path, "an object", v);
    }
    if (auto p = check_keys(v, path, {"dir", "tag", "brun", "bcull", "bstop", "frun", "fcull", "fstop", "cull",
                                      "max_bytes", "check_interval_ms"})) {
        return p;
    }
    if (auto p = read_optional(v, path, "cull", c.cache_cull, read_bool)) {
        return p;
    }
    if (auto p = read_optional(v, path, "max_bytes", c.cache_max_bytes, read_byte_count)) {
        return p;
    }
    if (auto p = read_optional(v, path, "check_interval_ms", c.cache_check_interval_ms, read_uint_between(100, 600'000))) {
        return p;
    }
    // cachefiles' limits (percent free), as in cachefilesd.conf; the kernel wants stop < cull < run.
    for (auto [prefix, limits, what] : {std::tuple{'b', &c.cache_blocks, "blocks"}, std::tuple{'f', &c.cache_files, "files"}}) {
        const std::string p = std::string(1, prefix);
        for (auto [key, field] : {std::pair{p + "run", &limits->run}, std::pair{p + "cull", &limits->cull},
                                  std::pair{p + "stop", &limits->stop}}) {
            if (auto bad = read_optional(v, path, key.c_str(), *field, read_uint_between(0, 99))) {
                return bad;
            }
        }
        if (auto why = proto::cull_limits_problem(*limits)) {
            return fail(member(path, p + "cull"),
                        fmt::format("{} limits: expected {}stop < {}cull < {}run (percent of free {}), got {} < {} < {}",
                                    what, prefix, prefix, prefix, what, limits->stop, limits->cull, limits->run));
        }
    }
    const json* dir = find(v, "dir");
    if (!dir) {
        return fail(member(path, "dir"), "required key missing (the cachefiles cache directory, an absolute path)");
    }
    if (auto p = read_absolute_path(*dir, member(path, "dir"), c.cache_dir)) {
        return p;
    }
    // The tag is sent to the kernel as the argument of a "tag" command; cachefiles rejects an
    // empty one and whitespace would end it early.
    return read_optional(v, path, "tag", c.cache_tag, [](const json& t, const std::string& at, std::string& out) {
        if (auto p = read_string(t, at, out)) {
            return p;
        }
        const bool bad = out.empty() || std::any_of(out.begin(), out.end(), [](char ch) {
            return std::isspace(static_cast<unsigned char>(ch)) || std::iscntrl(static_cast<unsigned char>(ch));
        });
        return bad ? fail(at, "expected a non-empty name without spaces or control characters, got " + quote(out))
                   : problem{};
    });
}

problem read_chunk_size(const json& v, const std::string& path, std::uint64_t& out) {
    if (!v.is_number_integer()) {
        return wrong_type(path, "an integer", v);
    }
    const bool ok = v.is_number_unsigned() && v.get<std::uint64_t>() >= min_chunk_size &&
                    v.get<std::uint64_t>() <= max_chunk_size && std::has_single_bit(v.get<std::uint64_t>());
    if (!ok) {
        return fail(path, "expected a power of two from 4096 (4 KiB) to 67108864 (64 MiB), got " + describe(v));
    }
    out = v.get<std::uint64_t>();
    return {};
}

problem read_group_name(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    if (out.empty()) {
        return {};
    }
    // The names useradd/groupadd accept by default (at most 32 bytes, no leading '-'): a name
    // with '/' or ':' or a control character would never be found, only logged.
    const bool ok = out.size() <= 32 && out[0] != '-' && std::all_of(out.begin(), out.end(), [](char ch) {
                        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                               ch == '_' || ch == '-' || ch == '.';
                    });
    if (!ok) {
        return fail(path, "expected a group name (at most 32 of A-Z a-z 0-9 _ . -, not starting with '-'), got " +
                              describe(v));
    }
    return {};
}

problem read_control_socket(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    if (out.empty()) {
        return {};
    }
    if (auto p = read_absolute_path(v, path, out)) {
        return p;
    }
    if (out.size() > max_socket_path) {
        return fail(path, "too long for a unix socket path (" + std::to_string(out.size()) + " bytes, at most " +
                              std::to_string(max_socket_path) + ")");
    }
    return {};
}

problem read_log_level(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    if (!log::parse_level(out)) {
        return fail(path, "expected one of " + std::string(log::level_names) + ", got " + quote(out));
    }
    return {};
}

problem read_frontend(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    if (out != "cachefiles" && out != "fanotify" && out != "auto") {
        return fail(path, "expected \"cachefiles\", \"fanotify\" or \"auto\", got " + quote(out));
    }
    return {};
}

problem read_fanotify(const json& v, const std::string& path, config::fanotify_config& out) {
    if (!v.is_object()) {
        return wrong_type(path, "an object", v);
    }
    if (auto p = check_keys(v, path, {"read_ahead_kb"})) {
        return p;
    }
    // 64 MiB: far past where fewer events stop paying (1024 already makes 64 MiB 39 events).
    if (auto p = read_optional(v, path, "read_ahead_kb", out.read_ahead_kb, read_uint_between(0, 65'536))) {
        return p;
    }
    return {};
}

problem read_metrics(const json& v, const std::string& path, std::string& listen) {
    if (!v.is_object()) {
        return wrong_type(path, "an object", v);
    }
    if (auto p = check_keys(v, path, {"listen"})) {
        return p;
    }
    const std::string at = member(path, "listen");
    if (const json* l = find(v, "listen")) {
        if (auto p = read_string(*l, at, listen)) {
            return p;
        }
        if (listen.empty()) {
            return {};
        }
        auto a = parse_loopback_listen(listen);
        if (!a) {
            return fail(at, a.error());
        }
    }
    return {};
}

problem read_breaker(const json& v, const std::string& path, config::breaker_config& out) {
    if (!v.is_object()) {
        return wrong_type(path, "an object", v);
    }
    if (auto p = check_keys(v, path, {"failures", "backoff_ms", "max_backoff_ms"})) {
        return p;
    }
    if (auto p = read_optional(v, path, "failures", out.failures, read_uint_between(0, 1000))) {
        return p;
    }
    if (auto p = read_optional(v, path, "backoff_ms", out.backoff_ms, read_uint_between(10, 600'000))) {
        return p;
    }
    if (auto p = read_optional(v, path, "max_backoff_ms", out.max_backoff_ms, read_uint_between(10, 3'600'000))) {
        return p;
    }
    if (out.max_backoff_ms < out.backoff_ms) {
        return fail(member(path, "max_backoff_ms"), "must not be below backoff_ms (" + std::to_string(out.backoff_ms) + ")");
    }
    return {};
}

problem read_config(const json& root, config& c, source_kinds kinds) {
    const std::string path = "$";
    if (!root.is_object()) {
        return wrong_type(path, "an object", root);
    }
    if (auto p = check_keys(root, path,
                            {"cache", "device", "chunk_size", "sources", "domains", "control_socket", "control_socket_group",
                             "log_level",
                             "prefetch", "prefetch_concurrency", "failure_ttl_ms", "read_deadline_ms", "breaker",
                             "store", "frontend", "fanotify", "metrics"})) {
        return p;
    }
    const json* cache = find(root, "cache");
    if (!cache) {
        return fail(member(path, "cache"), "required key missing (an object with the cache \"dir\")");
    }
    if (auto p = read_cache(*cache, member(path, "cache"), c)) {
        return p;
    }
    if (auto p = read_optional(root, path, "device", c.device, read_absolute_path)) {
        return p;
    }
    if (auto p = read_optional(root, path, "chunk_size", c.chunk_size, read_chunk_size)) {
        return p;
    }
    if (auto p = read_optional(root, path, "sources", c.sources, read_sources(kinds))) {
        return p;
    }
    if (auto p = read_optional(root, path, "domains", c.domains,
                               [kinds](const json& v, const std::string& at, auto& out) {
                                   return read_domains(v, at, out, kinds);
                               })) {
        return p;
    }
    if (auto p = read_optional(root, path, "control_socket", c.control_socket, read_control_socket)) {
        return p;
    }
    if (auto p = read_optional(root, path, "control_socket_group", c.control_socket_group, read_group_name)) {
        return p;
    }
    if (auto p = read_optional(root, path, "log_level", c.log_level, read_log_level)) {
        return p;
    }
    if (auto p = read_optional(root, path, "frontend", c.frontend, read_frontend)) {
        return p;
    }
    if (auto p = read_optional(root, path, "fanotify", c.fanotify, read_fanotify)) {
        return p;
    }
    if (auto p = read_optional(root, path, "prefetch", c.prefetch, read_bool)) {
        return p;
    }
    // A minute at most: it only has to outlast the kernel's retries of one failed read.
    if (auto p = read_optional(root, path, "failure_ttl_ms", c.failure_ttl_ms, read_uint_between(0, 60'000))) {
        return p;
    }
    // Ten minutes at most: past that a reader is better served by an error than by waiting.
    if (auto p = read_optional(root, path, "read_deadline_ms", c.read_deadline_ms, read_uint_between(0, 600'000))) {
        return p;
    }
    if (auto p = read_optional(root, path, "breaker", c.breaker, read_breaker)) {
        return p;
    }
    if (auto p = read_optional(root, path, "metrics", c.metrics_listen, read_metrics)) {
        return p;
    }
    if (auto p = read_optional(root, path, "prefetch_concurrency", c.prefetch_concurrency, read_uint_between(1, 64))) {
        return p;
    }
    if (auto p = read_optional(root, path, "store", c, read_store)) {
        return p;
    }
    if (c.store.dir.empty()) {
        // Beside cachefiles' own "cache" and "graveyard", on the same filesystem (see read_store).
        c.store.dir = (std::filesystem::path(c.cache_dir) / "blobd-store").string();
    }
    // Every domain's own list is non-empty (checked above), so with any domain configured there is
    // somewhere to fetch from; an empty top-level list then serves only the listed domains.
    if (c.sources.empty() && c.domains.empty()) {
        return fail(member(path, "sources"), "at least one source is required (here, or in every domain)");
    }
    return {};
}

// nlohmann keeps the last of duplicate keys without a word; two "sources" in one object are a
// mistake worth reporting, so the parse callback tracks the keys of every open object.
class duplicate_key_finder {
public:
    bool on_event(json::parse_event_t event, const json& parsed) {
        switch (event) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start:
            stack_.push_back({event == json::parse_event_t::array_start, {}, {}, 0});
            break;
        case json::parse_event_t::key:
            stack_.back().key = parsed.get<std::string>();
            if (!stack_.back().keys.insert(stack_.back().key).second && !found) {
                found = config_error{path(), "duplicate key"};
            }
            break;
        case json::parse_event_t::object_end:
        case json::parse_event_t::array_end:
            stack_.pop_back();
            next_element();
            break;
        case json::parse_event_t::value:
            next_element();
            break;
        }
        return true;
    }
    problem found;

private:
    struct frame {
        bool array;
        std::set<std::string> keys;
        std::string key;
        std::size_t index;
    };
    void next_element() {
        if (!stack_.empty() && stack_.back().array) {
            ++stack_.back().index;
        }
    }
    std::string path() const {
        std::string p = "$";
        for (const frame& f : stack_) {
            p = f.array ? element(p, f.index) : member(p, f.key);
        }
        return p;
    }
    std::vector<frame> stack_;
};

json sources_to_json(const std::vector<source>& sources) {
    json out = json::array();
    for (const source& s : sources) {
        out.push_back(s.to_json());
    }
    return out;
}

}  // namespace

const std::vector<source>& config::sources_for(std::string_view domain) const {
    const auto it = domains.find(domain);
    return it == domains.end() ? sources : it->second.sources;
}

result<config, config_error> parse(std::string_view json_text, source_kinds kinds) {
    duplicate_key_finder duplicates;
    json root;
    // parse() reports positions only through its exception, so it is caught right here; nothing
    // else in this file throws on bad input.
    try {
        root = json::parse(
            json_text.begin(), json_text.end(),
            [&duplicates](int, json::parse_event_t event, json& parsed) { return duplicates.on_event(event, parsed); });
    } catch (const json::exception& e) {
        std::string_view what = e.what();  // "[json.exception.parse_error.101] parse error at line 1, ..."
        if (const auto end = what.find("] "); what.starts_with("[json.exception.") && end != what.npos) {
            what.remove_prefix(end + 2);
        }
        return unexpected{config_error{"$", "invalid JSON: " + std::string(what)}};
    }
    if (duplicates.found) {
        return unexpected{std::move(*duplicates.found)};
    }
    config c;
    if (auto p = read_config(root, c, kinds)) {
        return unexpected{std::move(*p)};
    }
    return c;
}

result<config, config_error> load_file(const std::string& path, source_kinds kinds) {
    auto text = read_small_file(path, max_file_size);
    if (!text) return unexpected{config_error{"", text.error()}};
    return parse(*text, kinds);
}

// The top-level list first, then the domains by name: the order to_json prints them in.
std::optional<config_error> check_files(const config& c) {
    auto check_list = [](const std::vector<source>& list, const std::string& path) -> problem {
        for (std::size_t i = 0; i < list.size(); ++i) {
            if (const auto check = list[i].kind().check_files) {
                if (auto p = check(list[i].settings(), element(path, i))) {
                    return p;
                }
            }
        }
        return {};
    };
    if (auto p = check_list(c.sources, "$.sources")) {
        return p;
    }
    for (const auto& [name, d] : c.domains) {
        if (auto p = check_list(d.sources, member(member("$.domains", name), "sources"))) {
            return p;
        }
    }
    return {};
}

json source::to_json() const {
    json j = settings_->to_json();
    j["type"] = kind_->type;
    return j;
}

json to_json(const config& c) {
    json domains = json::object();
    for (const auto& [name, d] : c.domains) {
        domains[name] = {{"sources", sources_to_json(d.sources)}};
        if (d.prefetch) domains[name]["prefetch"] = *d.prefetch;
        if (d.store) domains[name]["store"] = store_use_json(*d.store);
    }
    return {
        {"cache",
         {{"dir", c.cache_dir},
          {"tag", c.cache_tag},
          {"brun", c.cache_blocks.run},
          {"bcull", c.cache_blocks.cull},
          {"bstop", c.cache_blocks.stop},
          {"frun", c.cache_files.run},
          {"fcull", c.cache_files.cull},
          {"fstop", c.cache_files.stop},
          {"cull", c.cache_cull},
          {"max_bytes", c.cache_max_bytes},
          {"check_interval_ms", c.cache_check_interval_ms}}},
        {"device", c.device},
        {"frontend", c.frontend},
        {"fanotify", {{"read_ahead_kb", c.fanotify.read_ahead_kb}}},
        {"chunk_size", c.chunk_size},
        {"sources", sources_to_json(c.sources)},
        {"domains", std::move(domains)},
        {"control_socket", c.control_socket},
        {"control_socket_group", c.control_socket_group},
        {"log_level", c.log_level},
        {"prefetch", c.prefetch},
        {"prefetch_concurrency", c.prefetch_concurrency},
        {"failure_ttl_ms", c.failure_ttl_ms},
        {"read_deadline_ms", c.read_deadline_ms},
        {"metrics", {{"listen", c.metrics_listen}}},
        {"breaker",
         {{"failures", c.breaker.failures},
          {"backoff_ms", c.breaker.backoff_ms},
          {"max_backoff_ms", c.breaker.max_backoff_ms}}},
        {"store",
         {{"enabled", store_use_json(c.store.use)},
          {"dir", c.store.dir},
          {"verify", c.store.verify},
          {"max_bytes", c.store.max_bytes}}},
    };
}

}  // namespace blobd::cfg
