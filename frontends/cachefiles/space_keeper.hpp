// space_keeper: keeps the cachefiles cache from filling its filesystem (issue 13). In on-demand
// mode the kernel never culls by itself: below `bstop` it refuses cache writes (ENOBUFS), and every
// cold read fails. The keeper does what cachefilesd does, with the pure policy of
// core/space_policy.hpp deciding when and what:
//
//   - it samples the cache filesystem (statvfs) on a timer, after cache writes (coalesced: at most
//     one sample per `min_gap`) and at once after a write failed with ENOBUFS/ENOSPC;
//   - below `bcull`/`fcull` (or over `max_bytes`) it walks `<dir>/cache/` and culls the least
//     recently used files the kernel does not hold until free space is above `brun`/`frun`;
//   - it culls the way the kernel expects: `inuse <file>` and `cull <file>` written to the device,
//     which resolves <file> against the calling thread's working directory (fs/cachefiles/daemon.c:
//     get_fs_pwd), so the keeper's thread unshares its fs context (unshare(CLONE_FS)) and fchdir()s
//     into each fan-out directory; the rest of the daemon keeps its own cwd;
//   - the kernel refuses (EBUSY) to cull a file it holds (S_KERNEL_FILE: an object open for a
//     mount, including one being fetched into), so an object in use is never culled, whatever the
//     keeper believes; `inuse` is asked only of files the victim heap would keep, so a walk of
//     millions of files asks it a few thousand times, not millions;
//   - it empties `<dir>/graveyard/`, where cachefiles moves directories it retires;
//   - with set_store(), the blob store's files are victims in the same order (tier 0: store
//     copies of blobs a cache file also holds; then cache and store files least recently used
//     first): the walk matches store files to cache files by blob name, and the store deletes its
//     own files on the loop thread, the keeper waiting for the answer (bounded, and given up on
//     stop()).
//
// Memory: a walk keeps at most `batch` victims (and their names); the rest is counted and
// forgotten. Time: walks only when culling, on request, or to refresh the disk use figures (at
// most once per `walk_interval`, and never more often than ten times the last walk took). When a
// culling walk freed nothing (all in use), the next one waits ten walk times (two after a write
// refused for space), at least 100 ms; not within a second of a CLOSE: the kernel links a closed
// object's file into the tree only a little after it, and that file is what frees the space.
//
// Culling on request (`erofs-blobctl cull --domain D [--blob NAME]`): every file of the domain's
// volume (`cache/Ierofs,<D>/`), or the one of NAME, is culled unless the kernel holds it.
//
// Disk use: bytes (allocated blocks) and files per volume, from the last walk, plus the bytes
// written since (a running estimate between walks).
//
// Threading: one thread of its own runs every filesystem call and every device command. The
// public functions may be called from the loop thread (any thread, in fact); results come back to
// the loop through event_loop::post. The owner calls stop() (joins) before the loop and the device
// go away; no callback is posted after stop() returned.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/metrics.hpp"
#include "base/unique_fd.hpp"
#include "core/space_policy.hpp"
#include "io/event_loop.hpp"

namespace blobd {

/// The file name cachefiles gives the cookie of `name` (fs/cachefiles/key.c: cachefiles_cook_key)
/// when the name is "printable" there ('!'..'.' and '0'..'~', so no '/', space or control byte):
/// 'D' + name. Other names are encoded (hex words or base64) and not supported: nullopt.
std::optional<std::string> cachefiles_file_name(std::string_view name);
/// The directory of an erofs volume: 'I' + the volume key, "erofs,<domain_id or fsid>".
std::string cachefiles_volume_dir(std::string_view domain);
/// The domain (or fsid) of an erofs volume directory name, nullopt for other names.
std::optional<std::string> cachefiles_volume_domain(std::string_view dir_name);

struct keeper_options {
    std::string cache_dir;  ///< the bound cache directory (holds cache/ and graveyard/)
    space_limits limits;
    std::chrono::milliseconds interval{5000};        ///< statvfs at least this often
    std::chrono::milliseconds min_gap{100};          ///< ... and at most this often after writes
    std::chrono::milliseconds walk_interval{60000};  ///< refresh disk use by a walk this often
    std::size_t batch = 4096;                        ///< victims kept per walk
};

/// Bounds of the walk time histogram, in seconds: a few files to millions.
inline constexpr double walk_seconds_bounds[] = {0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60};

/// Counters and gauges of the keeper (a copy, taken under its lock).
struct keeper_stats {
    std::uint64_t samples = 0;          ///< statvfs samples taken
    std::uint64_t walks = 0;            ///< walks of the cache tree
    std::uint64_t walked_files = 0;     ///< files seen by those walks
    std::uint64_t culled_objects = 0;   ///< cache files culled (by space or on request)
    std::uint64_t culled_bytes = 0;     ///< ... and the disk space they took
    std::uint64_t cull_busy = 0;        ///< culls the kernel refused: the object is in use
    std::uint64_t cull_errors = 0;      ///< culls that failed otherwise
    std::uint64_t graveyard_removed = 0;  ///< entries removed from graveyard/
    std::uint64_t nospace_kicks = 0;    ///< samples started by an ENOBUFS/ENOSPC write
    std::uint64_t stop_samples = 0;     ///< samples that found free space below bstop/fstop
    std::uint64_t unsatisfied = 0;      ///< culling passes that could not free enough (all in use)
    std::uint64_t culling = 0;          ///< 1 while below the cull limits, until above run again
    std::uint64_t cache_bytes = 0;      ///< disk space of the cache files (last walk + written since)
    std::uint64_t cache_files = 0;      ///< cache files at the last walk
    std::uint64_t fs_free_bytes = 0;    ///< free bytes of the cache filesystem, last sample
    std::uint64_t fs_free_files = 0;    ///< free inodes of the cache filesystem, last sample
    metrics::histogram walk_seconds{walk_seconds_bounds};  ///< how long walks of the cache tree took
    std::uint64_t store_culled_files = 0;  ///< blob store files deleted to free space (in the one order)
    std::uint64_t store_culled_bytes = 0;  ///< ... and their disk space
};

inline constexpr auto keeper_metrics = [] {
    using s = keeper_stats;
    using metrics::counter, metrics::gauge, metrics::unit;
    return metrics::make_table(
        metrics::group{"space", {}, "space"},
        counter(&s::samples, "samples", "Free-space samples (statvfs) of the cache filesystem."),
        counter(&s::walks, "walks", "Walks of the cache tree."),
        counter(&s::walked_files, "walked_files", "Files seen by walks of the cache tree."),
        counter(&s::culled_objects, "culled_objects", "Cache files culled (for space or on request)."),
        counter(&s::culled_bytes, "culled", "Disk space of the culled cache files.", unit::bytes),
        counter(&s::cull_busy, "busy", "Culls the kernel refused because the object is in use."),
        counter(&s::cull_errors, "errors", "Culls that failed for another reason."),
        counter(&s::graveyard_removed, "graveyard_removed", "Entries removed from the cache's graveyard."),
        counter(&s::nospace_kicks, "nospace_kicks", "Samples started at once by a cache write that failed with ENOBUFS or ENOSPC."),
        counter(&s::stop_samples, "stop_samples", "Samples that found free space below bstop or fstop (cache writes refused)."),
        counter(&s::unsatisfied, "unsatisfied", "Culling passes that could not free enough: the rest is in use."),
        gauge(&s::culling, "culling", "1 while culling (below bcull/fcull, until above brun/frun)."),
        gauge(&s::cache_bytes, "cache", "Disk space of the cache files (last walk plus bytes written since).", unit::bytes),
        gauge(&s::cache_files, "cache_files", "Cache files at the last walk."),
        gauge(&s::fs_free_bytes, "fs_free", "Free space of the cache filesystem at the last sample.", unit::bytes),
        gauge(&s::fs_free_files, "fs_free_files", "Free inodes of the cache filesystem at the last sample."),
        metrics::histogram_of(&s::walk_seconds, "walk_duration", "How long walks of the cache tree took.", unit::seconds),
        counter(&s::store_culled_files, "store_culled_files", "Blob store files the keeper deleted to free space."),
        counter(&s::store_culled_bytes, "store_culled", "Disk space of the blob store files the keeper deleted.", unit::bytes));
}();

/// Disk use of one volume (a domain, or the fsid of a mount without domain_id), last walk.
struct volume_usage {
    std::uint64_t bytes = 0, files = 0;
};
inline constexpr std::string_view volume_labels[] = {"domain"};
inline constexpr auto volume_metrics = [] {
    using s = volume_usage;
    using metrics::gauge, metrics::unit;
    return metrics::make_table(metrics::group{"domain", volume_labels, "domains"},
                               gauge(&s::bytes, "cache", "Disk space of the domain's cache files (last walk).", unit::bytes),
                               gauge(&s::files, "cache_files", "The domain's cache files (last walk)."));
}();

/// One cache file of a domain (usage on request).
struct blob_usage {
    std::string name;      ///< the blob (cookie) name; the file name when cachefiles encoded it
    bool encoded = false;  ///< `name` is cachefiles' encoded file name, not the cookie name
    std::uint64_t bytes = 0;
};

/// What a cull or usage request did.
struct cull_report {
    std::uint64_t culled = 0, bytes = 0, busy = 0, errors = 0;
    std::vector<blob_usage> blobs;  ///< usage: every cache file of the domain
    std::string error;  ///< set when the request itself could not be carried out
};

/// A file of the blob store, as the keeper weighs it against the cache files.
struct store_file {
    std::string key;             ///< the store's name for it: "sha256/<64 hex>" or "src-<16 hex>/<name>"
    std::uint64_t bytes = 0;     ///< allocated on disk
    std::int64_t last_use = 0;   ///< CLOCK_REALTIME in ns (the cache files' order: atime/mtime)
    bool in_use = false;         ///< the store must keep it now (open, being hashed, ...)
};
/// How the keeper reaches the blob store, which lives on the loop thread: both functions are
/// called there (the keeper posts them and waits for the answer).
struct store_hooks {
    std::string dir;  ///< the store directory: its files compete for space only on the cache's filesystem
    std::function<std::vector<store_file>()> files;
    /// Deletes the files of `keys` still not in use; done(files, bytes) on the loop.
    std::function<void(std::vector<std::string> keys, std::function<void(std::uint64_t, std::uint64_t)> done)> remove;
};
/// What a store file's content is called in a cache file's name: "sha256/<hex>" for digest names
/// (however the store or the cookie spells them), "name:<name>" otherwise. A store file and a cache
/// file with the same match key hold the same blob (tier 0 of the eviction order).
std::string store_match_of_key(std::string_view store_key);
std::string store_match_of_cookie(std::string_view cookie);

class space_keeper {
public:
    /// Writes one command to the cachefiles device and returns 0 or -errno; called on the keeper's
    /// thread, whose cwd the kernel resolves the command's file name against.
    using command_fn = std::function<int(std::string_view command)>;

    space_keeper(event_loop& loop, keeper_options opt, command_fn send);
    ~space_keeper();  ///< stop()
    space_keeper(const space_keeper&) = delete;
    space_keeper& operator=(const space_keeper&) = delete;

    /// The blob store, to cull with the cache files in one order (core/space_policy.hpp): its
    /// copies of blobs a cache file also holds first, then every cache file and store file least
    /// recently used first. Call before start(); without it only cache files are culled.
    void set_store(store_hooks hooks);
    /// Starts the thread; its first sample and walk follow at once.
    void start();
    /// Finishes the running step, drops queued requests (their callbacks are not called) and joins.
    void stop();

    /// A cache write completed: sample soon (within min_gap). `written` bytes count towards the
    /// disk use estimate; `nospace` (the write failed with ENOBUFS/ENOSPC) samples at once.
    void wrote(std::uint64_t written, bool nospace = false);
    /// An object was closed: its file becomes cullable once the kernel has linked it into the tree
    /// (shortly after the CLOSE), so for a second culling walks do not pause after finding nothing.
    void released();
    /// Bytes other files on the cache filesystem that count towards max_bytes take now (the blob
    /// store's disk_bytes).
    void set_other_bytes(std::uint64_t bytes);
    /// Culls every file of `domain`'s volume, or the one of blob `name` there when non-empty;
    /// `done` runs on the loop.
    void cull(std::string domain, std::string name, std::function<void(cull_report)> done);
    /// Lists the cache files of `domain` with their disk space (report.blobs, report.bytes the
    /// sum), culling nothing; `done` runs on the loop.
    void usage(std::string domain, std::function<void(cull_report)> done);

    keeper_stats stats() const;
    std::map<std::string, volume_usage> usage() const;

private:
    struct request {
        std::string domain, name;
        std::function<void(cull_report)> done;
        bool list_only = false;
    };
    void run();
    void sample_and_cull(bool nospace);
    /// Walks cache/: disk use per volume, and the best victims when `heap` is given.
    struct walked;
    walked walk(victim_heap* heap);
    std::uint64_t cull_victims(const space_need& need, walked& w);
    cull_report cull_on_request(const request& r);
    /// `<cache_dir>/<sub>` ("cache", "graveyard") as a directory fd, or none.
    unique_fd open_cache_subdir(const char* sub) const;
    /// `cull <file>` in fan-out directory fd `dir` (volume/fan name it, for the usage figures and
    /// logs); counts the outcome in `tally`: culled (and its bytes), busy, or an error (logged).
    void cull_one(int dir, const std::string& volume, const std::string& fan, const std::string& file,
                  std::uint64_t bytes, cull_report& tally);
    /// Adds what `tally` counted to the stats.
    void count(const cull_report& tally);
    /// A file of volume directory `volume_dir` was culled: the disk use figures drop by it.
    void forget_use(const std::string& volume_dir, std::uint64_t bytes);
    void empty_graveyard();
    /// Runs `start` on the loop and waits until it (or a later loop callback) calls its reply;
    /// nullopt when stopping, or after `limit` (a later reply is then dropped).
    template <class T>
    std::optional<T> on_loop(std::function<void(std::function<void(T)> reply)> start, std::chrono::milliseconds limit);
    /// The store's files when they compete with the cache for space (same filesystem, or a budget).
    std::vector<store_file> store_candidates();
    /// Has the store delete `keys` (those still not in use) and waits for it; returns the bytes freed.
    std::uint64_t remove_store_files(std::vector<std::string> keys);

    event_loop& loop_;
    keeper_options opt_;
    command_fn send_;
    space_policy policy_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false, kicked_ = false, urgent_ = false;
    std::deque<request> requests_;
    std::uint64_t other_bytes_ = 0;
    store_hooks store_;  // set before start(), then read by the keeper's thread only
    std::chrono::steady_clock::time_point last_release_{};
    keeper_stats stats_;
    std::map<std::string, volume_usage> usage_;
    std::thread thread_;

    // Keeper thread only.
    std::chrono::steady_clock::time_point last_walk_{}, next_cull_walk_{};
    std::chrono::milliseconds last_walk_took_{0};
};

}  // namespace blobd
