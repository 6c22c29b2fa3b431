// The table of source kinds: for each "type" a config may name, its settings, how to read and
// print them, the files to check, whether it is remote, and how to make its fetcher. Adding a kind
// is one settings struct, its functions and one entry in kinds.cpp; config/ and the daemon need no
// change. Also the daemon's way to read a config (parse_config, load_config), which hands config/
// this table.
//
// The table is static and immutable: any thread may read it. Makers run on the loop thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "config/settings_of.hpp"
#include "fetchers/fetcher.hpp"

namespace blobd {

class event_loop;
class net_thread;

namespace sources {

/// The connection settings http and oci sources share: the same keys, limits and defaults, read
/// and written by one pair of functions (kinds.cpp) and handed to the fetcher by one (http_options).
struct transport {
    std::string ca_file;                ///< "ca_file": extra trusted CAs (PEM file); "" = system store only
    bool insecure = false;              ///< "insecure": skip TLS certificate and host name verification
    std::uint32_t timeout_ms = 30000;   ///< "timeout_ms": per step: connect, TLS, write, headers, body
    std::uint32_t retries = 3;          ///< "retries": extra attempts after 5xx answers, resets, timeouts
    std::uint32_t max_connections = 4;  ///< "max_connections": keep-alive connections per host
    std::string proxy;                  ///< "proxy": forward proxy http://[user:pass@]host:port; "" = direct
    bool operator==(const transport&) const = default;
};

/// "local": blobs are files named after the cookie key in a directory: `<path>/<cookie name>`.
struct local_settings {
    std::string path;
    bool operator==(const local_settings&) const = default;
    nlohmann::json to_json() const;
};

/// "http": blobs served over HTTP(S) at `<url>/<cookie name>` (see docs/http.md).
struct http_settings {
    std::string url;  ///< base URL, http:// or https:// with a host
    transport net;
    bool operator==(const http_settings&) const = default;
    nlohmann::json to_json() const;
};

/// "oci": blobs from an OCI (docker) registry: a cookie named by a sha256 digest is the blob
/// `<registry>/v2/<repository>/blobs/sha256:<hex>` (see docs/oci.md).
struct oci_settings {
    std::string registry;              ///< base URL, http:// or https://, no query string
    std::string repository;            ///< "library/app" (OCI name rules)
    std::vector<std::string> mirrors;  ///< base URLs tried in order before the registry
    std::string username, password;    ///< both or neither; sent to the registry only
    std::string auth_file;             ///< docker-style config.json (per-host credentials); "" = none
    transport net;
    bool operator==(const oci_settings&) const = default;
    /// The password is written as "***" (this is what --check-config prints).
    nlohmann::json to_json() const;
};

/// One entry of the table: what config/ needs (cfg::source_kind: type, keys, reader, file check,
/// remote) and the maker. A source's settings are always the ones its kind's reader made.
struct kind : cfg::source_kind {
    /// A fetcher for `s` (a source of this kind). Sources that cross the network start `net` on
    /// first use. Throws std::system_error (EINVAL) naming the file or URL when the source cannot
    /// be set up (an unreadable ca_file or auth_file). Loop thread.
    std::shared_ptr<fetcher> (*make)(event_loop& loop, std::unique_ptr<net_thread>& net, const cfg::source& s);
};

/// The table, in the order "known types" messages list them.
std::span<const kind* const> kinds();
/// The same table as config/ takes it (cfg::parse, cfg::load_file).
cfg::source_kinds config_kinds();
/// The table's entry for `s`'s kind, or nullptr when `s` was read with another table.
const kind* kind_of(const cfg::source& s);

/// A source of the kind the settings belong to, for code and tests that build configs.
cfg::source source_of(local_settings s);
cfg::source source_of(http_settings s);
cfg::source source_of(oci_settings s);

/// cfg::parse with this table. Pure.
result<cfg::config, cfg::config_error> parse_config(std::string_view json_text);
/// Reads and parses `path`, then checks the files its sources name (cfg::check_files: ca_file is a
/// PEM file OpenSSL loads, auth_file a docker config.json). What --check-config and the daemon's
/// start use. Blocking.
result<cfg::config, cfg::config_error> load_config(const std::string& path);

}  // namespace sources
}  // namespace blobd
