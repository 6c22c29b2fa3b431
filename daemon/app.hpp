// app: one daemon instance, wired from its config: the sources and blob store
// (sources::source_set), the core (engine), the frontend ("frontend": cachefiles on the device,
// or fanotify with the mounts it makes), the space keeper that culls the cachefiles cache, and the
// control socket. It answers `stats` from the
// counters of all of them, and `mount`/`umount` with the fanotify frontend.
//
// Owns all of those; borrows the loop and the device, which must outlive it (the device is closed
// last, by main). Threading: loop thread only.
#pragma once

#include <chrono>
#include <functional>
#include <vector>
#include <memory>
#include <string>
#include <string_view>

#include "base/metrics.hpp"
#include "base/result.hpp"
#include "config/config.hpp"
#include "core/engine.hpp"
#include "daemon/control/control_server.hpp"
#include "daemon/metrics_listener.hpp"
#include "frontends/cachefiles/frontend.hpp"
#include "frontends/cachefiles/space_keeper.hpp"
#include "frontends/fanotify/frontend.hpp"
#include "io/event_loop.hpp"
#include "sources/live_sources.hpp"
#include "sources/source_set.hpp"

namespace blobd {

/// Facts of the daemon as a whole, filled in when a stats request is answered.
struct daemon_stats {
    std::uint64_t uptime_seconds = 0;
    std::uint64_t chunk_size = 0;
    std::uint64_t upstream_bytes = 0;   ///< the sum of every source's received bytes
};

/// daemon_stats as metrics: top-level keys of the stats JSON, erofs_blobd_<name> in Prometheus.
inline constexpr auto daemon_metrics = [] {
    using s = daemon_stats;
    using metrics::counter, metrics::gauge, metrics::unit;
    return metrics::make_table(
        metrics::group{"", {}, ""},
        gauge(&s::uptime_seconds, "uptime", "Seconds since the daemon started.", unit::seconds).json("uptime_s"),
        gauge(&s::chunk_size, "chunk_size", "The fetch unit (config chunk_size).", unit::bytes).json("chunk_size"),
        counter(&s::upstream_bytes, "upstream", "Bytes all sources delivered (the sum over sources).", unit::bytes));
}();

/// The build, as Prometheus' conventional info metric: erofs_blobd_build_info{version="..."} 1
/// (JSON: "build": [{"version": "...", "build_info": 1}]).
struct build_info {
    std::uint64_t info = 1;
};
inline constexpr std::string_view build_labels[] = {"version"};
inline constexpr auto build_metrics = [] {
    using metrics::gauge;
    return metrics::make_table(metrics::group{"", build_labels, "build"},
                               gauge(&build_info::info, "build_info", "Always 1; the labels say which build runs."));
}();

class app {
public:
    /// The cachefiles frontend on a bound device. Throws std::system_error when a source cannot be
    /// set up (see sources::source_set).
    app(event_loop& loop, device& dev, std::shared_ptr<const cfg::config> config) : app(loop, &dev, std::move(config)) {}
    /// The fanotify frontend ("frontend": "fanotify"): no device.
    app(event_loop& loop, std::shared_ptr<const cfg::config> config) : app(loop, nullptr, std::move(config)) {}
    ~app();

    /// Starts serving: arms the device poll and, if configured, the control socket. Returns an
    /// error line when the control socket cannot be set up.
    result<bool, std::string> start();
    /// Stops taking new requests and finishes what is in flight; after `grace`, pending READs and
    /// OPENs are failed so that no reader hangs. Idempotent.
    void request_stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
    /// True once a stop was requested and nothing is in flight any more.
    bool finished() const;
    /// Runs the loop until finished().
    void run();

    /// Counters as one JSON object (what `erofs-blobctl stats` prints; docs/operations.md lists
    /// them): every declared table in one metrics::snapshot, rendered by metrics::to_json.
    std::string stats_json() const;
    /// The `status`, `domains` and `blobs` replies (docs/operations.md, "erofs-blobctl status"):
    /// who this daemon is (version, frontend, cache dir), per domain the registry's blobs, open
    /// objects and bytes fetched with the space keeper's disk use, per source its health.
    /// `what` is "status", "domains" or "blobs"; `domain` filters blobs ("" for all).
    std::string status_json(std::string_view what, std::string_view domain = {}) const;
    /// Every declared table with its current values (stats_json, Prometheus text).
    metrics::snapshot snapshot() const;
    /// The same counters in the Prometheus text exposition format (`erofs-blobctl metrics`).
    std::string metrics_text() const;
    /// The port of the "metrics.listen" HTTP listener (the chosen one for port 0); 0 when off.
    std::uint16_t metrics_port() const noexcept;
    const registry_stats& stats() const { return engine_->stats(); }

    /// What a reload changed: the keys (config/reload.hpp), or the line saying why nothing was.
    using reload_result = result<std::vector<std::string>, std::string>;
    /// Takes `next` in place of the running config when cfg::reload_plan allows it: new sources
    /// (built before anything is swapped; fetches in flight finish on the old ones), engine
    /// tunables, log level. A refused key or a source that cannot be built leaves everything as
    /// it was. Never throws.
    reload_result reload(std::shared_ptr<const cfg::config> next);
    /// How `reload` is asked for from the control socket (`{"cmd":"reload"}`): main re-reads the
    /// config file and calls reload(). Unset: the command is refused.
    void on_reload_request(std::function<reload_result()> fn) { reloader_ = std::move(fn); }
    /// Enables the test-only `debug-stall` control command (main: BLOBD_DEBUG_STALL=1).
    void allow_debug_stall(bool on) { debug_stall_ = on; }
    /// The one-line state for the service manager (sd_notify STATUS=): frontend, cache dir,
    /// configured domains, open objects, the last error. Loop thread.
    std::string status_line() const;
    /// Remembers `why` as the last error for status_line().
    void note_error(std::string why) { last_error_ = std::move(why); }
    const cfg::config& config() const noexcept { return *config_; }

private:
    app(event_loop& loop, device* dev, std::shared_ptr<const cfg::config> config);
    void control(std::string_view request, control_server::reply_fn reply);
    /// stats_json() before it is serialised (status_json reads the sources' figures from it).
    nlohmann::ordered_json stats_object() const;
    /// fanotify: the engine stops once every mount is gone (the unmounts still need answers).
    void stop_engine_when_unmounted(std::chrono::milliseconds grace);

    event_loop& loop_;
    std::shared_ptr<const cfg::config> config_;
    // Destroyed in reverse: the control socket, the frontend, the sources (their fetches drop
    // results not yet delivered), then the engine they delivered to.
    std::unique_ptr<engine> engine_;
    std::unique_ptr<sources::live_sources> sources_;
    std::unique_ptr<cachefiles_frontend> frontend_;     // one of these two
    std::unique_ptr<fanotify_frontend> fanotify_;
    std::unique_ptr<control_server> control_;
    std::unique_ptr<metrics_listener> metrics_;         // "metrics.listen"; null when off
    // cachefiles with "cache.cull": culls the cache; its thread is joined first, before the device
    // it writes to or the loop it posts to can go.
    std::unique_ptr<space_keeper> keeper_;
    bool stop_requested_ = false;
    bool debug_stall_ = false;
    std::function<reload_result()> reloader_;
    std::string last_error_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace blobd
