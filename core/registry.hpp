// The registry: what is open, what is cached, what is in flight. Sans-I/O.
//
// It groups cache objects (one per frontend object key, i.e. one cache file: a cachefiles
// object_id, a fanotify-marked blob file) into blobs keyed by (domain, blob name), and tracks per
// object which chunks are written and which read requests wait on which chunks. Each input (open,
// read, close, a fetch or write finishing) returns the effects the caller must carry out, in order;
// the registry itself does no I/O, so it is driven directly by unit tests and by core/engine alike.
// It knows no kernel interface: object keys and request tokens are opaque numbers of the frontend's.
//
// Contract: every open() is answered by exactly one reply_open effect, every read() by exactly one
// complete_read effect (also for an unknown object: then with a null object), whatever fails in
// between. Chunks are fetched once per blob even when many requests or objects want them.
//
// Threading: loop thread only. No locks.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "base/buffer.hpp"
#include "base/metrics.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace blobd {

using blob_id = std::uint64_t;
/// The frontend's name for one cache object (cachefiles: the kernel's object_id). Opaque here.
using object_key = std::uint64_t;

/// The frontend's handle on one request it must answer (cachefiles: the msg_id). Opaque to the
/// core, which hands it back, unchanged, in the answer. `fd` is an fd the frontend may attach for
/// its own use when answering (fanotify: the event's fd); it stays owned by the frontend. A bare
/// number converts to a token without an fd.
struct request_token {
    std::uint64_t id = 0;
    int fd = -1;
    request_token() = default;
    request_token(std::uint64_t id_, int fd_ = -1) : id(id_), fd(fd_) {}  // NOLINT: implicit on purpose
    bool operator==(const request_token&) const = default;
};

/// One cache file, as the frontend handed it to us. Shared by the registry and every in-flight
/// write into it: the fd closes when the last holder lets go, so a write that retires after the
/// object was closed still has a valid fd.
struct cache_object {
    object_key key = 0;
    unique_fd fd;
    blob_id blob = 0;
};
using object_ptr = std::shared_ptr<cache_object>;

// ---- effects: what the caller must do, in the order returned ----

/// Answer an open. When size_or_errno < 0, `fd_to_close` holds the object's fd, to be closed after
/// the reply is sent (cachefiles: closing the anon fd first would turn our error into EBADFD).
struct reply_open {
    request_token req;
    std::int64_t size_or_errno = 0;
    unique_fd fd_to_close;
    /// On success, the object now open, and its domain (the app decides whether to prefetch).
    object_ptr opened;
    std::string domain;
};
/// Find the blob's size in its sources; answer with registry::on_stat.
struct stat_blob {
    blob_id blob = 0;
    std::string domain;
    std::string name;
};
/// Fetch [off, off+len) of the blob into an aligned buffer; answer with registry::on_fetched.
struct fetch_chunk {
    blob_id blob = 0;
    std::string domain;
    std::string name;
    std::uint64_t chunk = 0;
    std::uint64_t off = 0;
    std::uint64_t len = 0;
    bool background = false;   ///< prefetch: start only when no on-demand fetch is waiting
};
/// A READ now waits on a background (prefetch) fetch: move it ahead of other prefetches, so a
/// reader never queues behind prefetch traffic.
struct promote_fetch {
    blob_id blob = 0;
    std::uint64_t chunk = 0;
};
/// Write data[at, at+len) at `off` into the object's anon fd; answer with registry::on_written.
/// `at` is non-zero when one fetch filled several chunks (a multiple of the chunk size, so the
/// bytes stay aligned for direct I/O).
struct write_chunk {
    object_ptr object;
    std::uint64_t chunk = 0;
    std::uint64_t off = 0;
    buffer_ptr data;
    std::uint64_t len = 0;
    std::size_t at = 0;
};
/// Complete a read request: 0, or a negative errno when some of its range could not be filled.
/// `object` is null when the request named no open object. (cachefiles: status is informational,
/// the kernel learns of failure by finding the range still missing.)
struct complete_read {
    object_ptr object;
    request_token req;
    int status = 0;
};
/// The blob has no open object and nothing in flight any more: sources may drop cached handles.
struct release_blob {
    std::string domain;
    std::string name;
};
using effect = std::variant<reply_open, stat_blob, fetch_chunk, write_chunk, complete_read, release_blob, promote_fetch>;
using effects = std::vector<effect>;

/// Counters, read by the control socket and the exit summary. Plain integers: loop thread only.
/// The registry owns them and hands out only a const view; declared in registry_metrics.
struct registry_stats {
    std::uint64_t opens = 0, open_failures = 0, closes = 0, objects_open = 0, blobs = 0;
    std::uint64_t reads = 0, reads_failed = 0, read_bytes_requested = 0;
    std::uint64_t chunks_fetched = 0, bytes_fetched = 0, fetch_errors = 0;
    std::uint64_t fetch_joins = 0;       ///< chunk wanted while already in flight: served by that fetch
    std::uint64_t chunks_written = 0, bytes_written = 0, write_errors = 0;
    std::uint64_t prefetch_chunks = 0;   ///< chunks fetched in the background after OPEN
    std::uint64_t prefetch_promoted = 0; ///< background fetches a READ then waited on
    std::uint64_t refetch_chunks = 0;    ///< written chunks fetched again after a failed integrity check
    std::uint64_t readahead_chunks = 0;  ///< chunks fetched in the background ahead of sequential READs
    std::uint64_t failed_fast = 0;       ///< chunk reads answered -EIO at once: their fetch failed lately
};

/// registry_stats as metrics: top-level keys of the stats JSON, erofs_blobd_<name> in Prometheus.
inline constexpr auto registry_metrics = [] {
    using s = registry_stats;
    using metrics::counter, metrics::gauge, metrics::unit;
    return metrics::make_table(
        metrics::group{"", {}, ""},
        counter(&s::opens, "opens", "OPEN requests from the kernel, refused ones included."),
        counter(&s::open_failures, "open_failures", "OPENs answered with an error."),
        counter(&s::closes, "closes", "CLOSE requests from the kernel."),
        gauge(&s::objects_open, "objects_open", "Cache objects (anon fds) open now."),
        gauge(&s::blobs, "blobs", "Blobs known now: with an open object or work in flight."),
        counter(&s::reads, "reads", "READ requests from the kernel."),
        counter(&s::reads_failed, "reads_failed", "READs completed with an error (their range stays missing)."),
        counter(&s::read_bytes_requested, "read_requested", "Bytes the kernel's READs asked for.", unit::bytes)
            .json("read_bytes_requested"),
        counter(&s::chunks_fetched, "chunks_fetched", "Chunks fetched for cache files."),
        counter(&s::bytes_fetched, "fetched", "Bytes of the chunks fetched for cache files.", unit::bytes)
            .json("bytes_fetched"),
        counter(&s::fetch_errors, "fetch_errors", "Chunk fetches that failed in every source."),
        counter(&s::fetch_joins, "fetch_joins", "Chunks wanted while already in flight, served by that fetch."),
        counter(&s::chunks_written, "chunks_written", "Chunks written into cache files."),
        counter(&s::bytes_written, "written", "Bytes written into cache files.", unit::bytes).json("bytes_written"),
        counter(&s::write_errors, "write_errors", "Chunk writes into cache files that failed."),
        counter(&s::prefetch_chunks, "prefetch_chunks", "Chunks fetched in the background after an OPEN."),
        counter(&s::prefetch_promoted, "prefetch_promoted", "Background fetches a READ then waited on."),
        counter(&s::refetch_chunks, "refetch_chunks", "Written chunks fetched again after a failed integrity check."),
        counter(&s::readahead_chunks, "readahead_chunks", "Chunks fetched in the background ahead of sequential READs."),
        counter(&s::failed_fast, "failed_fast",
                "Chunk reads answered with EIO at once, without a fetch: their fetch failed moments ago."));
}();

/// One blob the registry knows now (an object open or work in flight), for `erofs-blobctl blobs`.
struct blob_info {
    std::string domain, name;
    bool sized = false;            ///< its size is known (from the sources or the frontend)
    std::uint64_t size = 0;
    std::size_t objects = 0;       ///< cache objects of it open now
    /// Bytes of it this daemon has written into (or found in) the open object that has most,
    /// in whole chunks (the last one short); what the cache file held before, unread, is not known here.
    std::uint64_t cached_bytes = 0;
    std::size_t fetching = 0;      ///< chunks in flight
};

class registry {
public:
    /// Longest READ served as asked; longer ones are clamped (the kernel sends far less).
    static constexpr std::uint64_t max_read_len = 256ull << 20;
    /// Read-ahead: when a READ of an object starts where the previous READ ended or at the start
    /// of the chunk after that READ's last one (a sequential reader: the kernel skips what is
    /// cached) and no other READ of the object is pending, the chunks after it are fetched in the
    /// background (fetch_chunk.background, so behind on-demand fetches), so that the reader finds
    /// them written instead of waiting for each: as many whole chunks as the sequential run has
    /// read so far (none before it read one), up to readahead_bytes and readahead_max_chunks.
    /// The chunk cap keeps tiny chunk sizes from queueing hundreds of fetches per READ; the engine
    /// fetches adjacent chunks with one source call (engine_options::merge_bytes).
    static constexpr std::uint64_t readahead_bytes = 4ull << 20;
    static constexpr std::uint64_t readahead_max_chunks = 64;

    explicit registry(std::uint64_t chunk_size);

    /// An open: the object `key` of blob `name` in `domain`, with the fd writes go to. The blob's
    /// size comes from its sources (a stat_blob effect) unless known already. `name` must already
    /// be a plain file name (the frontend checks it, e.g. proto::cookie_name_problem).
    effects open(request_token req, object_key key, std::string domain, std::string name, unique_fd fd);
    /// An open of an object whose blob size the frontend already knows (it sized the cache file):
    /// answered at once. A blob known with another size fails the open (-ESTALE).
    effects open_sized(request_token req, object_key key, std::string domain, std::string name, unique_fd fd,
                       std::uint64_t size);
    /// A read of [off, off+len) of an object.
    effects read(request_token req, object_key key, std::uint64_t off, std::uint64_t len);
    /// Fetches the rest of an open object's blob in the background (fetch_chunk.background).
    /// `present` lists [off, len) ranges its cache file already holds (SEEK_DATA on the anon fd):
    /// they are marked written and not fetched again.
    effects prefetch(object_key key,
                     const std::vector<std::pair<std::uint64_t, std::uint64_t>>& present);
    /// Marks the chunks of an open, sized object that `present` covers entirely as written, without
    /// fetching anything: what a cache file kept from an earlier run holds (a restarted fanotify
    /// daemon taking over its files). Chunks the object already tracks are left as they are.
    /// Returns the number of chunks marked.
    std::size_t mark_present(object_key key, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& present);
    /// True when every chunk of the open, sized object `key` is written (its cache file holds the
    /// whole blob). O(1) until every chunk is tracked, then one pass over them.
    bool complete(object_key key) const;
    /// The bytes of every blob called `name` (any domain) failed an integrity check: fetch each
    /// chunk already written into an open object again, in the background, to overwrite it in the
    /// cache file. Chunks in flight are fetched again once written, before the READs waiting on
    /// them complete.
    effects refetch(std::string_view name);
    /// Negative cache: chunk `chunk` of `blob` failed to fetch; until forget_failure(), reads of it
    /// fail at once (-EIO, counted as failed_fast) and neither prefetch nor read-ahead asks for it,
    /// so one failure costs one fetch rather than one per page the kernel retries. The caller
    /// decides how long (it calls forget_failure from a timer); a blob forgotten meanwhile (no
    /// object open) forgets its failures too.
    void note_failure(blob_id blob, std::uint64_t chunk);
    void forget_failure(blob_id blob, std::uint64_t chunk);
    /// Stop: background fetches still queued will not run; forget their chunks.
    effects abandon_fetch(blob_id blob, std::uint64_t chunk);
    /// The frontend released the object. Pending reads of it are completed (-EIO).
    effects close(object_key key);

    effects on_stat(blob_id blob, result<std::uint64_t, int> size);
    /// A fetch finished: the buffer holds the chunk's bytes from `at` on (a fetch of several
    /// adjacent chunks answers each of them with the one buffer), or the error is a negative errno.
    effects on_fetched(blob_id blob, std::uint64_t chunk, result<buffer_ptr, int> data, std::size_t at = 0);
    /// A write finished: res is the byte count written (all of it) or a negative errno.
    effects on_written(const object_ptr& object, std::uint64_t chunk, int res);

    /// Shutdown: answer every pending OPEN (-EIO... the kernel is going away) and READ.
    effects fail_all(int neg_errno);
    /// True while OPENs, READs, fetches or writes are outstanding.
    bool busy() const noexcept;
    /// Hands back an effects vector the caller has carried out. It is cleared here and its
    /// capacity reused by a later call, which then allocates nothing for its effects (three
    /// vectors per READ otherwise). Optional: a vector not handed back is simply freed.
    void recycle(effects&& done) noexcept;

    std::uint64_t chunk_size() const noexcept { return chunk_size_; }
    const registry_stats& stats() const noexcept { return stats_; }
    /// The frontend refused an open before it reached open() (a cachefiles OPEN that did not parse,
    /// or whose cookie name is not a plain file name) and answered it itself: counted in opens and
    /// open_failures, so that those count every open the kernel asked for.
    void refused_open() noexcept {
        ++stats_.opens;
        ++stats_.open_failures;
    }
    /// The blobs known now, ordered by (domain, name). Loop thread; O(blobs + their chunks).
    std::vector<blob_info> blobs() const;
    /// Bytes fetched into cache files per domain since the start (the per-domain share of
    /// stats().bytes_fetched; a domain's entry stays after its blobs are forgotten).
    const std::map<std::string, std::uint64_t, std::less<>>& fetched_by_domain() const noexcept {
        return fetched_by_domain_;
    }
    /// Number of objects currently open (tests and metrics).
    std::size_t object_count() const noexcept { return objects_.size(); }

private:
    enum class chunk_state : std::uint8_t { fetching, writing, written };
    struct pending_read {
        request_token req;
        // Chunks not yet settled. Inline: a READ mostly waits on one or two chunks, and settle()
        // scans every pending READ of the object, so no pointer to chase per READ.
        boost::container::small_vector<std::uint64_t, 2> waiting;
        int status = 0;
    };
    struct object_state {
        object_ptr object;
        std::unordered_map<std::uint64_t, chunk_state> chunks;
        std::vector<pending_read> reads;
        std::vector<std::uint64_t> stale;     // in flight when refetch() was asked: fetch again once written
        std::uint64_t next_chunk = 0;   // read-ahead: the chunk after the previous READ's last one
        std::uint64_t next_off = 0;     // read-ahead: where the previous READ ended
        std::uint64_t ahead_end = 0;    // read-ahead: chunks below this were already considered
        std::uint64_t run_start = 0;    // read-ahead: where the current sequential run began
        bool has_read = false;          // next_chunk is meaningful
    };
    struct pending_open {
        request_token req;
        object_ptr object;
    };
    struct blob_state {
        blob_id id;
        std::string domain, name;
        bool sized = false;
        std::uint64_t size = 0;
        std::vector<pending_open> opens;                          // waiting for the size
        std::vector<object_key> objects;                          // open objects
        struct fetch_state {
            boost::container::small_vector<object_key, 2> objects;      // objects waiting for the chunk
            bool background = false;
        };
        std::map<std::uint64_t, fetch_state> fetching;   // chunk -> its one in-flight fetch
        /// Chunks whose last fetch failed, while the frontend's negative cache holds them
        /// (note_failure .. forget_failure): reads of them fail at once instead of fetching.
        std::set<std::uint64_t> failed;
    };

    /// Registers `key` as waiting for chunk `c` of `b`; emits the fetch when it is the first.
    void want_chunk(blob_state& b, std::uint64_t c, object_key key, bool background, effects& out);
    /// The blob named (domain, name), made when new; and the object `key` of it, registered.
    blob_state& blob_for(std::string domain, std::string name);
    object_ptr add_object(blob_state& b, object_key key, unique_fd fd);
    /// Closes an object still registered under `key` (its fd was closed and reopened).
    effects drop_stale(object_key key);
    /// Starts background fetches of the chunks after [.., last] when the READ that ended there
    /// continued a sequential run (see readahead_bytes).
    void read_ahead(object_state& os, blob_state& b, std::uint64_t off, std::uint64_t end, effects& out);
    /// The blob of an open object (always registered: a bug otherwise).
    blob_state& blob_of(const object_state& os);
    void settle(object_state& os, std::uint64_t chunk, int status, effects& out);
    void maybe_forget_blob(blob_id id, effects& out);
    std::pair<std::uint64_t, std::uint64_t> chunk_range(const blob_state& b, std::uint64_t chunk) const;

    /// An empty effects vector, with the capacity of a recycled one when there is one.
    effects fresh_effects() noexcept;

    static constexpr std::size_t max_spare_effects = 16;
    std::vector<effects> spare_effects_;  // cleared, capacity kept; at most max_spare_effects
    std::uint64_t chunk_size_;
    blob_id next_blob_ = 1;
    std::map<std::pair<std::string, std::string>, blob_id> blob_index_;
    std::unordered_map<blob_id, blob_state> blobs_;
    std::unordered_map<object_key, object_state> objects_;
    registry_stats stats_;
    std::map<std::string, std::uint64_t, std::less<>> fetched_by_domain_;
};

}  // namespace blobd
