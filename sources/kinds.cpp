// The source kinds: each one's reader, writer, file check and maker, and the table that lists
// them. Readers see an object whose keys config/ already checked against the kind's key list.
#include "sources/kinds.hpp"

#include <array>

#include "config/json_reader.hpp"
#include "fetchers/http/http_client.hpp"
#include "fetchers/http/http_fetcher.hpp"
#include "fetchers/local_fetcher.hpp"
#include "fetchers/oci/oci_fetcher.hpp"
#include "io/net_thread.hpp"
#include "protocol/http/http_util.hpp"
#include "protocol/oci/oci_util.hpp"
#include "sources/make_source.hpp"

namespace blobd::sources {
namespace {

using json = nlohmann::json;
using namespace cfg;  // the JSON reading helpers (config/json_reader.hpp)

constexpr std::uint32_t max_timeout_ms = 3'600'000;  // an hour: beyond that a stalled server is just hung
constexpr std::uint32_t max_retries = 10;
constexpr std::uint32_t max_connections_per_host = 64;

// ---- transport: the one reader and writer of the keys http and oci share ----

// The client's own parser (http::parse_proxy), so a proxy that loads is one the client can use.
problem read_proxy(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    if (out.empty()) {
        return {};  // "" = direct, as without the key
    }
    if (auto px = http::parse_proxy(out); !px) {
        return fail(path, "bad proxy URL: " + px.error());
    }
    return {};
}

problem read_transport(const json& v, const std::string& path, transport& t) {
    if (auto p = read_optional(v, path, "ca_file", t.ca_file, read_optional_path)) {
        return p;
    }
    if (auto p = read_optional(v, path, "insecure", t.insecure, read_bool)) {
        return p;
    }
    if (auto p = read_optional(v, path, "timeout_ms", t.timeout_ms, read_uint_between(1, max_timeout_ms))) {
        return p;
    }
    if (auto p = read_optional(v, path, "retries", t.retries, read_uint_between(0, max_retries))) {
        return p;
    }
    if (auto p = read_optional(v, path, "max_connections", t.max_connections,
                               read_uint_between(1, max_connections_per_host))) {
        return p;
    }
    return read_optional(v, path, "proxy", t.proxy, read_proxy);
}

void write_transport(const transport& t, json& out) {
    out["ca_file"] = t.ca_file;
    out["insecure"] = t.insecure;
    out["timeout_ms"] = t.timeout_ms;
    out["retries"] = t.retries;
    out["max_connections"] = t.max_connections;
    if (!t.proxy.empty()) out["proxy"] = http::masked_proxy(t.proxy);
}

// Loading the CA file the way the client will (http::ca_file_error) is what makes a bad file fail
// --check-config instead of the start. Checked even with "insecure" (which loads no CA): turning
// verification back on must not uncover a broken file.
problem check_transport(const transport& t, const std::string& path) {
    if (t.ca_file.empty()) {
        return {};
    }
    if (auto e = http::ca_file_error(t.ca_file)) {
        return fail(member(path, "ca_file"), *e);
    }
    return {};
}

// ---- local ----

constexpr std::array<std::string_view, 2> local_keys{"type", "path"};

problem read_local(const json& v, const std::string& path, local_settings& s) {
    const json* dir = find(v, "path");
    if (!dir) {
        return fail(member(path, "path"), "required key missing (the directory holding the blobs)");
    }
    return read_absolute_path(*dir, member(path, "path"), s.path);
}

std::shared_ptr<fetcher> make_local(event_loop& loop, std::unique_ptr<net_thread>&, const local_settings& s) {
    return std::make_shared<local_fetcher>(loop, s.path);
}

// ---- http ----

constexpr std::array<std::string_view, 8> http_keys{"type",    "url",        "ca_file", "insecure",
                                                    "timeout_ms", "retries", "max_connections", "proxy"};

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

problem read_http(const json& v, const std::string& path, http_settings& s) {
    const json* url = find(v, "url");
    if (!url) {
        return fail(member(path, "url"), "required key missing (the base URL: blobs are <url>/<name>)");
    }
    if (auto p = read_http_url(*url, member(path, "url"), s.url)) {
        return p;
    }
    return read_transport(v, path, s.net);
}

problem check_http(const http_settings& s, const std::string& path) { return check_transport(s.net, path); }

std::shared_ptr<fetcher> make_http(event_loop& loop, std::unique_ptr<net_thread>& net, const http_settings& s) {
    if (!net) net = std::make_unique<net_thread>();
    return std::make_shared<http_fetcher>(loop, *net, http_options_from(s));
}

// ---- oci ----

constexpr std::array<std::string_view, 13> oci_keys{"type",      "registry",   "repository", "mirrors",
                                                   "username",  "password",   "auth_file",  "ca_file",
                                                   "insecure",  "timeout_ms", "retries",    "max_connections",
                                                   "proxy"};

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

problem read_oci(const json& v, const std::string& path, oci_settings& s) {
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
    return read_transport(v, path, s.net);
}

// The file is read again when the fetcher is made (oci_options_from): the check is for
// --check-config and an early, path-named error at start, not a cache of the credentials.
problem check_oci(const oci_settings& s, const std::string& path) {
    if (!s.auth_file.empty()) {
        if (auto auths = read_auth_file(s.auth_file); !auths) {
            return fail(member(path, "auth_file"), auths.error());
        }
    }
    return check_transport(s.net, path);
}

std::shared_ptr<fetcher> make_oci(event_loop& loop, std::unique_ptr<net_thread>& net, const oci_settings& s) {
    if (!net) net = std::make_unique<net_thread>();
    return std::make_shared<oci_fetcher>(loop, *net, oci_options_from(s));
}

// ---- the table ----

// Adapters from a kind's typed functions to the type-erased entry. A source's settings are always
// what its kind's reader made (or source_of paired), so the casts below hold; a failed one is a bug
// and throws std::bad_cast.
template <class T>
const T& settings(const cfg::source_settings& s) {
    return dynamic_cast<const cfg::settings_of<T>&>(s).value();
}

template <class T, problem (*Read)(const json&, const std::string&, T&)>
result<std::shared_ptr<const cfg::source_settings>, config_error> read_as(const json& v, const std::string& path) {
    T s;
    if (auto p = Read(v, path, s)) {
        return unexpected{std::move(*p)};
    }
    return std::shared_ptr<const cfg::source_settings>(std::make_shared<const cfg::settings_of<T>>(std::move(s)));
}

template <class T, problem (*Check)(const T&, const std::string&)>
std::optional<config_error> check_as(const cfg::source_settings& s, const std::string& path) {
    return Check(settings<T>(s), path);
}

template <class T, std::shared_ptr<fetcher> (*Make)(event_loop&, std::unique_ptr<net_thread>&, const T&)>
std::shared_ptr<fetcher> make_as(event_loop& loop, std::unique_ptr<net_thread>& net, const cfg::source& s) {
    return Make(loop, net, settings<T>(s.settings()));
}

const kind local_kind{{"local", local_keys, read_as<local_settings, read_local>, nullptr, false},
                      make_as<local_settings, make_local>};
const kind http_kind{{"http", http_keys, read_as<http_settings, read_http>, check_as<http_settings, check_http>, true},
                     make_as<http_settings, make_http>};
const kind oci_kind{{"oci", oci_keys, read_as<oci_settings, read_oci>, check_as<oci_settings, check_oci>, true},
                    make_as<oci_settings, make_oci>};

// One entry per kind; "known types" messages list them in this order.
const std::array<const kind*, 3> table{&local_kind, &http_kind, &oci_kind};

// The same pointers, as config/ takes them (a kind* converts to its cfg::source_kind base).
const std::array<const cfg::source_kind*, table.size()> config_table = [] {
    std::array<const cfg::source_kind*, table.size()> out{};
    for (std::size_t i = 0; i < table.size(); ++i) out[i] = table[i];
    return out;
}();

template <class T>
cfg::source make_config_source(const kind& k, T s) {
    return cfg::source(k, std::make_shared<const cfg::settings_of<T>>(std::move(s)));
}

}  // namespace

json local_settings::to_json() const { return {{"path", path}}; }

json http_settings::to_json() const {
    // What --check-config prints: a signed URL's query is its secret.
    json j = {{"url", http::masked_url(url)}};
    write_transport(net, j);
    return j;
}

json oci_settings::to_json() const {
    json j = {{"registry", registry}, {"repository", repository}, {"mirrors", mirrors}};
    if (!username.empty()) {
        j["username"] = username;
        j["password"] = "***";
    }
    if (!auth_file.empty()) {
        j["auth_file"] = auth_file;
    }
    write_transport(net, j);
    return j;
}

std::span<const kind* const> kinds() { return table; }
cfg::source_kinds config_kinds() { return config_table; }

const kind* kind_of(const cfg::source& s) {
    for (const kind* k : table) {
        if (static_cast<const cfg::source_kind*>(k) == &s.kind()) return k;
    }
    return nullptr;
}

cfg::source source_of(local_settings s) { return make_config_source(local_kind, std::move(s)); }
cfg::source source_of(http_settings s) { return make_config_source(http_kind, std::move(s)); }
cfg::source source_of(oci_settings s) { return make_config_source(oci_kind, std::move(s)); }

result<cfg::config, cfg::config_error> parse_config(std::string_view json_text) {
    return cfg::parse(json_text, config_kinds());
}

result<cfg::config, cfg::config_error> load_config(const std::string& path) {
    auto c = cfg::load_file(path, config_kinds());
    if (!c) {
        return c;
    }
    if (auto p = cfg::check_files(*c)) {
        return unexpected{std::move(*p)};
    }
    return c;
}

}  // namespace blobd::sources
