// JSON config loading and validation. See docs/config.md for the schema.
//
// Every validation step returns the first problem it finds (or nothing) and the first one wins:
// one precise message naming its JSON path beats a cascade of follow-up errors.
#include "config/config.hpp"

#include "base/file.hpp"
#include "base/log.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "protocol/http/http_util.hpp"
#include "protocol/oci/oci_util.hpp"

namespace blobd::cfg {
namespace {

using json = nlohmann::json;
using problem = std::optional<config_error>;

constexpr std::uint64_t min_chunk_size = 4096;
constexpr std::uint64_t max_chunk_size = std::uint64_t{64} << 20;
constexpr std::size_t max_domain_name = 255;
constexpr std::size_t max_socket_path = 107;  // sizeof(sockaddr_un::sun_path) minus the NUL
constexpr std::size_t max_file_size = 1 << 20;  // a config is a few hundred bytes; bounds a mistake
constexpr std::uint32_t max_timeout_ms = 3'600'000;  // an hour: beyond that a stalled server is just hung
constexpr std::uint32_t max_retries = 10;
constexpr std::uint32_t max_connections_per_host = 64;

problem fail(std::string path, std::string message) {
    return config_error{std::move(path), std::move(message)};
}

// Config strings come from parsed JSON and are valid UTF-8, but `replace` keeps dump() from
// throwing should that ever change.
std::string quote(std::string_view s) {
    return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string join(std::initializer_list<std::string_view> words) {
    std::string out;
    for (std::string_view w : words) {
        out += out.empty() ? "" : ", ";
        out += w;
    }
    return out;
}

// Plain keys read naturally as `$.a.b`; anything else (dots, spaces, "") is quoted, `$["a.b"]`,
// so a path always names exactly one value.
std::string member(const std::string& path, std::string_view key) {
    const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    return plain ? path + "." + std::string(key) : path + "[" + quote(key) + "]";
}

std::string element(const std::string& path, std::size_t index) {
    return path + "[" + std::to_string(index) + "]";
}

// Scalars are shown by value ("got -1", "got \"info\"") since the value usually is the mistake.
std::string describe(const json& v) {
    if (v.is_object()) {
        return "an object";
    }
    if (v.is_array()) {
        return "an array";
    }
    return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

problem wrong_type(const std::string& path, std::string_view expected, const json& got) {
    return fail(path, "expected " + std::string(expected) + ", got " + describe(got));
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    std::iota(row.begin(), row.end(), std::size_t{0});
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = std::exchange(row[0], i);
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t substitute = diagonal + (a[i - 1] != b[j - 1] ? 1 : 0);
            diagonal = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
        }
    }
    return row[b.size()];
}

// Unknown keys are errors so that a typo never silently falls back to a default.
problem check_keys(const json& obj, const std::string& path, std::initializer_list<std::string_view> known) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
        const std::string& key = it.key();
        if (std::find(known.begin(), known.end(), key) != known.end()) {
            continue;
        }
        std::string_view best;
        std::size_t best_distance = 3;  // suggest near-misses only; "x" is not a typo of "tag"
        for (std::string_view k : known) {
            const std::size_t d = edit_distance(key, k);
            if (d < best_distance && d < key.size()) {
                best = k;
                best_distance = d;
            }
        }
        return fail(member(path, key), best.empty() ? "unknown key (known keys: " + join(known) + ")"
                                                    : "unknown key (did you mean " + quote(best) + "?)");
    }
    return {};
}

const json* find(const json& obj, const char* key) {
    const auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
}

problem read_string(const json& v, const std::string& path, std::string& out) {
    if (!v.is_string()) {
        return wrong_type(path, "a string", v);
    }
    out = v.get<std::string>();
    return {};
}

// An embedded NUL would silently truncate the path at the syscall boundary.
problem read_absolute_path(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    if (out.empty() || out.front() != '/') {
        return fail(path, "expected an absolute path, got " + quote(out));
    }
    if (out.find('\0') != std::string::npos) {
        return fail(path, "must not contain a NUL character");
    }
    return {};
}

problem read_bool(const json& v, const std::string& path, bool& out) {
    if (!v.is_boolean()) {
        return wrong_type(path, "a boolean", v);
    }
    out = v.get<bool>();
    return {};
}

// A reader for an integer in [lo, hi].
auto read_uint_between(std::uint32_t lo, std::uint32_t hi) {
    return [lo, hi](const json& v, const std::string& path, std::uint32_t& out) -> problem {
        if (!v.is_number_integer()) {
            return wrong_type(path, "an integer", v);
        }
        if (!v.is_number_unsigned() || v.get<std::uint64_t>() < lo || v.get<std::uint64_t>() > hi) {
            return fail(path, "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                                  ", got " + describe(v));
        }
        out = static_cast<std::uint32_t>(v.get<std::uint64_t>());
        return {};
    };
}

// The same parser the HTTP fetcher uses, so a URL that loads is a URL the fetcher can use. The
// message does not repeat the URL: its query string may carry a token.
problem read_http_url(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    if (auto u = http::parse_url(out); !u) {
        return fail(path, "expected an http:// or https:// URL with a host: " + u.error());
    }
    return {};
}

// Reads an optional key; absent keys keep the struct's default.
template <class Reader, class T>
problem read_optional(const json& obj, const std::string& path, const char* key, T& out, Reader reader) {
    const json* v = find(obj, key);
    return v ? reader(*v, member(path, key), out) : problem{};
}

problem read_local(const json& v, const std::string& path, source& out) {
    if (auto p = check_keys(v, path, {"type", "path"})) {
        return p;
    }
    const json* dir = find(v, "path");
    if (!dir) {
        return fail(member(path, "path"), "required key missing (the directory holding the blobs)");
    }
    local_source s;
    if (auto p = read_absolute_path(*dir, member(path, "path"), s.path)) {
        return p;
    }
    out = std::move(s);
    return {};
}


// "" (the default: none) or an absolute path.
problem read_optional_path(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    return out.empty() ? problem{} : read_absolute_path(v, path, out);
}

// The connection settings http and oci sources share (same keys, same limits, same meaning).
template <class Source>
problem read_transport(const json& v, const std::string& path, Source& s) {
    if (auto p = read_optional(v, path, "ca_file", s.ca_file, read_optional_path)) {
        return p;
    }
    if (auto p = read_optional(v, path, "insecure", s.insecure, read_bool)) {
        return p;
    }
    if (auto p = read_optional(v, path, "timeout_ms", s.timeout_ms, read_uint_between(1, max_timeout_ms))) {
        return p;
    }
    if (auto p = read_optional(v, path, "retries", s.retries, read_uint_between(0, max_retries))) {
        return p;
    }
    if (auto p = read_optional(v, path, "max_connections", s.max_connections,
                               read_uint_between(1, max_connections_per_host))) {
        return p;
    }
    return {};
}

problem read_http(const json& v, const std::string& path, source& out) {
    if (auto p = check_keys(v, path,
                            {"type", "url", "ca_file", "insecure", "timeout_ms", "retries", "max_connections"})) {
        return p;
    }
    const json* url = find(v, "url");
    if (!url) {
        return fail(member(path, "url"), "required key missing (the base URL: blobs are <url>/<name>)");
    }
    http_source s;
    if (auto p = read_http_url(*url, member(path, "url"), s.url)) {
        return p;
    }
    if (auto p = read_transport(v, path, s)) {
        return p;
    }
    out = std::move(s);
    return {};
}

// A registry or mirror base URL: http(s), no query string (see oci::registry_url_error). As for
// http URLs, the message does not repeat the URL.
problem read_registry_url(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    if (auto e = oci::registry_url_error(out)) {
        return fail(path, *e);
    }
    return {};
}

problem read_mirrors(const json& v, const std::string& path, std::vector<std::string>& out) {
    if (!v.is_array()) {
        return wrong_type(path, "an array of URLs", v);
    }
    out.clear();
    for (std::size_t i = 0; i < v.size(); ++i) {
        std::string u;
        if (auto p = read_registry_url(v[i], element(path, i), u)) {
            return p;
        }
        out.push_back(std::move(u));
    }
    return {};
}

problem read_repository(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    if (auto e = oci::repository_error(out)) {
        return fail(path, "invalid repository name " + quote(out) + ": " + *e);
    }
    return {};
}

// Credentials go into a header (Basic: base64 of "user:pass"), so a ':' in the user name would
// split wrongly. Messages never show the password.
problem read_credential(const json& v, const std::string& path, std::string& out, bool is_user) {
    if (!v.is_string()) {
        return fail(path, "expected a string");
    }
    out = v.get<std::string>();
    if (is_user && (out.empty() || out.find(':') != std::string::npos)) {
        return fail(path, "expected a non-empty user name without ':'");
    }
    return {};
}

problem read_oci(const json& v, const std::string& path, source& out) {
    if (auto p = check_keys(v, path,
                            {"type", "registry", "repository", "mirrors", "username", "password", "auth_file",
                             "ca_file", "insecure", "timeout_ms", "retries", "max_connections"})) {
        return p;
    }
    oci_source s;
    const json* registry = find(v, "registry");
    if (!registry) {
        return fail(member(path, "registry"), "required key missing (the registry's base URL, e.g. https://host:5000)");
    }
    if (auto p = read_registry_url(*registry, member(path, "registry"), s.registry)) {
        return p;
    }
    const json* repository = find(v, "repository");
    if (!repository) {
        return fail(member(path, "repository"), "required key missing (the repository, e.g. \"library/app\")");
    }
    if (auto p = read_repository(*repository, member(path, "repository"), s.repository)) {
        return p;
    }
    if (auto p = read_optional(v, path, "mirrors", s.mirrors, read_mirrors)) {
        return p;
    }
    const json* user = find(v, "username");
    const json* pass = find(v, "password");
    if (user && !pass) {
        return fail(member(path, "password"), "required with \"username\" (give both or neither)");
    }
    if (pass && !user) {
        return fail(member(path, "username"), "required with \"password\" (give both or neither)");
    }
    if (user) {
        if (auto p = read_credential(*user, member(path, "username"), s.username, true)) {
            return p;
        }
        if (auto p = read_credential(*pass, member(path, "password"), s.password, false)) {
            return p;
        }
    }
    if (const json* af = find(v, "auth_file")) {
        if (user) {
            return fail(member(path, "auth_file"), "give either \"username\"/\"password\" or \"auth_file\", not both");
        }
        if (auto p = read_absolute_path(*af, member(path, "auth_file"), s.auth_file)) {
            return p;
        }
    }
    if (auto p = read_transport(v, path, s)) {
        return p;
    }
    out = std::move(s);
    return {};
}

struct source_kind {
    std::string_view type;
    problem (*read)(const json& v, const std::string& path, source& out);
};
// One entry per alternative of `source`; "known types" messages are built from this table.
constexpr std::array<source_kind, 3> source_kinds{
    {{"local", read_local}, {"http", read_http}, {"oci", read_oci}}};

std::string known_types() {
    std::string out;
    for (const source_kind& k : source_kinds) {
        out += out.empty() ? "" : ", ";
        out += k.type;
    }
    return "known types: " + out;
}

problem read_source(const json& v, const std::string& path, source& out) {
    if (!v.is_object()) {
        return wrong_type(path, "an object", v);
    }
    const json* type = find(v, "type");
    if (!type) {
        // Checked against every key any source type accepts, so a typo like "typ" gets its hint.
        if (auto p = check_keys(v, path,
                                {"type", "path", "url", "ca_file", "insecure", "timeout_ms", "retries",
                                 "max_connections", "registry", "repository", "mirrors", "username", "password",
                                 "auth_file"})) {
            return p;
        }
        return fail(member(path, "type"), "required key missing (" + known_types() + ")");
    }
    if (!type->is_string()) {
        return wrong_type(member(path, "type"), "a string", *type);
    }
    for (const source_kind& k : source_kinds) {
        if (type->get_ref<const std::string&>() == k.type) {
            return k.read(v, path, out);
        }
    }
    return fail(member(path, "type"), "unknown source type " + describe(*type) + " (" + known_types() + ")");
}

problem read_sources(const json& v, const std::string& path, std::vector<source>& out) {
    if (!v.is_array()) {
        return wrong_type(path, "an array", v);
    }
    out.clear();
    for (std::size_t i = 0; i < v.size(); ++i) {
        source s;
        if (auto p = read_source(v[i], element(path, i), s)) {
            return p;
        }
        out.push_back(std::move(s));
    }
    return {};
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
    if (name.find('\0') != std::string::npos) {
        return fail(path, "invalid domain name: must not contain a NUL character");
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

problem read_domains(const json& v, const std::string& path, std::map<std::string, domain_config, std::less<>>& out) {
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
        if (auto p = read_sources(*sources, member(at, "sources"), d.sources)) {
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
    if (auto p = check_keys(v, path, {"dir", "tag"})) {
        return p;
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

problem read_config(const json& root, config& c) {
    const std::string path = "$";
    if (!root.is_object()) {
        return wrong_type(path, "an object", root);
    }
    if (auto p = check_keys(root, path,
                            {"cache", "device", "chunk_size", "sources", "domains", "control_socket", "log_level",
                             "prefetch", "prefetch_concurrency", "store"})) {
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
    if (auto p = read_optional(root, path, "sources", c.sources, read_sources)) {
        return p;
    }
    if (auto p = read_optional(root, path, "domains", c.domains, read_domains)) {
        return p;
    }
    if (auto p = read_optional(root, path, "control_socket", c.control_socket, read_control_socket)) {
        return p;
    }
    if (auto p = read_optional(root, path, "log_level", c.log_level, read_log_level)) {
        return p;
    }
    if (auto p = read_optional(root, path, "prefetch", c.prefetch, read_bool)) {
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

struct source_writer {
    json operator()(const local_source& s) const { return {{"type", "local"}, {"path", s.path}}; }
    json operator()(const http_source& s) const {
        return {{"type", "http"},         {"url", s.url},         {"ca_file", s.ca_file},
                {"insecure", s.insecure}, {"timeout_ms", s.timeout_ms}, {"retries", s.retries},
                {"max_connections", s.max_connections}};
    }
    // The password is never written out: this is what --check-config prints.
    json operator()(const oci_source& s) const {
        json j = {{"type", "oci"},
                  {"registry", s.registry},
                  {"repository", s.repository},
                  {"mirrors", s.mirrors},
                  {"ca_file", s.ca_file},
                  {"insecure", s.insecure},
                  {"timeout_ms", s.timeout_ms},
                  {"retries", s.retries},
                  {"max_connections", s.max_connections}};
        if (!s.username.empty()) {
            j["username"] = s.username;
            j["password"] = "***";
        }
        if (!s.auth_file.empty()) {
            j["auth_file"] = s.auth_file;
        }
        return j;
    }
};

json sources_to_json(const std::vector<source>& sources) {
    json out = json::array();
    for (const source& s : sources) {
        out.push_back(std::visit(source_writer{}, s));
    }
    return out;
}

}  // namespace

const std::vector<source>& config::sources_for(std::string_view domain) const {
    const auto it = domains.find(domain);
    return it == domains.end() ? sources : it->second.sources;
}

result<config, config_error> parse(std::string_view json_text) {
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
    if (auto p = read_config(root, c)) {
        return unexpected{std::move(*p)};
    }
    return c;
}

result<config, config_error> load_file(const std::string& path) {
    auto text = read_small_file(path, max_file_size);
    if (!text) return unexpected{config_error{"", text.error()}};
    return parse(*text);
}

json to_json(const config& c) {
    json domains = json::object();
    for (const auto& [name, d] : c.domains) {
        domains[name] = {{"sources", sources_to_json(d.sources)}};
        if (d.prefetch) domains[name]["prefetch"] = *d.prefetch;
        if (d.store) domains[name]["store"] = store_use_json(*d.store);
    }
    return {
        {"cache", {{"dir", c.cache_dir}, {"tag", c.cache_tag}}},
        {"device", c.device},
        {"chunk_size", c.chunk_size},
        {"sources", sources_to_json(c.sources)},
        {"domains", std::move(domains)},
        {"control_socket", c.control_socket},
        {"log_level", c.log_level},
        {"prefetch", c.prefetch},
        {"prefetch_concurrency", c.prefetch_concurrency},
        {"store",
         {{"enabled", store_use_json(c.store.use)},
          {"dir", c.store.dir},
          {"verify", c.store.verify},
          {"max_bytes", c.store.max_bytes}}},
    };
}

}  // namespace blobd::cfg
