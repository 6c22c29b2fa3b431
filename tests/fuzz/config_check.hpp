// Fuzz check for the JSON config (cfg::parse with the daemon's own table of source kinds,
// sources::parse_config).
//
// Input: the config text, raw. What must hold: an error names a JSON path ("$..."); an accepted
// config meets every documented limit (absolute paths without control characters, chunk size a
// power of two in range, domain names, URLs that parse, valid repositories); what
// --check-config prints (cfg::to_json) masks passwords and URL queries, and is a fixed point:
// printed, parsed and printed again it is the same. Test code; any thread.
#pragma once

#include <bit>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "protocol/http/http_util.hpp"
#include "protocol/oci/oci_util.hpp"
#include "sources/kinds.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace blobd::fuzz {

inline bool absolute_path_ok(const std::string& p) {
    if (p.empty() || p.front() != '/') return false;
    for (char c : p) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
    }
    return true;
}

// The "proxy" key both remote kinds share: parsed by the client's own parser, and printed only with
// its password masked.
inline void check_proxy(const std::string& proxy, const nlohmann::json& printed) {
    if (proxy.empty()) {
        FUZZ_REQUIRE(!printed.contains("proxy"));
        return;
    }
    const auto p = http::parse_proxy(proxy);
    FUZZ_REQUIRE(p.has_value());
    FUZZ_REQUIRE(printed.at("proxy") == p->shown);
    FUZZ_REQUIRE(p->shown.find('@') == std::string::npos || p->shown.find(":***@") != std::string::npos);
}

inline void check_source(const cfg::source& s) {
    const nlohmann::json printed = s.to_json();
    FUZZ_REQUIRE(printed.at("type") == std::string(s.kind().type));
    if (const auto* l = s.as<sources::local_settings>()) {
        FUZZ_REQUIRE(absolute_path_ok(l->path));
    } else if (const auto* h = s.as<sources::http_settings>()) {
        const auto u = http::parse_url(h->url);
        FUZZ_REQUIRE(u.has_value());
        // A signed URL's query is its secret: printed as "***" only.
        FUZZ_REQUIRE(printed.at("url") == http::masked_url(h->url));
        FUZZ_REQUIRE(!u->has_query || printed.at("url").get<std::string>().ends_with("?***"));
        FUZZ_REQUIRE(h->net.ca_file.empty() || absolute_path_ok(h->net.ca_file));
        check_proxy(h->net.proxy, printed);
    } else if (const auto* o = s.as<sources::oci_settings>()) {
        FUZZ_REQUIRE(!oci::registry_url_error(o->registry));
        for (const auto& m : o->mirrors) FUZZ_REQUIRE(!oci::registry_url_error(m));
        FUZZ_REQUIRE(!oci::repository_error(o->repository));
        FUZZ_REQUIRE(o->username.find(':') == std::string::npos);
        if (o->username.empty()) {
            FUZZ_REQUIRE(o->password.empty() && !printed.contains("password"));
        } else {
            FUZZ_REQUIRE(printed.at("password") == "***");
        }
        FUZZ_REQUIRE(o->auth_file.empty() || (absolute_path_ok(o->auth_file) && o->username.empty()));
        check_proxy(o->net.proxy, printed);
    } else {
        FUZZ_REQUIRE(!"a source of a kind outside the table");
    }
}

inline void check_config_text(std::string_view text) {
    const auto c = sources::parse_config(text);
    if (!c) {
        FUZZ_REQUIRE(c.error().path.starts_with("$"));
        FUZZ_REQUIRE(!c.error().message.empty());
        return;
    }
    FUZZ_REQUIRE(absolute_path_ok(c->cache_dir));
    FUZZ_REQUIRE(absolute_path_ok(c->device));
    FUZZ_REQUIRE(absolute_path_ok(c->store_dir()));
    FUZZ_REQUIRE(!c->cache_tag.empty());
    FUZZ_REQUIRE(std::has_single_bit(c->chunk_size) && c->chunk_size >= 4096 && c->chunk_size <= (64u << 20));
    FUZZ_REQUIRE(c->control_socket.empty() || (absolute_path_ok(c->control_socket) && c->control_socket.size() <= 107));
    FUZZ_REQUIRE(c->control_socket_group.size() <= 32 &&
                 c->control_socket_group.find_first_of(":/\n") == std::string::npos &&
                 (c->control_socket_group.empty() || c->control_socket_group[0] != '-'));
    // metrics.listen: empty, or an address that parses as loopback (the listener parses it again).
    FUZZ_REQUIRE(c->metrics_listen.empty() || blobd::cfg::parse_loopback_listen(c->metrics_listen).has_value());
    FUZZ_REQUIRE(c->prefetch_concurrency >= 1 && c->prefetch_concurrency <= 64);
    FUZZ_REQUIRE(c->failure_ttl_ms <= 60'000);
    FUZZ_REQUIRE(c->read_deadline_ms <= 600'000);
    FUZZ_REQUIRE(c->frontend == "cachefiles" || c->frontend == "fanotify");
    FUZZ_REQUIRE(c->breaker.failures <= 1000);
    FUZZ_REQUIRE(c->breaker.backoff_ms >= 10 && c->breaker.backoff_ms <= c->breaker.max_backoff_ms &&
                 c->breaker.max_backoff_ms <= 3'600'000);
    // What the kernel accepts (fs/cachefiles/daemon.c): stop < cull < run < 100.
    for (const auto& l : {c->cache_blocks, c->cache_files}) FUZZ_REQUIRE(l.stop < l.cull && l.cull < l.run && l.run < 100);
    FUZZ_REQUIRE(c->cache_check_interval_ms >= 100 && c->cache_check_interval_ms <= 600'000);
    FUZZ_REQUIRE(!c->sources.empty() || !c->domains.empty());
    for (const auto& s : c->sources) check_source(s);
    for (const auto& [name, d] : c->domains) {
        FUZZ_REQUIRE(!name.empty() && name.size() <= 255 && name.find('/') == std::string::npos);
        for (char ch : name) FUZZ_REQUIRE(static_cast<unsigned char>(ch) >= 0x20 && ch != 0x7f);
        FUZZ_REQUIRE(!d.sources.empty());
        FUZZ_REQUIRE(&c->sources_for(name) == &d.sources);
        for (const auto& s : d.sources) check_source(s);
    }

    const nlohmann::json printed = cfg::to_json(*c);
    const std::string dumped = printed.dump();
    const auto again = sources::parse_config(dumped);
    FUZZ_REQUIRE(again.has_value());
    FUZZ_REQUIRE(cfg::to_json(*again) == printed);
}

inline void check_config(std::span<const std::uint8_t> in) { check_config_text(as_text(in)); }

}  // namespace blobd::fuzz
