// fanotify_frontend: serves erofs file-backed mounts through fanotify pre-content events (Linux
// >= 6.14) over the core. See docs/fanotify.md.
//
// A mount (`mount(domain, fsid, mountpoint)`) fetches the bootstrap named `fsid` completely through
// the engine into <cache_dir>/fanotify/<domain>/boot/<fsid>.<n> (metadata reads bypass the hook, so
// it must be local and complete), reads its device table (protocol/erofs), and for each blob tag
// takes a reference on the domain's sparse cache file <cache_dir>/fanotify/<domain>/blobs/<tag>,
// shared by every mount of the domain: created, opened O_RDWR *before* the mark (writes through it
// raise no events), sized by the engine's open (the source's size), handed to the engine as the
// object's fd, then marked (FAN_PRE_ACCESS inode mark). Only then mount(2) of the bootstrap with
// one `device=` per blob, in table order (mark, then mount: a mount made before the mark never
// notifies). mount(2) and umount2 run on a worker thread: the loop thread answers the events a
// mount may cause and must never block.
//
// Events: the group fd (FAN_CLASS_PRE_CONTENT, nonblocking, O_RDWR event fds) is polled on the
// loop; each event is parsed (protocol/fanotify), its file found by fstat(event fd) -> (st_dev,
// st_ino), its range clamped to the blob, and handed to engine.read with the event fd in the
// token. answer_read writes FAN_ALLOW (filled) or FAN_DENY|EIO (failed) and closes the fd. A
// malformed event or one for a file not ours is denied at once. Every event is answered exactly
// once; a queue overflow is logged as an error (a lost event cannot be answered).
//
// Stop: every mount it made is unmounted (detached if busy) before the group closes: fanotify is
// fail-open, a closed group would let readers of a still-mounted image read zeros.
//
// Restarts (docs/fanotify.md, "Restarts"): the group fd, each blob's pre-mark fd and the table of
// events read but not answered (fanotify/handoff.hpp) go to the service manager's fd store; the
// mounts and files are written to <root>/state.json. start() takes all of it over: a successor
// finds the mounts still up (mountinfo), opens the engine objects over the kept fds, counts what
// the files hold as filled (SEEK_DATA), and fills and answers the events its predecessor left,
// by their fd numbers (reserved in this process until answered, so no new event takes one).
// Without a store it opens the files again (no mark exists then) and marks them anew.
// Mounts that go away without the daemon (umount(8), a mount unit) are noticed through
// /proc/self/mountinfo and their files released.
//
// Operations (mount, umount) run one at a time, in order. Borrows the loop and the engine, which
// must outlive it. Threading: loop thread only.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/metrics.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "core/engine.hpp"
#include "frontends/fanotify/handoff.hpp"
#include "io/event_loop.hpp"
#include "io/worker_pool.hpp"

namespace blobd {

namespace proto::fan {
struct event;
}
using proto_event = proto::fan::event;

/// Cache files are regular sparse files, written with exact lengths.
inline constexpr write_policy fanotify_write_policy{0};

struct fanotify_stats {
    std::uint64_t events = 0;          ///< pre-content events read
    std::uint64_t events_denied = 0;   ///< answered FAN_DENY (failed fill, malformed, unknown file)
    std::uint64_t bad_events = 0;      ///< malformed events or events for files that are not ours
    std::uint64_t response_errors = 0; ///< responses the group fd refused
    std::uint64_t overflows = 0;       ///< queue overflows (events lost)
    std::uint64_t mounts = 0;          ///< mounts made
    std::uint64_t mount_failures = 0;  ///< mount requests that failed
    std::uint64_t umounts = 0;         ///< unmounts done
    std::uint64_t external_umounts = 0;  ///< mounts that went without the daemon (umount(8))
    std::uint64_t adopted_mounts = 0;  ///< mounts of a predecessor taken over at start
    std::uint64_t recovered_events = 0;  ///< a predecessor's unanswered events answered at start
    std::uint64_t unrecorded_events = 0;  ///< events served without an entry in the handoff table (full)
    std::uint64_t self_events = 0;     ///< events raised by the daemon's own writes, allowed at once
    std::uint64_t events_pending = 0;  ///< events read and not answered yet (gauge)
    std::uint64_t files_completed = 0;  ///< cache files found complete, their marks removed
};

inline constexpr auto fanotify_metrics = [] {
    using s = fanotify_stats;
    using metrics::counter, metrics::gauge;
    return metrics::make_table(
        metrics::group{"fanotify", {}, "fanotify"},
        counter(&s::events, "events", "Pre-content events read from the fanotify group."),
        counter(&s::events_denied, "events_denied", "Events answered FAN_DENY (the reader got EIO)."),
        counter(&s::bad_events, "bad_events", "Malformed events, or events for files that are not cache files."),
        counter(&s::response_errors, "response_errors", "Responses the fanotify group refused."),
        counter(&s::overflows, "overflows", "Event queue overflows (events lost)."),
        counter(&s::mounts, "mounts", "erofs mounts made."),
        counter(&s::mount_failures, "mount_failures", "Mount requests that failed."),
        counter(&s::umounts, "umounts", "erofs mounts unmounted."),
        counter(&s::external_umounts, "external_umounts", "Mounts unmounted without the daemon (umount(8)), then released."),
        counter(&s::adopted_mounts, "adopted_mounts", "Mounts of a previous daemon taken over at start."),
        counter(&s::recovered_events, "recovered_events", "A previous daemon's unanswered events answered at start."),
        counter(&s::unrecorded_events, "unrecorded_events", "Events served without a handoff table entry (the table was full)."),
        counter(&s::self_events, "self_events",
                "Events raised by the daemon's own cache-file writes (an fd that notifies), allowed at once."),
        gauge(&s::events_pending, "events_pending", "Events read and not answered yet."),
        counter(&s::files_completed, "files_completed", "Cache files found complete: their marks removed, their reads raise no events."));
}();

class fanotify_frontend final : public frontend_port {
public:
    /// `cache_dir` must be on ext4, xfs or btrfs (fanotify::probe checks).
    fanotify_frontend(event_loop& loop, engine& core, std::string cache_dir);
    ~fanotify_frontend() override;
    fanotify_frontend(const fanotify_frontend&) = delete;
    fanotify_frontend& operator=(const fanotify_frontend&) = delete;

    /// Makes the group and arms its poll. The error is one line.
    result<bool, std::string> start();
    /// Unmounts every mount it made (new requests fail), then stops reading events once idle().
    /// Idempotent.
    void stop();
    /// True once stop() was called and every mount is gone.
    bool idle() const noexcept { return stopping_ && ops_.empty() && !op_running_ && mounts_.empty(); }

    /// The outcome of a mount or umount: true, or one line saying what failed (nothing is then
    /// left mounted, marked or created by the request).
    using done_fn = std::function<void(result<bool, std::string>)>;
    /// Mounts bootstrap `fsid` of `domain` at `mountpoint` (an absolute path, no ',').
    void mount(std::string domain, std::string fsid, std::string mountpoint, done_fn done);
    void umount(std::string mountpoint, done_fn done);
    /// read_ahead_kb written into each new mount's bdi after mount(2) (frontends/fanotify/bdi.hpp;
    /// 0: the kernel's default); applies to mounts made afterwards. Default 1024.
    void set_read_ahead_kb(std::uint32_t kb) noexcept { read_ahead_kb_ = kb; }
    /// Mountpoints served now (for stats).
    std::size_t mount_count() const noexcept { return mounts_.size(); }

    const fanotify_stats& stats() const noexcept { return stats_; }
    /// The root of this frontend's files: <cache_dir>/fanotify.
    const std::string& root() const noexcept { return root_; }

    int answer_open(request_token req, std::int64_t size_or_errno, unique_fd fd_back) override;
    void answer_read(const cache_object* object, request_token req, int status) override;

private:
    struct blob_file {
        std::string domain, tag, path;
        object_key key = 0;
        unique_fd fd;  ///< our own copy of the pre-mark fd (sizing, the mark, removing the mark)
        dev_t dev = 0;
        ino_t ino = 0;
        std::string fdname;  ///< its name in the service manager's fd store
        std::uint64_t size = 0;
        unsigned refs = 0;
        bool marked = false;
        /// Every byte is in the file: its mark is removed, reads of it raise no events any more.
        bool complete = false;
        /// registry chunks_written when completeness was last checked (only a write can change it).
        std::uint64_t checked_writes = ~0ull;
    };
    using blob_ptr = std::shared_ptr<blob_file>;
    struct mount_state {
        std::string domain, fsid, mountpoint, boot_path;
        std::vector<blob_ptr> blobs;
    };
    struct mount_op;  // one mount request in progress

    /// An event handed to the engine: answered by `number` in answer_read, then `fd` (the event's
    /// fd, or for a predecessor's event the placeholder reserving its number) is closed.
    struct pending_event {
        unique_fd fd;
        int number = -1;
        int slot = -1;  ///< in the handoff table
        bool recovered = false;
        std::shared_ptr<blob_file> blob;  ///< the file the event is for
    };

    void arm_group();
    void drain_group();
    void handle_event(const proto_event& e, int slot);
    /// Writes the answer for event fd `number`. `recovered`: a predecessor's event, which it may
    /// have answered already (ENOENT is then expected, not an error).
    void respond(int number, std::uint32_t response, bool recovered = false);
    /// Answers an event at once and clears its table slot.
    void finish(int number, int slot, std::uint32_t response, bool recovered = false);
    void pending_changed() noexcept { stats_.events_pending = pending_events_.size(); }
    /// True when the cache file holds every byte of its blob (every chunk written, as the registry
    /// knows it). Asks only when a chunk was written since the last check, so hits cost nothing.
    bool filled_up(blob_file& b);
    /// A complete cache file needs no events: its mark goes (reads of it run at the speed of a
    /// plain file-backed mount from then on).
    void unmark_if_complete(blob_file& b);
    /// Takes over what a predecessor left (state.json, kept fds, unanswered events). start() only.
    void recover(bool adopted_group);
    /// Writes state.json from blobs_, mounts_ and the mount in progress.
    void save_state();
    /// Gives each of the predecessor's events still unanswered whose number is free now a
    /// placeholder fd holding that number (start(), once the fds passed at start are closed).
    void reserve_recovered_numbers();
    void watch_mounts();
    void check_mounts();
    /// Runs the next queued operation if none runs.
    void pump();
    void op_finished();
    void start_mount(std::shared_ptr<mount_op> op);
    void mount_fetch_bootstrap(std::shared_ptr<mount_op> op);
    void mount_blobs(std::shared_ptr<mount_op> op, std::size_t next);
    void mount_now(std::shared_ptr<mount_op> op);
    void mount_failed(std::shared_ptr<mount_op> op, std::string why);
    void start_umount(std::string mountpoint, bool detach_if_busy, done_fn done);
    /// Drops one reference on each blob (the last one closes it in the engine, removes its mark
    /// and its file).
    void release(std::vector<blob_ptr>& blobs);
    /// A mount that is gone (unmounted by us or by someone else): its blobs released, its
    /// bootstrap file deleted, its entry erased. The caller saves the state.
    void forget_mount(std::map<std::string, mount_state>::iterator it);
    /// Opens an engine object over `fd` and calls `then` with its size or a negative errno.
    void engine_open(const std::string& domain, const std::string& name, object_key key, unique_fd fd,
                     std::function<void(std::int64_t)> then);

    event_loop& loop_;
    engine& core_;
    std::string cache_dir_, root_;
    unique_fd group_;
    const pid_t self_pid_ = ::getpid();  // events of our own writes carry it (fanotify reports the tgid)
    std::optional<fanotify::inflight_table> inflight_;
    unique_fd mountinfo_;  // /proc/self/mountinfo, polled for changes
    std::shared_ptr<mount_op> pending_mount_;  // the mount whose mount(2) may be running
    std::string umounting_;  // the mountpoint whose umount2 runs (check_mounts leaves it alone)
    worker_pool mounter_;  // one thread: mount(2), umount2
    fanotify_stats stats_;
    bool stopping_ = false;
    bool polling_ = false;

    object_key next_key_ = 1;
    std::uint64_t next_token_ = 1;
    std::uint64_t next_boot_ = 1;
    /// Events handed to the engine, by token id.
    std::unordered_map<std::uint64_t, pending_event> pending_events_;
    /// Opens and reads of our own (bootstraps, blob sizes), by token id.
    std::unordered_map<std::uint64_t, std::function<void(std::int64_t)>> own_requests_;
    /// Blob cache files by (domain, tag) and by (dev, ino).
    std::map<std::pair<std::string, std::string>, blob_ptr> blobs_;
    std::map<std::pair<dev_t, ino_t>, blob_ptr> by_inode_;
    std::map<std::string, mount_state> mounts_;  // by mountpoint
    std::deque<std::function<void()>> ops_;
    bool op_running_ = false;
    std::uint32_t read_ahead_kb_ = 1024;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace blobd
