// cas_fetcher: a content-addressed store in front of a source, so that a blob used in several
// domains (several cookies, several cache files) is downloaded once.
//
// Two parts. A cas_store is one store directory and everything about it: its files, what is being
// verified, which source is no longer trusted for which blob, and the counters. A cas_fetcher is a
// thin view of one store in front of one upstream source. The daemon makes one cas_store and wraps
// each remote source in its own view of it (see sources/source_set.hpp), so that:
//   - every domain, whatever its source list, finds what any other domain already fetched
//     (files of digest-named blobs are shared by all sources), and
//   - on an integrity failure only the source that delivered the bad bytes is refused: the
//     source_chain around the views moves on to the next source, whose view refetches into a
//     fresh file.
//
// Layout: `<dir>/sha256/<64 hex>` for blobs named by a sha256 digest ("sha256:<hex>" or "<hex>"):
// the name identifies the content whatever source serves it. Any other name identifies content
// only within one source: `<dir>/src-<16 hex>/<name>`, the hex naming the source (a hash of its
// describe() text), so two servers with different "blob1"s never see each other's bytes.
// Each file is sparse, of the blob's size; a chunk fetched from upstream is written there (behind
// the answer: the fetch is answered at once, and a fetch of that range while its write runs is
// answered from the same buffer) and a later fetch of a range already present is served from it.
// What is present is read from the file itself (SEEK_DATA/SEEK_HOLE, as cachefiles does for its
// cache files), so the store survives restarts without any index.
//
// Size: the disk space of every file (allocated blocks) is tracked, from a scan of the directory
// at start (until it is done nothing is evicted) and an fstat after each write. With max_bytes set, once the store exceeds it the least
// recently used files (a write, a hit or an OPEN counts as use; at start, the order of their
// mtimes) are deleted until it is under 90 % of it, sparing files that are open (from a blob's
// stat in any domain until the last of those domains released it) or being verified. A deleted
// blob is fetched from its source again when next wanted, and stored again from its next OPEN on.
// The cachefiles space keeper may delete files too (files() and remove()): it weighs them with
// the cache files in one order when the store shares the cache's disk (docs/operations.md).
//
// Integrity: when a digest-named blob is complete in the store (after a fetch, or at its first stat
// in this process), its sha256 is checked on a worker. On a mismatch the writers are refused at
// once, the file is replaced by an empty sparse one, and then the failure is counted and logged and
// on_integrity_failure tells the owner (the daemon refetches what it already wrote into cache
// files). Every source that wrote into that file answers -EIO for that blob from then on. Bytes
// already handed to the kernel cannot be recalled.
//
// Failures of the store itself (unwritable directory, full disk, read errors, a full worker queue)
// never fail a fetch: the view then fetches from upstream as if there were no store, and counts
// store_errors.
//
// Blocking work: every filesystem call of the store that may wait on the disk (opening and creating
// files, ftruncate, unlink, fstat, SEEK_DATA/SEEK_HOLE, the scan at start) and the hashing run on
// the store's worker_pool (io/worker_pool.hpp), never on the loop thread; reads and writes of the
// files go through the ring. Calls that create, truncate or delete one file's path run one at a
// time per file, in the order asked, so an open never sees a file half replaced or being deleted.
// At most one hash runs at a time (threads - 1 with more threads), so hashing never holds every
// worker. A view answers each range once per fetch however many domains asked for it meanwhile
// (one read from the store or one upstream fetch per range at a time).
//
// Threading: loop thread only. A cas_store must outlive its views (they hold a shared_ptr to it);
// destroying it drops its queued work, stops a running hash early and joins the workers: no
// callback of the store runs after that, so fetches still waiting on it are never answered.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "base/digest.hpp"
#include "base/unique_fd.hpp"
#include "io/event_loop.hpp"
#include "io/worker_pool.hpp"
#include "fetchers/fetcher.hpp"

namespace blobd {

/// SHA-256 of a whole file as 64 lowercase hex digits, or empty on a read error or when `stop`
/// (asked between 1 MiB reads) says so. Blocking: for workers and tests.
std::string sha256_file(const std::string& path, const std::function<bool()>& stop = {});

class cas_fetcher;
namespace cas_detail {
struct opened_file;  // what a worker hands back after opening a store file (cas_fetcher.cpp)
}

class cas_store {
public:
    struct options {
        std::string dir;      ///< created if missing
        bool verify = true;   ///< check sha256-named blobs once complete
        std::uint64_t max_bytes = 0;  ///< disk space the files may take; 0 = no limit
        unsigned workers = 2;         ///< threads for the store's blocking calls and hashing
    };
    struct stats_t {
        std::uint64_t hits = 0;            ///< fetches served from the store
        std::uint64_t bytes_saved = 0;     ///< bytes of those: not fetched from any source
        std::uint64_t stored_bytes = 0;    ///< bytes written into the store (this process)
        std::uint64_t store_errors = 0;    ///< store file open/read/write failures (fetches went upstream)
        std::uint64_t verified = 0;        ///< digest-named blobs whose sha256 matched
        std::uint64_t integrity_failures = 0;  ///< ... and those whose sha256 did not
        std::uint64_t disk_bytes = 0;      ///< disk space the store's files take now (allocated blocks)
        std::uint64_t evicted_files = 0;   ///< files deleted to keep under max_bytes
        std::uint64_t evicted_bytes = 0;   ///< ... and their disk space
        std::uint64_t max_bytes = 0;       ///< options::max_bytes (0: no limit), beside disk_bytes
    };
    /// One file of the store, as the space keeper weighs it against the cache files.
    struct file_info {
        std::string key;           ///< "sha256/<64 hex>" or "src-<16 hex>/<name>"
        std::uint64_t bytes = 0;   ///< allocated on disk
        std::int64_t used_ns = 0;  ///< CLOCK_REALTIME of its last use (files found by the scan: mtime)
        bool in_use = false;       ///< open, stat'ed by a domain, being hashed, created or deleted
    };

    /// Starts the workers and the scan of `opt.dir` (created there if missing).
    cas_store(event_loop& loop, options opt);
    /// What it was built with (a reload reuses a store whose settings did not change).
    const options& settings() const noexcept { return opt_; }
    ~cas_store();
    cas_store(const cas_store&) = delete;
    cas_store& operator=(const cas_store&) = delete;

    const stats_t& stats() const noexcept { return stats_; }
    const std::string& dir() const noexcept { return opt_.dir; }
    /// Every file of the store now; empty until the scan at start is done (nothing may go before).
    std::vector<file_info> files() const;
    /// Deletes the files of `keys` that are still not in use (for the space keeper: the store's
    /// share of one eviction order with the cache files); done(files, bytes) on the loop once
    /// every unlink retired. Never inline.
    void remove(const std::vector<std::string>& keys, std::function<void(std::uint64_t files, std::uint64_t bytes)> done);
    /// Called (loop thread) after a blob failed its digest check, with the blob name as the
    /// cookie knows it, once the bad file is gone and its writers are refused for it.
    std::function<void(const std::string& name)> on_integrity_failure;

private:
    friend class cas_fetcher;
    struct entry {
        std::shared_ptr<unique_fd> fd;
        std::uint64_t size = 0;
        bool complete = false;  // no hole below size, when a worker last looked
        // No block allocated when opened and nothing written since: every range is absent, and
        // find_range says so without a worker (a fresh file's first fetches skip a thread hop).
        bool empty = false;
    };
    using opened = cas_detail::opened_file;
    /// done(entry, 0) with `key`'s open file, or done(nullptr, -errno). With `size`, the file is
    /// created (or truncated to a fresh sparse file when its size differs); without, only an
    /// existing non-empty file is opened (-ENODATA: none worth trusting). done runs inline when
    /// no I/O is needed, else on the loop after a worker opened the file.
    void open_entry(const std::string& key, std::optional<std::uint64_t> size,
                    std::function<void(entry*, int)> done);
    /// done(fd) when [off, off+len) of `key`'s file is all there (fd: the file to read it from),
    /// else done(nullptr). Never inline.
    void find_range(const std::string& key, std::uint64_t off, std::uint64_t len,
                    std::function<void(std::shared_ptr<unique_fd>)> done);
    /// Makes `r` the key's entry: accounting, and forgetting checks of a file it replaced.
    entry* install(const std::string& key, opened&& r);
    /// True when `fd` is still the file of `key` (not closed, replaced or deleted since).
    bool live(const std::string& key, const std::shared_ptr<unique_fd>& fd) const;
    /// After a write into `fd`: re-reads its disk space and whether it is complete (a worker),
    /// then keeps to max_bytes and verifies it if it is a complete digest-named blob.
    void account(const std::string& key, std::shared_ptr<unique_fd> fd, std::string name);
    /// Queues a digest check of `key`'s file when it is open and complete (verify_later).
    void maybe_verify(const std::string& key, const std::string& name);
    /// Queues a digest check of `key`'s (complete) file unless verified, being checked, or not a
    /// digest name; start_hashes() runs them, as many at a time as leaves a worker free.
    void verify_later(const std::string& key, const std::string& name);
    void start_hashes();
    void on_verified(const std::string& key, const std::string& name, bool ok, const std::string& got);
    std::string path_of(const std::string& key) const { return opt_.dir + "/" + key; }
    /// Learns what is on disk (files, their space, their mtime order), on a worker; then keeps to max_bytes.
    void scan();
    /// Marks `key` as just used (the eviction order).
    void touch(const std::string& key);
    /// `key`'s file takes `bytes` of disk now; marks it used.
    void set_space(const std::string& key, std::uint64_t bytes);
    /// Deletes least recently used files not in use until under 90 % of max_bytes.
    void evict();
    /// Whether `key`'s file must stay: open, stat'ed by a domain, being hashed, created or deleted.
    bool in_use(const std::string& key) const;
    /// Forgets `key`'s file now and unlinks it (a worker, after the key's other path operations);
    /// then after(ok, bytes) on the loop. A failed unlink puts the file back in the accounting.
    void unlink_file(const std::string& key, std::function<void(bool ok, std::uint64_t bytes)> after);
    /// Runs `start` once no other path operation (create, truncate, delete) of `key` is running;
    /// `start` calls path_done(key) when its operation finished.
    void with_path(const std::string& key, std::function<void()> start);
    void path_done(const std::string& key);
    bool poisoned(int view, const std::string& key) const { return poisoned_.count({view, key}) != 0; }

    event_loop& loop_;
    options opt_;
    std::map<std::string, entry> entries_;         // open files by key ("sha256/<hex>", "src-<id>/<name>")
    // Domains whose blob (stat'ed through a view) uses the key's file: the file stays open, and is
    // never evicted, until the last of them releases it.
    std::map<std::string, std::set<std::string>> users_;
    // Kept apart from entries_, which release() drops to bound open descriptors.
    std::map<std::string, std::set<int>> writers_; // views that wrote into a file not yet verified
    std::set<std::string> verified_;               // keys whose current file passed its check
    std::set<std::pair<int, std::string>> poisoned_;   // (view, key): that source is not trusted for it
    std::set<std::string> hashing_;                // keys queued for a digest check or being checked
    std::deque<std::pair<std::string, std::string>> hash_queue_;  // (key, name) waiting for a worker
    std::size_t hashes_running_ = 0;
    // Path operations of a key waiting for the running one (present: one is running).
    std::map<std::string, std::deque<std::function<void()>>> path_ops_;
    std::map<int, std::string> view_names_;        // for logs
    struct file_use {
        std::uint64_t bytes = 0;     // allocated
        std::uint64_t last_use = 0;  // use_clock_ at its last use
        std::int64_t used_ns = 0;    // the same use in wall-clock time (the keeper's order)
    };
    std::map<std::string, file_use> files_;        // every file in the store, by key
    // Uses in this process count from here; files found by the scan get their mtime rank below it,
    // so they are older than anything used since start whenever the scan finishes.
    std::uint64_t use_clock_ = std::uint64_t{1} << 40;
    bool scanned_ = false;
    bool warned_full_ = false;                     // "over max_bytes, all in use" logged
    int next_view_ = 1;
    stats_t stats_;
    worker_pool pool_;  // last: destroyed first, so no job outlives what its done callback touches
};

/// cas_store::stats_t as metrics: keys of the stats JSON's "store" object (where the daemon also
/// puts "enabled" and "dir"), erofs_blobd_store_<name> in Prometheus.
inline constexpr auto store_metrics = [] {
    using s = cas_store::stats_t;
    using metrics::counter, metrics::gauge, metrics::unit;
    return metrics::make_table(
        metrics::group{"store", {}, "store"},
        counter(&s::hits, "hits", "Fetches served from the blob store."),
        counter(&s::bytes_saved, "saved", "Bytes served from the store: not fetched from any source.", unit::bytes)
            .json("bytes_saved"),
        counter(&s::stored_bytes, "stored", "Bytes written into the store.", unit::bytes),
        counter(&s::store_errors, "errors", "Store file open, read or write failures (those fetches went upstream).")
            .json("store_errors"),
        counter(&s::verified, "verified", "Digest-named blobs whose sha256 matched."),
        counter(&s::integrity_failures, "integrity_failures", "Digest-named blobs whose sha256 did not match."),
        gauge(&s::disk_bytes, "disk", "Disk space the store's files take now (allocated blocks).", unit::bytes),
        gauge(&s::max_bytes, "max", "Disk space the store may take (0: no limit).", unit::bytes),
        counter(&s::evicted_files, "evicted_files", "Store files deleted to keep under max_bytes."),
        counter(&s::evicted_bytes, "evicted", "Disk space of the store files deleted to keep under max_bytes.",
                unit::bytes));
}();

class cas_fetcher final : public fetcher {
public:
    using options = cas_store::options;
    /// A view of the shared `store` in front of `upstream`.
    cas_fetcher(event_loop& loop, std::shared_ptr<fetcher> upstream, std::shared_ptr<cas_store> store);
    /// A view of a store of its own (one source, one store).
    cas_fetcher(event_loop& loop, std::shared_ptr<fetcher> upstream, options opt);
    ~cas_fetcher() override;

    void stat(const blob_ref& blob, deadline due, stat_done done) override;
    void fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) override;
    void release(const blob_ref& blob) override;
    std::string describe() const override;

    /// Counters of the store (shared by all its views). This view's own stats() count what it
    /// served, from the store or upstream; the upstream's stats() count what crossed the network.
    const cas_store::stats_t& store_stats() const noexcept { return store_->stats(); }

private:
    using range_key = std::tuple<std::string, std::uint64_t, std::uint64_t>;  // (store key, off, len)
    /// Where `name` lives in the store (see the layout above).
    std::string key_of(const std::string& name) const;
    void read_stored(const blob_ref& blob, const range_key& k, std::shared_ptr<unique_fd> fd, deadline due);
    void from_upstream(const blob_ref& blob, const range_key& k, deadline due);
    void store_and_finish(const blob_ref& blob, const range_key& k, const result<buffer_ptr, int>& r,
                          std::shared_ptr<unique_fd> fd);
    /// `served` fetches of `len` bytes answered without a download: counted as store hits.
    void count_hits(std::uint64_t len, std::uint64_t served);
    /// Answers every fetch waiting on `k`.
    void finish(const range_key& k, const result<buffer_ptr, int>& r);

    event_loop& loop_;
    std::shared_ptr<fetcher> upstream_;
    std::shared_ptr<cas_store> store_;
    int id_;
    std::string source_dir_;   // "src-<16 hex>"
    // One read of the store or one upstream fetch per range, however many domains want it at once.
    std::map<range_key, std::vector<fetch_done>> inflight_;
    // Ranges fetched from upstream whose write into the store is still running: their fetches were
    // answered already; a fetch of one of them meanwhile is answered from this buffer.
    std::map<range_key, buffer_ptr> storing_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace blobd
