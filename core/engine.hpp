// engine: the core of erofs-blobd, below every frontend. It owns the registry and carries out its
// effects: stats and fetches through the domain's sources (on-demand before background, a bound on
// fetches in flight), writes of fetched chunks into cache files through the ring (per-file write
// lanes, the frontend's write policy), read-ahead and prefetch after an open, refetches after a
// failed integrity check, and the drain on stop. It knows no kernel interface: a frontend
// (frontends/cachefiles, frontends/fanotify) turns kernel requests into open/read/close calls with
// its own opaque object keys and request tokens, and answers the kernel when the engine calls it
// back through frontend_port.
//
// Owns the registry; borrows the loop, the fetcher directory and the frontend, which must outlive
// it. Threading: loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/log.hpp"
#include "base/metrics.hpp"
#include "core/registry.hpp"
#include "fetchers/fetcher.hpp"
#include "io/event_loop.hpp"

namespace blobd {

/// How chunks are written into a frontend's cache files.
struct write_policy {
    /// 0: exact lengths (a regular sparse file). Otherwise writes are direct I/O and every length is
    /// rounded up to a multiple of this (cachefiles' anon fds: 4096; the blob's tail is written as a
    /// whole zero-padded block). Chunk buffers are always 4096-aligned, offsets chunk-aligned.
    std::uint32_t align = 0;
};

/// What the engine calls back: the answers a frontend sends to its kernel. Loop thread. An answer
/// may come from within the engine call that caused it (an open of a blob already sized, a read of
/// chunks already written), so a frontend must not hold state across those calls that an answer
/// would invalidate.
class frontend_port {
public:
    virtual ~frontend_port() = default;
    /// Answers an open: the blob's size, or a negative errno. On failure `fd_back` holds the fd the
    /// frontend passed to open(), to be closed after the answer went out. Returns 0, or a negative
    /// errno when the answer could not be delivered (the engine then does not prefetch).
    virtual int answer_open(request_token req, std::int64_t size_or_errno, unique_fd fd_back) = 0;
    /// Answers a read: 0, or a negative errno when some of the range could not be filled. `object` is
    /// null when the request named no open object.
    virtual void answer_read(const cache_object* object, request_token req, int status) = 0;
};

struct engine_options {
    std::uint64_t chunk_size = 1 << 20;
    /// Background source calls (prefetch, read-ahead, refetch) in flight at once, at least 1.
    unsigned prefetch_concurrency = 2;
    /// Whether the blobs of a domain are prefetched after their open. Empty: never.
    std::function<bool(std::string_view domain)> prefetch_for;
    write_policy writes;
    /// Adjacent chunks of one blob queued together (one READ's, one read-ahead's, a prefetch's)
    /// are fetched with one source call of up to this many bytes (at least one chunk), so that
    /// small chunks, which keep what a scattered reader fetches small, do not turn a sequential
    /// reader's READs into a round trip per chunk.
    std::uint64_t merge_bytes = 1 << 20;
    /// Negative cache: after a chunk's fetch failed, reads of it fail at once (-EIO) for this long
    /// instead of fetching again for every page the kernel retries. 0: off.
    std::chrono::milliseconds failure_ttl{0};
    /// End-to-end deadline of a read: an on-demand fetch (every attempt at every source, and the
    /// time it queued) is answered within this of the READ that started it, a blob's size lookup
    /// within this of its OPEN; a background fetch has it from when it starts. The sources are
    /// told (fetcher deadlines) and give up in time; the engine answers itself (-ETIMEDOUT) for
    /// one that did not, shortly after, and drops its late result. 0: no deadline.
    std::chrono::milliseconds read_deadline{0};
    /// Called after every write into a cache file with its result (bytes written or -errno): the
    /// space keeper samples free space after writes, at once after ENOBUFS/ENOSPC.
    std::function<void(int res)> on_write = nullptr;
    /// Called after the frontend closed an object (the kernel let go of its cache file, or soon will).
    std::function<void()> on_close = nullptr;
};

/// Counters of the engine's scheduling (the registry counts requests, fetches and writes).
/// Bounds of the READ service time histogram, in seconds: from the store's page cache (well
/// under a millisecond) to a stalled source (the read deadline).
inline constexpr double read_seconds_bounds[] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,   0.5,   1,      2.5,   5,     10,   30};

struct engine_stats {
    std::uint64_t write_waits = 0;           ///< writes that queued behind their file's lane
    std::uint64_t writes_per_file_peak = 0;  ///< most writes in flight into one file at once
    std::uint64_t deadline_misses = 0;       ///< fetches and size lookups the engine answered at their deadline
    std::uint64_t late_results = 0;          ///< results that came after that answer, dropped
    std::uint64_t nospace_writes = 0;        ///< cache writes refused for space (ENOBUFS, ENOSPC)
    /// From the engine taking a READ to its answer (a hit, a fetch and write, or a failure).
    metrics::histogram read_seconds{read_seconds_bounds};
};

/// engine_stats as metrics: top-level keys of the stats JSON, erofs_blobd_<name> in Prometheus.
inline constexpr auto engine_metrics = [] {
    using s = engine_stats;
    using metrics::counter, metrics::gauge, metrics::histogram_of, metrics::unit;
    return metrics::make_table(
        metrics::group{"", {}, ""},
        histogram_of(&s::read_seconds, "read_service", "Time from a READ reaching the engine to its answer.", unit::seconds),
        counter(&s::write_waits, "write_waits",
                "Cache-file writes that queued behind the 4 MiB of writes in flight into their file."),
        gauge(&s::writes_per_file_peak, "writes_per_file_peak", "Most writes seen in flight into one cache file at once."),
        counter(&s::deadline_misses, "deadline_misses",
                "Fetches and size lookups whose source did not answer by the deadline: the engine answered them (ETIMEDOUT)."),
        counter(&s::late_results, "late_results", "Source answers that came after the engine had answered at the deadline (dropped)."),
        counter(&s::nospace_writes, "nospace_writes",
                "Cache-file writes refused for lack of space (ENOBUFS below bstop, ENOSPC): the read failed, a cull started."));
}();

class engine {
public:
    engine(event_loop& loop, fetcher_directory& sources, engine_options opts);
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    /// The frontend to answer; set once, before the first request.
    void attach(frontend_port& port) { port_ = &port; }

    /// Requests of the frontend (see registry for their meaning). Each open and each read is
    /// answered exactly once through the frontend_port, also when stopping or failing.
    void open(request_token req, object_key key, std::string domain, std::string name, unique_fd fd);
    void open_sized(request_token req, object_key key, std::string domain, std::string name, unique_fd fd,
                    std::uint64_t size);
    void read(request_token req, object_key key, std::uint64_t off, std::uint64_t len);
    void close(object_key key);
    /// The data the cache file `fd` of the open, sized object `key` already holds (SEEK_DATA) counts
    /// as written: reads of it are answered without a fetch. For files kept from an earlier run
    /// (a fanotify daemon taking over from its predecessor). Returns the chunks marked.
    std::size_t adopt_present(object_key key, int fd);
    /// True when every chunk of the open object `key` is written into its cache file.
    bool complete(object_key key) const { return registry_.complete(key); }
    /// The frontend answered an open itself, with an error, before it reached the core (counted
    /// with the opens and failed opens).
    void refused_open() noexcept { registry_.refused_open(); }

    /// The bytes of blob `name` (any domain) failed an integrity check in the blob store: fetch
    /// again every chunk already written into an open object of it.
    void refetch(std::string_view name);

    /// A reload (daemon/app.cpp): takes prefetch_concurrency, prefetch_for, failure_ttl and
    /// read_deadline from `o` for what starts from now on; chunk_size, the write policy and the
    /// hooks stay as built. A higher prefetch limit starts queued background fetches at once.
    void retune(const engine_options& o);

    /// Stops starting background work and finishes what is in flight; after `grace`, pending
    /// opens and reads are failed (-EIO) so that no reader hangs. Idempotent.
    void request_stop(std::chrono::milliseconds grace);
    bool stopping() const noexcept { return stopping_; }
    /// True while opens, reads, fetches or writes are outstanding.
    bool busy() const noexcept { return registry_.busy(); }
    /// True once the grace period ran out and what was pending got failed.
    bool failed_pending() const noexcept { return failed_pending_; }

    const registry_stats& stats() const noexcept { return registry_.stats(); }
    const engine_stats& scheduling() const noexcept { return stats_; }
    std::uint64_t chunk_size() const noexcept { return registry_.chunk_size(); }
    std::size_t object_count() const noexcept { return registry_.object_count(); }
    std::vector<blob_info> blobs() const { return registry_.blobs(); }
    const std::map<std::string, std::uint64_t, std::less<>>& fetched_by_domain() const noexcept {
        return registry_.fetched_by_domain();
    }

    /// Source calls in flight at once, at most.
    static constexpr std::size_t max_inflight_fetches = 64;
    /// Bytes of the buffers held by fetches in flight and by writes waiting or running: no fetch
    /// starts while they reach this, which bounds the memory held (this plus one merged fetch)
    /// however many requests arrive at once.
    static constexpr std::uint64_t max_inflight_bytes = 64 << 20;
    /// Concurrent direct-I/O writes into one file mostly wait for each other: ext4 takes the inode
    /// lock exclusively for writes that allocate blocks (every first write of a cache file's
    /// range), and io_uring runs anon-fd writes on parallel io-wq workers, which then spin on that
    /// lock. So at most 4 MiB of writes per file are in flight (always at least one write);
    /// different files still write in parallel. Bytes rather than a count: small chunks gain from
    /// going out in one batch (a count of 4 cost 4 KiB READs 30 % of their rate).
    /// bench_fake_throughput, 1 MiB READs, cache on ext4, 3 A/B rounds: 1065-1194 MiB/s
    /// (0.74-0.91x of pread+pwrite) against 706-736 MiB/s (0.56-0.74x) unbounded; io-wq CPU per
    /// READ 160-200 us against 490-560 us.
    static constexpr std::uint64_t max_write_bytes_per_file = 4 << 20;

private:
    void execute(effects&& effs);
    /// Moves `more` to the end of `out` (several registry calls executed as one batch).
    void append(effects& out, effects&& more);
    struct queued_fetch;
    /// Starts the fetch at the front of `q` with the chunks queued right behind it that continue
    /// it (same blob, the next chunk), up to merge_bytes, as one source call.
    void start_fetch(std::deque<queued_fetch>& q);
    /// Adjacent chunks of one object filled by one fetch (one buffer): written with one write.
    /// All its chunks are whole but the last, so their number follows from len.
    struct write_run {
        object_ptr object;
        std::uint64_t chunk = 0;   // the first
        std::uint64_t off = 0;     // of the first, in the cache file
        buffer_ptr data;
        std::size_t at = 0;        // of the first, in data
        std::uint64_t len = 0;     // of them all
    };
    /// Writes fetched chunks into their object's cache file, at most max_write_bytes_per_file in
    /// flight per file; the rest wait in that file's lane in arrival order.
    void queue_write(write_run w);
    void submit_write(write_run w);
    /// Starts queued fetches while there is room: on-demand ones first; background ones only
    /// when no on-demand fetch waits and fewer than the prefetch limit run.
    void pump_fetches();
    void promote(const promote_fetch& p);
    void start_prefetch(const object_ptr& obj);
    /// The deadline of work starting now (no_deadline without one).
    deadline due_from_now() const;
    /// A source call's result (or the engine's own -ETIMEDOUT at its deadline) for its adjacent
    /// chunks: negative cache, registry (each chunk with its part of the one buffer).
    void fetched(const std::vector<fetch_chunk>& chunks, result<buffer_ptr, int> r);
    /// Answers what is past its deadline (calls in flight, on-demand fetches still queued); runs
    /// from a timer while anything with a deadline is outstanding.
    void sweep();
    void arm_sweep();

    event_loop& loop_;
    fetcher_directory& sources_;
    engine_options opts_;
    frontend_port* port_ = nullptr;
    registry registry_;
    struct queued_fetch {
        fetch_chunk f;
        deadline due = no_deadline;  // on-demand: from the READ that asked; background: none yet
    };
    std::deque<queued_fetch> fetch_queue_;     // on-demand
    std::deque<queued_fetch> prefetch_queue_;  // background
    /// Calls to the sources not answered yet, by call number: a fetch (its adjacent chunks, in
    /// order) or a size lookup (one entry: only blob, domain and name). Erased when answered, by
    /// the source or by sweep().
    struct call {
        bool is_fetch = true;
        std::vector<fetch_chunk> chunks;
        deadline due = no_deadline;
    };
    std::unordered_map<std::uint64_t, call> calls_;
    std::uint64_t next_call_ = 1;
    std::size_t calls_with_deadline_ = 0;
    bool sweep_armed_ = false;
    log::rate_limit deadline_warn_;
    std::size_t fetches_inflight_ = 0, prefetches_inflight_ = 0;  // source calls
    /// Bytes of the fetches in flight and of the chunk writes waiting or running, against
    /// max_inflight_bytes: the memory held stays bounded when writes are slower than fetches.
    std::uint64_t bytes_held_ = 0;
    struct write_lane {
        unsigned inflight = 0;     // writes
        std::uint64_t bytes = 0;   // their bytes
        std::deque<write_run> queued;
        /// Whether a write of `len` bytes may go out now.
        bool admits(std::uint64_t len) const { return inflight == 0 || bytes + len <= max_write_bytes_per_file; }
    };
    std::unordered_map<const cache_object*, write_lane> write_lanes_;  // by object; only while it has writes
    engine_stats stats_;
    // When each READ not answered yet reached the engine (by request id), for read_seconds.
    std::unordered_map<std::uint64_t, std::chrono::steady_clock::time_point> read_started_;
    bool stopping_ = false;
    bool failed_pending_ = false;
    // Timers cannot be cancelled: theirs hold a weak reference and do nothing once the engine is gone.
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace blobd
