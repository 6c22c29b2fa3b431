#include "sources/make_source.hpp"

#include <system_error>

#include <fmt/format.h>

#include "base/file.hpp"
#include "fetchers/http/http_fetcher.hpp"
#include "fetchers/local_fetcher.hpp"
#include "fetchers/oci/oci_fetcher.hpp"
#include "io/net_thread.hpp"
#include "protocol/oci/oci_util.hpp"

namespace blobd::sources {
namespace {

constexpr std::size_t max_auth_file = 1 << 20;

[[noreturn]] void invalid(const std::string& what) { throw std::system_error(EINVAL, std::generic_category(), what); }

}  // namespace

http_options http_options_from(const cfg::http_source& s) {
    http_options o;
    o.url = s.url;
    o.ca_file = s.ca_file;
    o.insecure = s.insecure;
    o.timeout = std::chrono::milliseconds(s.timeout_ms);
    o.retries = s.retries;
    o.max_connections = s.max_connections;
    return o;
}

oci_options oci_options_from(const cfg::oci_source& s) {
    oci_options o;
    o.registry = s.registry;
    o.repository = s.repository;
    o.mirrors = s.mirrors;
    if (!s.username.empty()) o.credentials = oci::credentials{s.username, s.password};
    if (!s.auth_file.empty()) {
        auto text = read_small_file(s.auth_file, max_auth_file);
        if (!text) invalid("auth_file " + text.error());
        auto auths = oci::parse_auth_file(*text);
        if (!auths) invalid(fmt::format("auth_file {}: {}", s.auth_file, auths.error()));
        o.auths = std::move(*auths);
    }
    o.http.ca_file = s.ca_file;
    o.http.insecure = s.insecure;
    o.http.timeout = std::chrono::milliseconds(s.timeout_ms);
    o.http.retries = s.retries;
    o.http.max_connections = s.max_connections;
    return o;
}

// Source configs are compared by value by the caller, so two domains naming the same directory
// share one fetcher (and its open-file cache and counters).
std::shared_ptr<fetcher> make_source(event_loop& loop, std::unique_ptr<net_thread>& net, const cfg::source& s) {
    return std::visit([&](const auto& src) -> std::shared_ptr<fetcher> {
        using T = std::decay_t<decltype(src)>;
        if constexpr (std::is_same_v<T, cfg::local_source>) {
            return std::make_shared<local_fetcher>(loop, src.path);
        } else if constexpr (std::is_same_v<T, cfg::http_source>) {
            if (!net) net = std::make_unique<net_thread>();
            return std::make_shared<http_fetcher>(loop, *net, http_options_from(src));
        } else if constexpr (std::is_same_v<T, cfg::oci_source>) {
            if (!net) net = std::make_unique<net_thread>();
            return std::make_shared<oci_fetcher>(loop, *net, oci_options_from(src));
        }
    }, s);
}

}  // namespace blobd::sources
