// The daemon's configuration: one JSON file, validated into plain structs.
//
// Loading is pure (no I/O besides reading the file in load_file; check_files reads the files the
// sources name) and never throws: every error names the JSON path it is about
// ("$.domains.d1.sources[0].path: expected a string"). Unknown keys are errors, so a typo never
// silently falls back to a default. Sources are type-erased (config/source.hpp): their kinds are
// injected by the caller, so config/ knows none of them. A loaded config is immutable and shared
// (shared_ptr<const config>) between threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "protocol/message.hpp"

#include "base/result.hpp"
#include "config/source.hpp"

namespace blobd::cfg {

/// Which sources the blob store (fetchers/cas_fetcher.hpp) sits in front of. JSON: false, "remote"
/// or true.
enum class store_use { off, remote, all };

/// "store": one content-addressed store shared by every domain (see docs/config.md).
struct store_config {
    store_use use = store_use::remote;   ///< "enabled"
    std::string dir;                     ///< "dir"; "" = <cache.dir>/blobd-store (the loader fills it in)
    bool verify = true;                  ///< "verify": check sha256-named blobs once complete
    std::uint64_t max_bytes = 0;         ///< "max_bytes": disk space for its files; 0 = no limit
};

struct domain_config {
    std::vector<source> sources;  ///< overrides the top-level list for this domain
    std::optional<bool> prefetch; ///< "prefetch": overrides the top-level setting for this domain
    std::optional<store_use> store; ///< "store": overrides "store.enabled" for this domain
};

struct config {
    std::string cache_dir;                    ///< "cache.dir": cachefiles' cache directory (required)
    std::string cache_tag = "erofs-blobd";    ///< "cache.tag": the cachefiles tag (cache name)
    std::string device = "/dev/cachefiles";   ///< "device": the cachefiles misc device
    /// "cache.brun", "cache.bcull", "cache.bstop": free-space limits (percent of blocks) sent to the
    /// kernel at bind; "cache.frun", "cache.fcull", "cache.fstop": the same for files (inodes).
    proto::cull_limits cache_blocks, cache_files;
    /// "cache.cull": whether the daemon culls the cache (frontends/cachefiles/space_keeper.hpp).
    bool cache_cull = true;
    /// "cache.max_bytes": disk space the cache files and the blob store may take together; 0 = no
    /// budget (the free-space limits only).
    std::uint64_t cache_max_bytes = 0;
    /// "cache.check_interval_ms": free space is sampled at least this often (and after writes).
    std::uint32_t cache_check_interval_ms = 5000;
    /// "frontend": the kernel interface served: "cachefiles" (erofs over fscache, /dev/cachefiles)
    /// or "fanotify" (pre-content events on file-backed erofs mounts the daemon makes itself), or
    /// "auto": the first of the two that can run here, resolved at startup (daemon/frontend_choice.hpp;
    /// the running daemon's config holds the resolved name).
    std::string frontend = "cachefiles";
    /// "fanotify": settings of the fanotify frontend only (unused with cachefiles).
    struct fanotify_config {
        /// "read_ahead_kb": written into the read_ahead_kb of each mount's bdi
        /// (/sys/class/bdi/erofs-N) after mounting; 0 leaves the kernel's default (128). ..65536.
        std::uint32_t read_ahead_kb = 1024;
        bool operator==(const fanotify_config&) const = default;
    } fanotify;
    std::uint64_t chunk_size = 1 << 20;       ///< "chunk_size": fetch unit; power of two, 4 KiB..64 MiB
    std::vector<source> sources;              ///< "sources": default source list
    /// "domains": keyed by what follows "erofs," in the volume key, i.e. the mount's domain_id,
    /// or its fsid when the mount has no domain_id.
    std::map<std::string, domain_config, std::less<>> domains;
    std::string control_socket = "/run/erofs-blobd/control.sock";  ///< "control_socket"; "" disables
    /// "control_socket_group": "" keeps the socket root-only (0600); a group name makes it 0660
    /// owned by that group, so its members may run read-only commands (status, stats, metrics).
    std::string control_socket_group;
    std::string log_level = "info";           ///< "log_level": err, warning, notice, info, debug
    /// "prefetch": after OPEN, fetch the rest of each blob in the background, behind on-demand READs.
    bool prefetch = false;
    std::uint32_t prefetch_concurrency = 2;   ///< "prefetch_concurrency": background fetches at once, 1..64
    /// "failure_ttl_ms": after a chunk's fetch failed, reads of that chunk fail at once (EIO) for
    /// this long instead of fetching it again for every page the kernel retries; 0 = off, ..60000.
    std::uint32_t failure_ttl_ms = 2000;
    /// "read_deadline_ms": every read (its fetch through every source, all retries) and every
    /// blob size lookup is answered within this; 0 = no deadline, ..600000.
    std::uint32_t read_deadline_ms = 6000;
    /// "breaker": each source's circuit breaker.
    struct breaker_config {
        std::uint32_t failures = 3;          ///< "failures": outages in a row that open it; 0 = never
        std::uint32_t backoff_ms = 1000;     ///< "backoff_ms": first open period, 10..600000
        std::uint32_t max_backoff_ms = 10000;  ///< "max_backoff_ms": doubling stops here, >= backoff_ms
        bool operator==(const breaker_config&) const = default;
    } breaker;
    store_config store;                       ///< "store"
    /// "metrics.listen": "HOST:PORT" of a loopback HTTP listener serving GET /metrics (Prometheus
    /// text); "" = no listener. HOST is a loopback address (127.0.0.0/8, [::1]) or "localhost".
    std::string metrics_listen;

    /// The blob store's directory.
    std::string store_dir() const { return store.dir.empty() ? cache_dir + "/blobd-store" : store.dir; }
    /// Whether `domain` fetches from `s` through the blob store.
    bool store_for(std::string_view domain, const source& s) const {
        auto it = domains.find(domain);
        const store_use use = it != domains.end() && it->second.store ? *it->second.store : store.use;
        return use == store_use::all || (use == store_use::remote && is_remote(s));
    }

    /// Whether blobs of `domain` are prefetched (the domain's setting, else the top-level one).
    bool prefetch_for(std::string_view domain) const {
        auto it = domains.find(domain);
        return it != domains.end() && it->second.prefetch ? *it->second.prefetch : prefetch;
    }

    /// The sources that serve `domain` (the domain's own list if it has one, else the top-level one).
    const std::vector<source>& sources_for(std::string_view domain) const;
};

/// A "metrics.listen" value split: a numeric loopback address and a port (0 = any free port).
struct listen_address {
    std::string host;  ///< "127.0.0.1"-style or "::1" (no brackets); "localhost" becomes "127.0.0.1"
    std::uint16_t port = 0;
};
/// Splits and checks "HOST:PORT" / "[V6]:PORT"; the error says what is wrong. Pure.
result<listen_address, std::string> parse_loopback_listen(std::string_view text);

/// Parses and validates JSON text; sources are read by the kind their "type" names in `kinds`
/// (which must outlive the config). Pure. sources::parse_config passes the daemon's kinds.
result<config, config_error> parse(std::string_view json_text, source_kinds kinds);
/// Reads `path` and parses it; a missing or unreadable file is a config_error naming the file.
/// Reads no file the config names (see check_files).
result<config, config_error> load_file(const std::string& path, source_kinds kinds);
/// Runs every source's file check (its kind's check_files: ca_file, auth_file, ...), the top-level
/// list first, then the domains by name; the first problem names the key's JSON path and the file.
/// Blocking I/O. sources::load_config is load_file followed by this.
std::optional<config_error> check_files(const config& c);
/// The effective config with every default filled in (what `--check-config` prints).
nlohmann::json to_json(const config& c);

}  // namespace blobd::cfg
