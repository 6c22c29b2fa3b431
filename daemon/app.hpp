// app: the cachefiles frontend and the wiring of one daemon instance.
//
// It drains the device when it polls readable, parses each message (protocol/), turns it into
// registry calls and carries out the registry's effects: copen replies, fetches through the
// per-domain source chains, ring writes into anon fds and READ completions. It also answers the
// control socket. Owns the registry and the fetchers; borrows the loop and the device, which must
// outlive it (the device is closed last, by main).
//
// Threading: loop thread only.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "base/metrics.hpp"
#include "config/config.hpp"
#include "daemon/control/control_server.hpp"
#include "frontends/cachefiles/device.hpp"
#include "io/event_loop.hpp"
#include "core/registry.hpp"
#include "fetchers/fetcher.hpp"
#include "protocol/message.hpp"

namespace blobd {

class net_thread;
class cas_store;
class cas_fetcher;

/// What the cachefiles frontend counts itself (loop thread), declared in frontend_metrics. Here
/// until the frontend moves to frontends/cachefiles/.
struct frontend_stats {
    std::uint64_t bad_messages = 0;          ///< kernel messages that did not parse
    std::uint64_t completion_errors = 0;     ///< READ_COMPLETE ioctls that failed
    std::uint64_t reply_errors = 0;          ///< copen replies the device refused
    std::uint64_t write_waits = 0;           ///< writes that queued behind their file's lane
    std::uint64_t writes_per_file_peak = 0;  ///< most writes in flight into one file at once
};

/// frontend_stats as metrics: top-level keys of the stats JSON, erofs_blobd_<name> in Prometheus.
inline constexpr auto frontend_metrics = [] {
    using s = frontend_stats;
    using metrics::counter, metrics::gauge;
    return metrics::make_table(
        metrics::group{"", {}, ""},
        counter(&s::bad_messages, "bad_messages", "Kernel messages that did not parse."),
        counter(&s::completion_errors, "completion_errors", "READ completions (READ_COMPLETE ioctls) that failed."),
        counter(&s::reply_errors, "reply_errors", "OPEN replies (copen) the device refused."),
        counter(&s::write_waits, "write_waits",
                "Cache-file writes that queued behind the 4 MiB of writes in flight into their file."),
        gauge(&s::writes_per_file_peak, "writes_per_file_peak", "Most writes seen in flight into one cache file at once."));
}();

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

class app {
public:
    app(event_loop& loop, device& dev, std::shared_ptr<const cfg::config> config);
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
    const registry_stats& stats() const { return registry_.stats(); }

private:
    void arm_device();
    void drain_device();
    void handle(proto::message&& msg);
    void handle_bad(const proto::parse_error& err);
    void execute(effects&& effs);
    void start_fetch(fetch_chunk f);
    /// Writes a fetched chunk into its object's cache file, at most max_write_bytes_per_file in
    /// flight per file; the rest wait in that file's lane in arrival order.
    void queue_write(write_chunk w);
    void submit_write(write_chunk w);
    /// Starts queued fetches while there is room: on-demand ones first; background ones only
    /// when no on-demand fetch waits and fewer than the prefetch limit run.
    void pump_fetches();
    void promote(const promote_fetch& p);
    void start_prefetch(const object_ptr& obj);
    fetcher& chain_for(const std::string& domain);
    std::string control(std::string_view request);

    event_loop& loop_;
    device& dev_;
    std::shared_ptr<const cfg::config> config_;
    registry registry_;
    // Runs the network fetchers (created only when a source needs it). Declared before the
    // fetchers so that it outlives them; ~app() stops it first.
    std::unique_ptr<net_thread> net_;
    // One store shared by every domain (made when some chain uses it); each source it serves gets
    // its own view of it, in the chains in place of the source (see the constructor).
    std::shared_ptr<cas_store> store_;
    struct source_entry {
        cfg::source config;
        std::shared_ptr<fetcher> upstream;   // what crosses the network (or reads local files)
        std::shared_ptr<cas_fetcher> view;   // the store in front of it, once a chain wants that
    };
    std::vector<source_entry> sources_;
    std::shared_ptr<fetcher> default_chain_;
    std::map<std::string, std::shared_ptr<fetcher>, std::less<>> domain_chains_;
    std::unique_ptr<control_server> control_;
    /// Fetches wait here while max_inflight_fetches are running: bounds the memory held in chunk
    /// buffers (64 x chunk_size) however many READs arrive at once.
    static constexpr std::size_t max_inflight_fetches = 64;
    std::deque<fetch_chunk> fetch_queue_;      // on-demand
    std::deque<fetch_chunk> prefetch_queue_;   // background
    std::size_t fetches_inflight_ = 0, prefetches_inflight_ = 0;
    /// Concurrent direct-I/O writes into one file mostly wait for each other: ext4 takes the
    /// inode lock exclusively for writes that allocate blocks (every first write of a cache
    /// file's range), and io_uring runs anon-fd writes on parallel io-wq workers, which then spin
    /// on that lock. So at most 4 MiB of writes per file are in flight (always at least one
    /// write); different files still write in parallel. Bytes rather than a count: small chunks
    /// gain from going out in one batch (a count of 4 cost 4 KiB READs 30 % of their rate).
    /// bench_fake_throughput, 1 MiB READs, cache on ext4, 3 A/B rounds: 1065-1194 MiB/s
    /// (0.74-0.91x of pread+pwrite) against 706-736 MiB/s (0.56-0.74x) unbounded; io-wq CPU per
    /// READ 160-200 us against 490-560 us.
    static constexpr std::uint64_t max_write_bytes_per_file = 4 << 20;
    struct write_lane {
        unsigned inflight = 0;     // writes
        std::uint64_t bytes = 0;   // their bytes
        std::deque<write_chunk> queued;
        /// Whether a write of `len` bytes may go out now.
        bool admits(std::uint64_t len) const { return inflight == 0 || bytes + len <= max_write_bytes_per_file; }
    };
    std::unordered_map<const cache_object*, write_lane> write_lanes_;  // by object; only while it has writes
    /// Chunk buffers waiting for or in a write: they count against max_inflight_fetches, so the
    /// memory held stays bounded when writes are slower than fetches.
    std::size_t writes_held_ = 0;
    bool stopping_ = false;
    bool failed_pending_ = false;
    frontend_stats stats_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace blobd
