#include "sources/make_source.hpp"

#include <system_error>

#include <fmt/format.h>

#include "base/file.hpp"
#include "protocol/oci/oci_util.hpp"

namespace blobd::sources {
namespace {

constexpr std::size_t max_auth_file = 1 << 20;

[[noreturn]] void invalid(const std::string& what) { throw std::system_error(EINVAL, std::generic_category(), what); }

}  // namespace

void apply(const transport& t, http_options& o) {
    o.ca_file = t.ca_file;
    o.insecure = t.insecure;
    o.timeout = std::chrono::milliseconds(t.timeout_ms);
    o.retries = t.retries;
    o.max_connections = t.max_connections;
    o.proxy = t.proxy;
}

http_options http_options_from(const http_settings& s) {
    http_options o;
    o.url = s.url;
    apply(s.net, o);
    return o;
}

result<std::map<std::string, oci::credentials>, std::string> read_auth_file(const std::string& path) {
    auto text = read_small_file(path, max_auth_file);
    if (!text) return unexpected{text.error()};
    auto auths = oci::parse_auth_file(*text);
    if (!auths) return unexpected{fmt::format("{}: {}", path, auths.error())};
    return std::move(*auths);
}

oci_options oci_options_from(const oci_settings& s) {
    oci_options o;
    o.registry = s.registry;
    o.repository = s.repository;
    o.mirrors = s.mirrors;
    if (!s.username.empty()) o.credentials = oci::credentials{s.username, s.password};
    if (!s.auth_file.empty()) {
        auto auths = read_auth_file(s.auth_file);
        if (!auths) invalid("auth_file " + auths.error());
        o.auths = std::move(*auths);
    }
    apply(s.net, o.http);
    return o;
}

// Source configs are compared by value by the caller, so two domains naming the same directory
// share one fetcher (and its open-file cache and counters).
std::shared_ptr<fetcher> make_source(event_loop& loop, std::unique_ptr<net_thread>& net, const cfg::source& s) {
    const kind* k = kind_of(s);
    if (!k) invalid(fmt::format("source type \"{}\" is not in the daemon's table of kinds", s.kind().type));
    return k->make(loop, net, s);
}

}  // namespace blobd::sources
