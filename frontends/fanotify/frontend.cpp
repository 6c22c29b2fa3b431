#include "frontends/fanotify/frontend.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/fanotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <optional>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "base/file.hpp"
#include "base/log.hpp"
#include "frontends/fanotify/bdi.hpp"
#include "frontends/fd_store.hpp"
#include "protocol/erofs/bootstrap.hpp"
#include "protocol/fanotify/events.hpp"
#include "protocol/message.hpp"
#include "protocol/mountinfo.hpp"

namespace blobd {

namespace {
const log::logger lg{"fanotify"};
log::rate_limit bad_event_limit;
log::rate_limit self_event_limit;

/// The largest device table a bootstrap can have ends before 8 MiB + 8 MiB (slotoff and count
/// are 16 bits, slots 128 bytes); read no more than that of it.
constexpr std::size_t max_table_bytes = 16u << 20;

std::string errno_text(std::int64_t neg) { return std::strerror(static_cast<int>(-neg)); }

/// A placeholder (a copy of `null`, /dev/null) on fd number `number` when it is free in this
/// process, so that no new fd takes it; empty when it is in use already or `null` is not open.
unique_fd reserve_number(int null, int number) {
    if (null < 0 || ::fcntl(number, F_GETFD) >= 0 || errno != EBADF) return {};
    return unique_fd(::dup3(null, number, O_CLOEXEC) == number ? number : -1);
}

// Names in the service manager's fd store.
constexpr const char* group_fdname = "fanotify-group";
constexpr const char* events_fdname = "fanotify-events";
std::string blob_fdname(const std::string& domain, const std::string& tag) {
    return "fanotify-blob-" + fd_store::fingerprint({domain, tag});
}

std::vector<proto::mount_entry> read_mountinfo(int fd) {
    // A /proc file reads as a whole from offset 0 on each pass.
    std::string text;
    char buf[16384];
    for (off_t off = 0;;) {
        const ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        off += n;
    }
    return proto::parse_mountinfo(text);
}

bool is_mounted(const std::vector<proto::mount_entry>& table, const std::string& mountpoint, const std::string& boot) {
    return std::any_of(table.begin(), table.end(), [&](const proto::mount_entry& e) {
        return e.mount_point == mountpoint && e.fstype == "erofs" && e.source == boot;
    });
}

std::optional<std::string> name_problem(std::string_view what, std::string_view name) {
    if (auto p = proto::cookie_name_problem(name)) {
        return fmt::format("{} \"{}\" {}: not a plain file name", what, proto::printable(name), *p);
    }
    // Names become paths in the mount options, which ',' separates.
    if (name.find(',') != std::string_view::npos) {
        return fmt::format("{} \"{}\" contains ',' (it would end up in the mount options)", what, proto::printable(name));
    }
    return std::nullopt;
}
}  // namespace

struct fanotify_frontend::mount_op {
    mount_state m;
    done_fn done;
    unique_fd boot_fd;  // our copy of the bootstrap file's fd
    object_key boot_key = 0;
    std::uint64_t boot_size = 0;
    std::vector<std::string> tags;
    bool boot_open = false;  // the bootstrap's engine object is open
};

fanotify_frontend::fanotify_frontend(event_loop& loop, engine& core, std::string cache_dir)
    : loop_(loop), core_(core), cache_dir_(std::move(cache_dir)), root_(cache_dir_ + "/fanotify"), mounter_(loop, 1) {
    core_.attach(*this);
}

fanotify_frontend::~fanotify_frontend() {
    if (!mounts_.empty()) {
        // stop() ran its course unless the daemon is torn down abnormally; say what readers see.
        lg.err("{} mounts still up as the fanotify group closes: their readers now read zeros for data not "
               "yet fetched (fanotify is fail-open); unmount them",
               mounts_.size());
    }
}

result<bool, std::string> fanotify_frontend::start() {
    // A group kept by the service manager across a restart: readers blocked on events of the
    // previous daemon still wait on it (fail-open only hits when the group closes).
    bool adopted = false;
    if (unique_fd kept = fd_store::claim(group_fdname)) {
        group_ = std::move(kept);
        adopted = true;
        ::fcntl(group_.get(), F_SETFL, ::fcntl(group_.get(), F_GETFL) | O_NONBLOCK);
    } else {
        group_.reset(::fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, O_RDWR | O_LARGEFILE));
        if (!group_) return unexpected{fmt::format("fanotify_init: {}", std::strerror(errno))};
        if (int r = fd_store::store(group_.get(), group_fdname); r < 0) {
            lg.warn("could not hand the fanotify group to the service manager: {}", std::strerror(-r));
        }
    }
    if (unique_fd kept = fd_store::claim(events_fdname)) {
        auto t = fanotify::inflight_table::adopt(std::move(kept));
        if (t) {
            inflight_.emplace(std::move(*t));
        } else {
            lg.err("the kept event table is unusable ({}): events the previous daemon left unanswered stay "
                   "unanswered (their readers wait until killed)", t.error());
            fd_store::forget(events_fdname);
        }
    }
    if (!inflight_) {
        auto t = fanotify::inflight_table::create();
        if (!t) return unexpected{fmt::format("event table: {}", t.error())};
        inflight_.emplace(std::move(*t));
        if (int r = fd_store::store(inflight_->fd(), events_fdname); r < 0) {
            lg.warn("could not hand the event table to the service manager: {}", std::strerror(-r));
        }
    }
    std::error_code ec;
    std::filesystem::create_directories(root_, ec);
    if (ec) return unexpected{fmt::format("cannot create {}: {}", root_, ec.message())};
    mountinfo_.reset(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
    if (!mountinfo_) return unexpected{fmt::format("/proc/self/mountinfo: {}", std::strerror(errno))};
    recover(adopted);
    // Whatever else was kept for this frontend (a blob no mount uses any more) or for the other one.
    fd_store::drop_unclaimed("fanotify-");
    fd_store::drop_unclaimed("cachefiles-");
    fd_store::passed().clear();
    reserve_recovered_numbers();
    watch_mounts();
    arm_group();
    lg.info("fanotify frontend ready, files under {}{}", root_,
            fd_store::available() ? "; group, files and unanswered events kept in the service manager's fd store"
                                  : "");
    return true;
}

// ---- events ----

void fanotify_frontend::arm_group() {
    if (polling_) return;
    polling_ = true;
    loop_.poll(group_.get(), POLLIN, [this, alive = std::weak_ptr<int>(alive_)](int res) {
        if (alive.expired()) return;
        polling_ = false;
        if (res < 0) {
            lg.err("group poll failed: {}", std::strerror(-res));
            loop_.after(std::chrono::milliseconds(100), [this, alive] { if (!alive.expired()) arm_group(); });
            return;
        }
        drain_group();
    });
}

void fanotify_frontend::drain_group() {
    // Each read returns whole events; yield to the ring every so often so fills keep retiring.
    alignas(8) static std::array<std::byte, 64 * 1024> buf;
    static std::vector<int> slots;
    for (int i = 0; i < 64; ++i) {
        const ssize_t n = ::read(group_.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return arm_group();
        if (n <= 0) {
            lg.err("group read failed: {}", n < 0 ? std::strerror(errno) : "end of file");
            loop_.after(std::chrono::milliseconds(100), [this, alive = std::weak_ptr<int>(alive_)] {
                if (!alive.expired()) arm_group();
            });
            return;
        }
        auto b = proto::fan::parse_events(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n)));
        if (b.overflow) {
            ++stats_.overflows;
            lg.err("fanotify event queue overflowed: permission events were lost, and their readers may wait "
                   "until they are killed");
        }
        if (!b.trailing.empty()) lg.err("fanotify read: {}", b.trailing);
        // Every event into the handoff table first, before any is handled: a successor answers
        // what this process read but did not answer.
        slots.clear();
        for (const auto& e : b.events) {
            int slot = -1;
            if (e.fd >= 0) {
                slot = inflight_->record(e.fd, e.where ? e.where->offset : 0, e.where ? e.where->count : 0);
                if (slot < 0) ++stats_.unrecorded_events;
            }
            slots.push_back(slot);
        }
        for (std::size_t k = 0; k < b.events.size(); ++k) handle_event(b.events[k], slots[k]);
    }
    loop_.defer([this, alive = std::weak_ptr<int>(alive_)] { if (!alive.expired()) drain_group(); });
}

void fanotify_frontend::respond(int number, std::uint32_t response, bool recovered) {
    const auto bytes = proto::fan::encode_response(number, response);
    for (int tries = 0; tries < 100; ++tries) {
        const ssize_t w = ::write(group_.get(), bytes.data(), bytes.size());
        if (w == static_cast<ssize_t>(bytes.size())) return;
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (w < 0 && errno == ENOENT && recovered) {
            // The predecessor answered it and was killed before it cleared its entry.
            lg.debug("event fd {} of the previous daemon was answered already", number);
            return;
        }
        ++stats_.response_errors;
        lg.err("fanotify response for event fd {}: {}", number, w < 0 ? std::strerror(errno) : "short write");
        return;
    }
    ++stats_.response_errors;
}

void fanotify_frontend::finish(int number, int slot, std::uint32_t response, bool recovered) {
    respond(number, response, recovered);
    inflight_->clear(slot);
}

void fanotify_frontend::handle_event(const proto_event& e, int slot) {
    ++stats_.events;
    const int fd = e.fd;
    if (fd < 0) return;  // no fd: nothing to answer (an overflow, counted by the caller)
    unique_fd efd(fd);   // closed after the answer (on every path out of here, or in answer_read)
    auto deny = [&](std::string_view why) {
        ++stats_.bad_events;
        ++stats_.events_denied;
        unsigned suppressed = 0;
        if (bad_event_limit.allow(suppressed)) lg.err("event denied: {}{}", why, log::suppressed_note(suppressed));
        finish(fd, slot, proto::fan::deny_errno(EIO));
    };
    if (!e.problem.empty()) return deny(e.problem);
    if (!(e.mask & proto::fan::pre_access)) return deny(fmt::format("unexpected event mask {:#x}", e.mask));
    if (e.pid == self_pid_) {
        // Our own write into a cache file (an io-wq worker of this process): the fd it writes
        // through notifies. That happens when the file was opened while a pre-content watcher
        // still covered it: after a predecessor died without an fd store, its marks are torn
        // down asynchronously, so reopening the file at once can race with them (seen in
        // tests/fanotify/handoff.sh, about one run in 15). Waiting for the fill would wait for
        // ourselves: the write, and every reader behind it, would hang. The bytes are ours.
        ++stats_.self_events;
        unsigned suppressed = 0;
        if (self_event_limit.allow(suppressed)) {
            lg.warn("a write of the daemon's own raised a pre-content event (its cache fd notifies): allowed{}",
                    log::suppressed_note(suppressed));
        }
        return finish(fd, slot, proto::fan::allow);
    }
    if (!e.where) return deny("no range record");
    struct stat st {};
    if (::fstat(fd, &st) < 0) return deny(fmt::format("fstat of the event fd: {}", std::strerror(errno)));
    inflight_->resolve(slot, st.st_dev, st.st_ino);
    auto it = by_inode_.find({st.st_dev, st.st_ino});
    if (it == by_inode_.end()) return deny(fmt::format("event for an inode that is not a cache file ({}:{})",
                                                       st.st_dev, st.st_ino));
    const blob_ptr& blob = it->second;
    const std::uint64_t off = e.where->offset, count = e.where->count;
    // The cache file is exactly the blob's size; past it there is nothing to fill.
    if (count == 0 || off >= blob->size) return finish(fd, slot, proto::fan::allow);
    const std::uint64_t len = std::min(count, blob->size - off);
    const std::uint64_t id = next_token_++;
    pending_events_.emplace(id, pending_event{std::move(efd), fd, slot, false, blob});
    pending_changed();
    core_.read(request_token{id, fd}, blob->key, off, len);
}

int fanotify_frontend::answer_open(request_token req, std::int64_t size_or_errno, unique_fd fd_back) {
    fd_back.reset();
    auto it = own_requests_.find(req.id);
    if (it == own_requests_.end()) return -ENOENT;
    auto then = std::move(it->second);
    own_requests_.erase(it);
    // Continue outside the engine's call: the answer may come from within engine.open.
    loop_.defer([then = std::move(then), size_or_errno] { then(size_or_errno); });
    return 0;
}

void fanotify_frontend::answer_read(const cache_object*, request_token req, int status) {
    if (auto it = pending_events_.find(req.id); it != pending_events_.end()) {
        // The data is written before the answer: the registry answers when the write retired.
        if (status != 0) ++stats_.events_denied;
        pending_event& p = it->second;
        respond(p.number, status == 0 ? proto::fan::allow : proto::fan::deny_errno(EIO), p.recovered);
        inflight_->clear(p.slot);
        const blob_ptr blob = std::move(p.blob);
        pending_events_.erase(it);  // closes the event fd (or the placeholder), after the response
        pending_changed();
        if (status == 0 && blob) unmark_if_complete(*blob);
        return;
    }
    if (auto it = own_requests_.find(req.id); it != own_requests_.end()) {
        auto then = std::move(it->second);
        own_requests_.erase(it);
        loop_.defer([then = std::move(then), status] { then(status); });
    }
}

void fanotify_frontend::engine_open(const std::string& domain, const std::string& name, object_key key, unique_fd fd,
                                    std::function<void(std::int64_t)> then) {
    const std::uint64_t id = next_token_++;
    own_requests_.emplace(id, std::move(then));
    core_.open(request_token{id}, key, domain, name, std::move(fd));
}

// ---- operations ----

void fanotify_frontend::pump() {
    if (op_running_ || ops_.empty()) return;
    op_running_ = true;
    auto next = std::move(ops_.front());
    ops_.pop_front();
    next();
}

void fanotify_frontend::op_finished() {
    op_running_ = false;
    loop_.defer([this, alive = std::weak_ptr<int>(alive_)] { if (!alive.expired()) pump(); });
}

void fanotify_frontend::mount(std::string domain, std::string fsid, std::string mountpoint, done_fn done) {
    auto op = std::make_shared<mount_op>();
    op->m.domain = std::move(domain);
    op->m.fsid = std::move(fsid);
    op->m.mountpoint = std::move(mountpoint);
    op->done = std::move(done);
    ops_.push_back([this, op] { start_mount(op); });
    pump();
}

void fanotify_frontend::mount_failed(std::shared_ptr<mount_op> op, std::string why) {
    ++stats_.mount_failures;
    lg.err("mount of {} (domain {}) at {} failed: {}", op->m.fsid, op->m.domain, op->m.mountpoint, why);
    const bool saved = pending_mount_ == op;
    pending_mount_.reset();
    release(op->m.blobs);
    if (op->boot_open) core_.close(op->boot_key);
    op->boot_fd.reset();
    if (!op->m.boot_path.empty()) ::unlink(op->m.boot_path.c_str());
    if (saved) save_state();
    auto done = std::move(op->done);
    op_finished();
    done(unexpected{std::move(why)});
}

void fanotify_frontend::start_mount(std::shared_ptr<mount_op> op) {
    auto& m = op->m;
    if (stopping_) return mount_failed(op, "the daemon is stopping");
    if (m.fsid.empty()) return mount_failed(op, "no fsid given");
    if (m.domain.empty()) m.domain = m.fsid;  // as cachefiles: no domain_id means a domain of its own
    if (auto p = name_problem("fsid", m.fsid)) return mount_failed(op, *p);
    if (auto p = name_problem("domain", m.domain)) return mount_failed(op, *p);
    if (m.mountpoint.empty() || m.mountpoint[0] != '/') {
        return mount_failed(op, fmt::format("mountpoint \"{}\" is not an absolute path", proto::printable(m.mountpoint)));
    }
    while (m.mountpoint.size() > 1 && m.mountpoint.back() == '/') m.mountpoint.pop_back();
    if (m.mountpoint.find_first_of(std::string_view(",\0", 2)) != std::string::npos) {
        return mount_failed(op, fmt::format("mountpoint \"{}\" contains ',' or NUL", proto::printable(m.mountpoint)));
    }
    if (root_.find(',') != std::string::npos) {
        return mount_failed(op, fmt::format("cache dir {} contains ',' (paths go into the mount options)", cache_dir_));
    }
    if (auto it = mounts_.find(m.mountpoint); it != mounts_.end()) {
        return mount_failed(op, fmt::format("{} already has {} (domain {}) mounted by this daemon", m.mountpoint,
                                            it->second.fsid, it->second.domain));
    }
    const std::string dir = root_ + "/" + m.domain;
    std::error_code ec;
    std::filesystem::create_directories(dir + "/boot", ec);
    if (!ec) std::filesystem::create_directories(dir + "/blobs", ec);
    if (ec) return mount_failed(op, fmt::format("cannot create {}: {}", dir, ec.message()));
    m.boot_path = fmt::format("{}/boot/{}.{}", dir, m.fsid, next_boot_++);
    unique_fd fd(::open(m.boot_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) {
        const int err = errno;
        m.boot_path.clear();
        return mount_failed(op, fmt::format("cannot create the bootstrap file in {}: {}", dir, std::strerror(err)));
    }
    op->boot_fd.reset(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!op->boot_fd) return mount_failed(op, fmt::format("dup: {}", std::strerror(errno)));
    op->boot_key = next_key_++;
    op->boot_open = true;
    engine_open(m.domain, m.fsid, op->boot_key, std::move(fd), [this, op](std::int64_t size) {
        if (size < 0) {
            op->boot_open = false;  // a failed open leaves no object
            return mount_failed(op, fmt::format("bootstrap {} of domain {}: {}", op->m.fsid, op->m.domain,
                                                errno_text(size)));
        }
        if (size == 0) return mount_failed(op, fmt::format("bootstrap {} is empty", op->m.fsid));
        op->boot_size = static_cast<std::uint64_t>(size);
        if (::ftruncate(op->boot_fd.get(), size) < 0) {
            return mount_failed(op, fmt::format("ftruncate of {}: {}", op->m.boot_path, std::strerror(errno)));
        }
        mount_fetch_bootstrap(op);
    });
}

void fanotify_frontend::mount_fetch_bootstrap(std::shared_ptr<mount_op> op) {
    // All of it: erofs reads metadata around the hook, so none of it may be missing.
    const std::uint64_t id = next_token_++;
    own_requests_.emplace(id, [this, op](std::int64_t status) {
        core_.close(op->boot_key);
        op->boot_open = false;
        if (status < 0) {
            return mount_failed(op, fmt::format("fetching bootstrap {}: {}", op->m.fsid, errno_text(status)));
        }
        std::vector<std::byte> head(static_cast<std::size_t>(std::min<std::uint64_t>(op->boot_size, max_table_bytes)));
        const ssize_t n = ::pread(op->boot_fd.get(), head.data(), head.size(), 0);
        if (n < 0) return mount_failed(op, fmt::format("reading {}: {}", op->m.boot_path, std::strerror(errno)));
        head.resize(static_cast<std::size_t>(n));
        auto info = proto::erofs::parse_bootstrap(head);
        if (!info) return mount_failed(op, fmt::format("bootstrap {}: {}", op->m.fsid, info.error()));
        if (info->devices.empty()) {
            return mount_failed(op, fmt::format("bootstrap {} has no blob devices: a plain image needs no daemon",
                                                op->m.fsid));
        }
        for (const auto& d : info->devices) {
            if (auto p = name_problem("blob tag", d.tag)) return mount_failed(op, fmt::format("bootstrap {}: {}", op->m.fsid, *p));
            op->tags.push_back(d.tag);
        }
        op->boot_fd.reset();
        mount_blobs(op, 0);
    });
    core_.read(request_token{id}, op->boot_key, 0, op->boot_size);
}

void fanotify_frontend::mount_blobs(std::shared_ptr<mount_op> op, std::size_t next) {
    if (next == op->tags.size()) return mount_now(op);
    const std::string& tag = op->tags[next];
    const auto key = std::make_pair(op->m.domain, tag);
    if (auto it = blobs_.find(key); it != blobs_.end()) {
        ++it->second->refs;
        op->m.blobs.push_back(it->second);
        return mount_blobs(op, next + 1);
    }
    auto b = std::make_shared<blob_file>();
    b->domain = op->m.domain;
    b->tag = tag;
    b->path = root_ + "/" + op->m.domain + "/blobs/" + tag;
    b->key = next_key_++;
    // Opened before the mark: the engine's writes through it raise no events (never reopen it later).
    unique_fd fd(::open(b->path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return mount_failed(op, fmt::format("cannot create cache file {}: {}", b->path, std::strerror(errno)));
    b->fd.reset(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!b->fd) return mount_failed(op, fmt::format("dup: {}", std::strerror(errno)));
    engine_open(b->domain, tag, b->key, std::move(fd), [this, op, b, next](std::int64_t size) {
        if (size < 0) {
            ::unlink(b->path.c_str());
            return mount_failed(op, fmt::format("blob {} of bootstrap {} (domain {}): {}", b->tag, op->m.fsid,
                                                op->m.domain, errno_text(size)));
        }
        b->size = static_cast<std::uint64_t>(size);
        // From here the blob is ours to release (engine object, file, mark).
        b->refs = 1;
        blobs_[{b->domain, b->tag}] = b;
        op->m.blobs.push_back(b);
        struct stat st {};
        if (::ftruncate(b->fd.get(), size) < 0 || ::fstat(b->fd.get(), &st) < 0) {
            return mount_failed(op, fmt::format("sizing cache file {}: {}", b->path, std::strerror(errno)));
        }
        b->dev = st.st_dev;
        b->ino = st.st_ino;
        by_inode_[{b->dev, b->ino}] = b;
        if (::fanotify_mark(group_.get(), FAN_MARK_ADD, proto::fan::pre_access, b->fd.get(), nullptr) < 0) {
            return mount_failed(op, fmt::format("fanotify_mark on {}: {}", b->path, std::strerror(errno)));
        }
        b->marked = true;
        // The pre-mark fd to the service manager: a successor writes through it (an fd it opened
        // itself while the group's mark exists would raise events into its own group).
        b->fdname = blob_fdname(b->domain, b->tag);
        if (int r = fd_store::store(b->fd.get(), b->fdname); r < 0) {
            lg.warn("could not hand cache file {} to the service manager: {}", b->path, std::strerror(-r));
        }
        mount_blobs(op, next + 1);
    });
}

void fanotify_frontend::mount_now(std::shared_ptr<mount_op> op) {
    // Written down before mount(2): a successor of a daemon killed while it runs finds the mount
    // (or not) in mountinfo and takes it over with its files.
    pending_mount_ = op;
    save_state();
    std::string opts;
    for (const auto& b : op->m.blobs) {
        if (!opts.empty()) opts += ',';
        opts += "device=" + b->path;
    }
    mounter_.submit(
        [boot = op->m.boot_path, mp = op->m.mountpoint, opts, ra_kb = read_ahead_kb_]() -> int {
            if (::mount(boot.c_str(), mp.c_str(), "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, opts.c_str()) < 0) {
                return errno;
            }
            fanotify::raise_read_ahead(mp, ra_kb);  // fewer, larger events; a failure is only a warning
            return 0;
        },
        [this, op, alive = std::weak_ptr<int>(alive_)](result<int, int> r) {
            if (alive.expired()) return;
            const int err = r ? *r : -r.error();
            if (err != 0) {
                std::string hint;
                if (err == ENOTBLK || err == EINVAL) hint = " (dmesg may say why; file-backed erofs needs CONFIG_EROFS_FS_BACKED_BY_FILE)";
                return mount_failed(op, fmt::format("mount(2) at {}: {}{}", op->m.mountpoint, std::strerror(err), hint));
            }
            ++stats_.mounts;
            lg.info("mounted {} (domain {}) at {}: {} blob(s)", op->m.fsid, op->m.domain, op->m.mountpoint,
                    op->m.blobs.size());
            auto done = std::move(op->done);
            const std::string mp = op->m.mountpoint;
            mounts_.emplace(mp, std::move(op->m));
            pending_mount_.reset();
            save_state();
            op_finished();
            done(true);
        });
}

void fanotify_frontend::forget_mount(std::map<std::string, mount_state>::iterator it) {
    release(it->second.blobs);
    ::unlink(it->second.boot_path.c_str());
    mounts_.erase(it);
}

void fanotify_frontend::release(std::vector<blob_ptr>& blobs) {
    for (auto& b : blobs) {
        if (--b->refs > 0) continue;
        if (b->marked) {
            (void)::fanotify_mark(group_.get(), FAN_MARK_REMOVE, proto::fan::pre_access, b->fd.get(), nullptr);
        }
        core_.close(b->key);
        by_inode_.erase({b->dev, b->ino});
        blobs_.erase({b->domain, b->tag});
        ::unlink(b->path.c_str());
        b->fd.reset();
        if (!b->fdname.empty()) fd_store::forget(b->fdname);
    }
    blobs.clear();
}

void fanotify_frontend::umount(std::string mountpoint, done_fn done) {
    while (mountpoint.size() > 1 && mountpoint.back() == '/') mountpoint.pop_back();
    ops_.push_back([this, mountpoint = std::move(mountpoint), done = std::move(done)]() mutable {
        start_umount(std::move(mountpoint), false, std::move(done));
    });
    pump();
}

void fanotify_frontend::start_umount(std::string mountpoint, bool detach_if_busy, done_fn done) {
    auto it = mounts_.find(mountpoint);
    if (it == mounts_.end()) {
        op_finished();
        return done(unexpected{fmt::format("nothing mounted by this daemon at {}", mountpoint)});
    }
    umounting_ = mountpoint;
    mounter_.submit(
        [mp = mountpoint, detach_if_busy]() -> int {
            if (::umount2(mp.c_str(), UMOUNT_NOFOLLOW) == 0) return 0;
            int err = errno;
            if (err == EBUSY && detach_if_busy && ::umount2(mp.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) return -EBUSY;
            return err;
        },
        [this, mountpoint, detach_if_busy, done = std::move(done), alive = std::weak_ptr<int>(alive_)](result<int, int> r) {
            if (alive.expired()) return;
            umounting_.clear();
            const int err = r ? *r : -r.error();
            if (err > 0 && err != EINVAL && err != ENOENT && !detach_if_busy) {
                op_finished();
                return done(unexpected{fmt::format("umount {}: {}", mountpoint, std::strerror(err))});
            }
            // EINVAL/ENOENT: not a mount point any more (someone else unmounted it): forget it too.
            // At stop, a mount that cannot go is forgotten as well, loudly: the daemon must exit.
            if (err > 0 && err != EINVAL && err != ENOENT) {
                lg.err("could not unmount {} at stop: {}; its readers read zeros once the daemon exits", mountpoint,
                       std::strerror(err));
            }
            if (err == -EBUSY) {
                lg.warn("{} was busy: detached it (MNT_DETACH); files still open in it read zeros for data "
                        "not yet fetched once the daemon exits",
                        mountpoint);
            }
            if (auto it2 = mounts_.find(mountpoint); it2 != mounts_.end()) {
                forget_mount(it2);
                save_state();
            }
            ++stats_.umounts;
            lg.info("unmounted {}", mountpoint);
            op_finished();
            done(true);
        });
}

void fanotify_frontend::stop() {
    if (stopping_) return;
    stopping_ = true;
    // Queued mounts fail (start_mount checks stopping_); then every mount goes, detached if busy.
    for (const auto& entry : mounts_) {
        ops_.push_back([this, point = entry.first] {
            start_umount(point, true, [](result<bool, std::string> r) {
                if (!r) lg.err("at stop: {}", r.error());
            });
        });
    }
    pump();
}

// ---- restarts ----

void fanotify_frontend::save_state() {
    proto::fan::saved_state st;
    st.next_boot = next_boot_;
    for (const auto& [key, b] : blobs_) {
        st.blobs.push_back({b->domain, b->tag, b->path, b->fdname, b->size, static_cast<std::uint64_t>(b->dev),
                            static_cast<std::uint64_t>(b->ino)});
    }
    auto add = [&](const mount_state& m, bool mounted) {
        proto::fan::saved_mount sm{m.mountpoint, m.domain, m.fsid, m.boot_path, {}, mounted};
        for (const auto& b : m.blobs) sm.tags.push_back(b->tag);
        st.mounts.push_back(std::move(sm));
    };
    for (const auto& [mp, m] : mounts_) add(m, true);
    if (pending_mount_) add(pending_mount_->m, false);
    if (auto r = fanotify::write_state(root_ + "/state.json", st); !r) {
        lg.err("{}: a restarted daemon would not know these mounts", r.error());
    }
}

void fanotify_frontend::recover(bool adopted_group) {
    // 1. The numbers of the predecessor's unanswered events: reserved at once, before any fd of
    //    ours (or of a new event) can take one, and kept until answered (the kernel matches the
    //    answer by number).
    std::vector<std::pair<int, fanotify::inflight_table::entry>> left = inflight_->used();
    std::map<int, unique_fd> reserved;
    if (!left.empty()) {
        unique_fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        for (const auto& [slot, e] : left) {
            if (unique_fd held = reserve_number(null.get(), e.fd)) reserved.emplace(e.fd, std::move(held));
        }
    }

    // 2. Files and mounts.
    auto saved = fanotify::read_state(root_ + "/state.json");
    if (!saved) lg.err("{}; mounts of the previous daemon, if any, are not taken over", saved.error());
    const auto table = read_mountinfo(mountinfo_.get());
    std::set<std::string> keep;  // paths still in use
    if (saved && *saved) {
        const proto::fan::saved_state& st = **saved;
        next_boot_ = std::max(next_boot_, st.next_boot);
        std::map<std::pair<std::string, std::string>, blob_ptr> found;
        for (const auto& sb : st.blobs) {
            unique_fd fd = fd_store::claim(sb.fdname);
            const bool kept = static_cast<bool>(fd);
            if (!fd) {
                // Not kept: the previous group is gone with its marks (ours is new), or ours holds a
                // mark whose pre-mark fd is lost. Remove that mark before opening, so that the open
                // makes a file that raises no events, then mark again.
                (void)::fanotify_mark(group_.get(), FAN_MARK_REMOVE, proto::fan::pre_access, AT_FDCWD, sb.path.c_str());
                fd.reset(::open(sb.path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
                if (!fd) {
                    lg.err("cache file {} of the previous daemon: {}", sb.path, std::strerror(errno));
                    continue;
                }
            }
            struct stat stt {};
            if (::fstat(fd.get(), &stt) < 0 || static_cast<std::uint64_t>(stt.st_dev) != sb.dev ||
                static_cast<std::uint64_t>(stt.st_ino) != sb.ino || static_cast<std::uint64_t>(stt.st_size) != sb.size) {
                lg.err("cache file {} is not the one the previous daemon left (replaced or resized): not taken over",
                       sb.path);
                continue;
            }
            if (::fanotify_mark(group_.get(), FAN_MARK_ADD, proto::fan::pre_access, fd.get(), nullptr) < 0) {
                lg.err("fanotify_mark on {}: {}", sb.path, std::strerror(errno));
                continue;
            }
            auto b = std::make_shared<blob_file>();
            b->domain = sb.domain;
            b->tag = sb.tag;
            b->path = sb.path;
            b->fdname = sb.fdname;
            b->key = next_key_++;
            b->fd = std::move(fd);
            b->dev = stt.st_dev;
            b->ino = stt.st_ino;
            b->size = sb.size;
            b->marked = true;
            if (!kept) (void)fd_store::store(b->fd.get(), b->fdname);
            found[{b->domain, b->tag}] = b;
        }
        for (const auto& sm : st.mounts) {
            if (!is_mounted(table, sm.mountpoint, sm.boot)) {
                if (sm.mounted) lg.notice("{} ({} of domain {}) was unmounted while no daemon ran", sm.mountpoint, sm.fsid, sm.domain);
                continue;
            }
            mount_state m{sm.domain, sm.fsid, sm.mountpoint, sm.boot, {}};
            bool complete = true;
            for (const auto& tag : sm.tags) {
                auto it = found.find({sm.domain, tag});
                if (it == found.end()) {
                    complete = false;
                    break;
                }
                m.blobs.push_back(it->second);
            }
            if (!complete) {
                // Its readers would read zeros from the holes: take it away instead.
                lg.err("{} ({} of domain {}) is still mounted but its cache files are lost: detaching it", sm.mountpoint,
                       sm.fsid, sm.domain);
                (void)::umount2(sm.mountpoint.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
                continue;
            }
            for (auto& b : m.blobs) ++b->refs;
            keep.insert(m.boot_path);
            ++stats_.adopted_mounts;
            lg.notice("took over {} ({} of domain {}, {} blob(s)) from the previous daemon", sm.mountpoint, sm.fsid,
                      sm.domain, m.blobs.size());
            mounts_.emplace(sm.mountpoint, std::move(m));
        }
        for (auto& [key, b] : found) {
            if (b->refs == 0) {
                (void)::fanotify_mark(group_.get(), FAN_MARK_REMOVE, proto::fan::pre_access, b->fd.get(), nullptr);
                fd_store::forget(b->fdname);
                continue;  // its file goes below, with the other leftovers
            }
            keep.insert(b->path);
            blobs_[key] = b;
            by_inode_[{b->dev, b->ino}] = b;
            // The object over the kept fd, sized as it is; what the file holds counts as filled.
            unique_fd dup(::fcntl(b->fd.get(), F_DUPFD_CLOEXEC, 0));
            const std::uint64_t id = next_token_++;
            own_requests_.emplace(id, [b](std::int64_t r) {
                if (r < 0) lg.err("cache file {}: engine open failed: {}", b->path, errno_text(r));
            });
            core_.open_sized(request_token{id}, b->key, b->domain, b->tag, std::move(dup), b->size);
            const std::size_t chunks = core_.adopt_present(b->key, b->fd.get());
            lg.info("cache file {} taken over: {} chunk(s) already filled", b->path, chunks);
            unmark_if_complete(*b);
        }
    }

    // 3. Leftovers of mounts that are gone (a crash, a reboot): their files are of no use.
    std::error_code ec;
    for (auto d = std::filesystem::directory_iterator(root_, ec); !ec && d != std::filesystem::directory_iterator(); d.increment(ec)) {
        if (!d->is_directory(ec)) continue;
        for (const char* sub : {"boot", "blobs"}) {
            std::error_code ec2;
            for (auto f = std::filesystem::directory_iterator(d->path() / sub, ec2);
                 !ec2 && f != std::filesystem::directory_iterator(); f.increment(ec2)) {
                if (!keep.count(f->path().string())) ::unlink(f->path().c_str());
            }
        }
    }
    save_state();

    // 4. The predecessor's unanswered events: fill and answer each, by its number.
    for (const auto& [slot, e] : left) {
        ++stats_.recovered_events;
        unique_fd placeholder;
        if (auto r = reserved.find(e.fd); r != reserved.end()) placeholder = std::move(r->second);
        auto it = e.resolved ? by_inode_.find({static_cast<dev_t>(e.dev), static_cast<ino_t>(e.ino)}) : by_inode_.end();
        if (it == by_inode_.end()) {
            // Its file is unknown (read, not yet looked at, when the daemon died) or gone: EIO is
            // the one answer that is never wrong data.
            ++stats_.events_denied;
            finish(e.fd, slot, proto::fan::deny_errno(EIO), true);
            continue;
        }
        const blob_ptr& blob = it->second;
        if (e.count == 0 || e.off >= blob->size) {
            finish(e.fd, slot, proto::fan::allow, true);
            continue;
        }
        const std::uint64_t id = next_token_++;
        pending_events_.emplace(id, pending_event{std::move(placeholder), e.fd, slot, true, blob});
        pending_changed();
        core_.read(request_token{id, e.fd}, blob->key, e.off, std::min(e.count, blob->size - e.off));
    }
    if (!left.empty()) {
        lg.notice("{} event(s) the previous daemon read and did not answer: filling and answering them", left.size());
    }
    if (adopted_group) lg.notice("took over the fanotify group from the previous daemon: its readers kept waiting");
}

bool fanotify_frontend::filled_up(blob_file& b) {
    const std::uint64_t writes = core_.stats().chunks_written;
    if (writes == b.checked_writes) return false;
    b.checked_writes = writes;
    // The registry's view, not SEEK_HOLE: seeking takes the inode lock that the fills' writes
    // hold, and would stall the loop behind them (measured: the cold read lost a tenth).
    return core_.complete(b.key);
}

void fanotify_frontend::unmark_if_complete(blob_file& b) {
    if (b.complete || !b.marked || b.size == 0 || !filled_up(b)) return;
    if (::fanotify_mark(group_.get(), FAN_MARK_REMOVE, proto::fan::pre_access, b.fd.get(), nullptr) < 0) {
        lg.warn("cache file {} is complete but its mark stays: {}", b.path, std::strerror(errno));
        return;
    }
    b.marked = false;
    b.complete = true;
    ++stats_.files_completed;
    lg.info("cache file {} is complete: its mark removed, its reads raise no events any more", b.path);
}

void fanotify_frontend::reserve_recovered_numbers() {
    unique_fd null;
    for (auto& [id, p] : pending_events_) {
        if (!p.recovered || p.fd) continue;
        if (!null) null.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        p.fd = reserve_number(null.get(), p.number);
    }
}

void fanotify_frontend::watch_mounts() {
    loop_.poll(mountinfo_.get(), POLLPRI, [this, alive = std::weak_ptr<int>(alive_)](int res) {
        if (alive.expired()) return;
        if (res < 0) {
            lg.err("polling /proc/self/mountinfo: {}; unmounts made without the daemon go unnoticed", std::strerror(-res));
            return;
        }
        check_mounts();
        watch_mounts();
    });
}

void fanotify_frontend::check_mounts() {
    if (mounts_.empty()) return;
    const auto table = read_mountinfo(mountinfo_.get());
    if (table.empty()) return;  // unreadable: never take that for "all unmounted"
    std::vector<std::string> gone;
    for (const auto& [mp, m] : mounts_) {
        if (mp != umounting_ && !is_mounted(table, mp, m.boot_path)) gone.push_back(mp);
    }
    for (const auto& mp : gone) {
        auto it = mounts_.find(mp);
        lg.notice("{} ({} of domain {}) was unmounted without the daemon: releasing its files", mp, it->second.fsid,
                  it->second.domain);
        forget_mount(it);
        ++stats_.external_umounts;
    }
    if (!gone.empty()) save_state();
}

}  // namespace blobd
