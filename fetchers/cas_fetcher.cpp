#include "fetchers/cas_fetcher.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <span>

#include <openssl/evp.h>

#include "base/assert.hpp"
#include "base/hex.hpp"
#include "base/log.hpp"

namespace blobd {

namespace {
const log::logger lg{"cas"};
// Per-request errors (a failing disk fails every READ): one line per burst, with a count.
log::rate_limit request_errors;

// ---- worker side: plain functions of paths and fds, no store state ----

bool complete_file(int fd, std::uint64_t size) {
    if (size == 0) return false;
    const off_t hole = ::lseek(fd, 0, SEEK_HOLE);
    return hole >= 0 && static_cast<std::uint64_t>(hole) >= size;
}

}  // namespace

namespace cas_detail {
struct file_facts {
    int err = 0;
    std::uint64_t disk_bytes = 0;  // allocated blocks
    bool linked = true;            // a deleted file is not its key's any more
    bool complete = false;
};
}  // namespace cas_detail
using cas_detail::file_facts;

namespace {

file_facts facts_of(int fd, std::uint64_t size) {
    file_facts f;
    struct stat st {};
    if (::fstat(fd, &st) < 0) {
        f.err = -errno;
        return f;
    }
    f.disk_bytes = static_cast<std::uint64_t>(st.st_blocks) * 512;
    f.linked = st.st_nlink != 0;
    f.complete = complete_file(fd, size);
    return f;
}

// Data written by pwrite is allocated; a range is present when it starts with data and the next
// hole is at or beyond its end. A chunk torn by a crash has a hole and is refetched.
bool range_present(int fd, std::uint64_t off, std::uint64_t len, std::uint64_t size) {
    const std::uint64_t end = std::min(off + len, size);
    if (off >= end) return false;
    const off_t d = ::lseek(fd, static_cast<off_t>(off), SEEK_DATA);
    if (d < 0 || static_cast<std::uint64_t>(d) != off) return false;
    const off_t h = ::lseek(fd, static_cast<off_t>(off), SEEK_HOLE);
    return h >= 0 && static_cast<std::uint64_t>(h) >= end;
}

struct found {
    std::int64_t mtime_ns;
    std::string key;
    std::uint64_t bytes;
};
struct scan_result {
    std::string create_error, list_error;
    std::vector<found> files;  // least recently written first
};

scan_result scan_dir(const std::string& dir) {
    namespace fs = std::filesystem;
    scan_result out;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        out.create_error = ec.message();
        return out;
    }
    const fs::path base(dir);
    for (fs::recursive_directory_iterator it(base, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
        struct stat st {};
        if (::lstat(it->path().c_str(), &st) < 0 || !S_ISREG(st.st_mode)) continue;
        out.files.push_back({static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                             it->path().lexically_relative(base).string(),
                             static_cast<std::uint64_t>(st.st_blocks) * 512});
    }
    if (ec) out.list_error = ec.message();
    std::sort(out.files.begin(), out.files.end(),
              [](const found& a, const found& b) { return a.mtime_ns < b.mtime_ns; });
    return out;
}

}  // namespace

// What a worker hands back after opening (or replacing) a store file.
struct cas_detail::opened_file {
    int err = 0;
    unique_fd fd;
    std::uint64_t size = 0;
    std::uint64_t previous_size = 0;  // when resized: what the file had
    bool resized = false;
    file_facts facts;
};

namespace {

cas_detail::opened_file open_store_file(const std::string& path, std::optional<std::uint64_t> size) {
    cas_detail::opened_file r;
    const int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (size ? O_CREAT : 0);
    r.fd.reset(::open(path.c_str(), flags, 0600));
    if (!r.fd && size && errno == ENOENT) {
        // The per-source or sha256 subdirectory (or the store itself, if the scan has not made it
        // yet) is made on first use.
        std::error_code ec;
        std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
        r.fd.reset(::open(path.c_str(), flags, 0600));
    }
    if (!r.fd) {
        r.err = -errno;
        return r;
    }
    struct stat st {};
    if (::fstat(r.fd.get(), &st) < 0) {
        r.err = -errno;
        return r;
    }
    r.size = static_cast<std::uint64_t>(st.st_size);
    if (size && r.size != *size) {
        // New, or the source's blob changed size: start over (a sparse file of the right size).
        r.previous_size = r.size;
        r.resized = true;
        if (::ftruncate(r.fd.get(), 0) < 0 || ::ftruncate(r.fd.get(), static_cast<off_t>(*size)) < 0) {
            r.err = -errno;
            return r;
        }
        r.size = *size;
    } else if (!size && r.size == 0) {
        r.err = -ENODATA;  // never stat'ed in this process and nothing stored: no size to trust
        return r;
    }
    r.facts = facts_of(r.fd.get(), r.size);
    if (r.facts.err) r.err = r.facts.err;
    return r;
}

// Opens (after deleting it first, with `unlink_first`) a store file on a worker, then calls
// done(opened_file&, err) on the loop: err is the pool's own error (queue full, a throw) or the
// job's. The file travels in a slot of its own rather than in a result<>: GCC 12 misreads a
// variant holding a unique_fd as maybe uninitialised.
template <class Done>
void open_on_worker(worker_pool& pool, std::string path, std::optional<std::uint64_t> size, bool unlink_first,
                    Done done) {
    auto slot = std::make_shared<cas_detail::opened_file>();
    pool.submit(
        [slot, path = std::move(path), size, unlink_first] {
            if (unlink_first) ::unlink(path.c_str());
            if (size || !unlink_first) {
                *slot = open_store_file(path, size);
            } else {
                slot->err = -ENOENT;  // deleted, and no size to make a fresh one of
            }
        },
        [slot, done = std::move(done)](int err) mutable { done(*slot, err != 0 ? err : slot->err); });
}

}  // namespace

std::string sha256_file(const std::string& path, const std::function<bool()>& stop) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return {};
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return {};
    std::vector<unsigned char> buf(1 << 20);
    for (;;) {
        if (stop && stop()) return {};
        ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return {};
        if (n == 0) break;
        EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(n));
    }
    std::array<unsigned char, 32> md{};
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx.get(), md.data(), &mdlen);
    return to_hex(std::span(md.data(), mdlen));
}

// ---- cas_store ----

cas_store::cas_store(event_loop& loop, options opt)
    : loop_(loop), opt_(std::move(opt)), pool_(loop, opt_.workers) {
    stats_.max_bytes = opt_.max_bytes;
    if (opt_.dir.empty()) {
        scanned_ = true;
        return;
    }
    scan();
}

cas_store::~cas_store() = default;  // pool_ goes first: queued work dropped, a running hash stopped

void cas_store::scan() {
    // A store of many files takes a while to list: a worker does it, and nothing is evicted until
    // it is merged (the files it finds are the oldest, the first to go).
    pool_.submit([dir = opt_.dir] { return scan_dir(dir); }, [this](result<scan_result, int> r) {
        scanned_ = true;
        if (!r) {
            lg.warn("blob store {}: cannot scan it: {}; its old files are not counted", opt_.dir,
                    std::strerror(-r.error()));
            return;
        }
        if (!r->create_error.empty()) {
            lg.err("cannot create the blob store {}: {}; fetching without it", opt_.dir, r->create_error);
            return;
        }
        if (!r->list_error.empty()) lg.warn("blob store {}: cannot list it all: {}", opt_.dir, r->list_error);
        std::uint64_t rank = 0, bytes = 0;
        for (auto& f : r->files) {
            ++rank;
            bytes += f.bytes;
            // A file this process used before the scan finished is known better already.
            if (files_.count(f.key)) continue;
            stats_.disk_bytes += f.bytes;
            files_.emplace(std::move(f.key), file_use{f.bytes, rank, f.mtime_ns});
        }
        if (!r->files.empty()) lg.info("blob store {}: {} files, {} bytes on disk", opt_.dir, r->files.size(), bytes);
        evict();  // the limit may have been lowered
    });
}

namespace {
std::int64_t wall_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}
}  // namespace

void cas_store::touch(const std::string& key) {
    if (auto it = files_.find(key); it != files_.end()) {
        it->second.last_use = ++use_clock_;
        it->second.used_ns = wall_ns();
    }
}

void cas_store::set_space(const std::string& key, std::uint64_t bytes) {
    file_use& f = files_[key];
    stats_.disk_bytes = stats_.disk_bytes - f.bytes + bytes;
    f.bytes = bytes;
    f.last_use = ++use_clock_;
    f.used_ns = wall_ns();
}

bool cas_store::in_use(const std::string& key) const {
    // Open files serve blobs in use; a file being hashed must stay what the hash reads; one
    // being created or deleted is not this round's to judge.
    return entries_.count(key) || users_.count(key) || hashing_.count(key) || path_ops_.count(key);
}

std::vector<cas_store::file_info> cas_store::files() const {
    std::vector<file_info> out;
    if (!scanned_) return out;
    out.reserve(files_.size());
    for (const auto& [key, f] : files_) out.push_back({key, f.bytes, f.used_ns, in_use(key)});
    return out;
}

void cas_store::unlink_file(const std::string& key, std::function<void(bool ok, std::uint64_t bytes)> after) {
    // Counted as gone now, so that the next evict() (before the unlink retired) does not pick
    // more victims for the same excess; put back if the unlink fails.
    auto it = files_.find(key);
    const std::uint64_t bytes = it->second.bytes;
    files_.erase(it);
    stats_.disk_bytes -= bytes;
    verified_.erase(key);
    writers_.erase(key);
    with_path(key, [this, key, bytes, after = std::move(after)]() mutable {
        pool_.submit([path = path_of(key)] { return ::unlink(path.c_str()) < 0 && errno != ENOENT ? -errno : 0; },
                     [this, key, bytes, after = std::move(after)](result<int, int> r) {
                         const int err = r ? *r : r.error();
                         if (err != 0) {
                             ++stats_.store_errors;
                             lg.warn("{}: cannot delete {}: {}", opt_.dir, key, std::strerror(-err));
                             if (files_.emplace(key, file_use{bytes, 0, 0}).second) stats_.disk_bytes += bytes;
                         }
                         path_done(key);
                         after(err == 0, bytes);
                     });
    });
}

void cas_store::remove(const std::vector<std::string>& keys,
                       std::function<void(std::uint64_t files, std::uint64_t bytes)> done) {
    struct tally {
        std::uint64_t pending = 1, files = 0, bytes = 0;  // pending: the unlinks, plus this call
        std::function<void(std::uint64_t, std::uint64_t)> done;
    };
    auto t = std::make_shared<tally>();
    t->done = std::move(done);
    auto retire = [this, t] {
        if (--t->pending == 0) loop_.defer([t] { t->done(t->files, t->bytes); });
    };
    for (const auto& key : keys) {
        // Used again since the keeper listed it, or gone: it stays (or there is nothing to do).
        if (!files_.count(key) || in_use(key)) continue;
        ++t->pending;
        unlink_file(key, [this, t, retire, key](bool ok, std::uint64_t bytes) {
            if (ok) {
                ++t->files;
                t->bytes += bytes;
                lg.info("{}: deleted from the blob store for space ({} bytes)", key, bytes);
            }
            retire();
        });
    }
    retire();
}

void cas_store::with_path(const std::string& key, std::function<void()> start) {
    auto [it, idle] = path_ops_.try_emplace(key);
    if (!idle) {
        it->second.push_back(std::move(start));
        return;
    }
    start();
}

void cas_store::path_done(const std::string& key) {
    auto it = path_ops_.find(key);
    BLOBD_ASSERT(it != path_ops_.end(), "path_done without a running path operation");
    if (it->second.empty()) {
        path_ops_.erase(it);
        return;
    }
    auto next = std::move(it->second.front());
    it->second.pop_front();
    next();
}

bool cas_store::live(const std::string& key, const std::shared_ptr<unique_fd>& fd) const {
    auto it = entries_.find(key);
    return it != entries_.end() && it->second.fd == fd;
}

void cas_store::evict() {
    if (opt_.max_bytes == 0 || !scanned_ || stats_.disk_bytes <= opt_.max_bytes) return;
    // Down to 90 %, so that a full store does not delete a file for every chunk it stores.
    const std::uint64_t target = opt_.max_bytes - opt_.max_bytes / 10;
    std::vector<std::pair<std::uint64_t, std::string>> order;  // (last use, key)
    for (const auto& [key, f] : files_) {
        if (!in_use(key)) order.emplace_back(f.last_use, key);
    }
    std::sort(order.begin(), order.end());
    for (const auto& [use, key] : order) {
        if (stats_.disk_bytes <= target) break;
        unlink_file(key, [this, key](bool ok, std::uint64_t bytes) {
            if (!ok) return;
            ++stats_.evicted_files;
            stats_.evicted_bytes += bytes;
            lg.info("{}: evicted from the blob store ({} bytes, least recently used)", key, bytes);
        });
    }
    if (stats_.disk_bytes > opt_.max_bytes) {
        if (!warned_full_) {
            lg.warn("blob store {}: {} bytes on disk, over max_bytes {}, and every file is in use", opt_.dir,
                    stats_.disk_bytes, opt_.max_bytes);
        }
        warned_full_ = true;
    } else {
        warned_full_ = false;
    }
}

cas_store::entry* cas_store::install(const std::string& key, opened&& r) {
    if (r.resized) {
        if (r.previous_size != 0) {
            lg.notice("{}: stored size {} differs from the source's {}: discarding it", key, r.previous_size, r.size);
        }
        verified_.erase(key);
        writers_.erase(key);
    }
    entry e;
    e.fd = std::make_shared<unique_fd>(std::move(r.fd));
    e.size = r.size;
    e.complete = r.facts.complete;
    // A file with data in no block (inline data) only looks empty: its ranges are fetched again,
    // which costs bandwidth, never correctness.
    e.empty = r.facts.disk_bytes == 0;
    entry* out = &entries_.insert_or_assign(key, std::move(e)).first->second;
    set_space(key, r.facts.disk_bytes);
    evict();  // open now, so never the one evicted
    return out;
}

void cas_store::open_entry(const std::string& key, std::optional<std::uint64_t> size,
                           std::function<void(entry*, int)> done) {
    if (opt_.dir.empty()) return done(nullptr, -EINVAL);  // "/" + key would be a path at the root
    with_path(key, [this, key, size, done = std::move(done)]() mutable {
        if (auto it = entries_.find(key); it != entries_.end()) {
            if (!size || it->second.size == *size) {
                done(&it->second, 0);
                return path_done(key);
            }
            entries_.erase(it);  // the size changed: reopen, which truncates
        }
        open_on_worker(pool_, path_of(key), size, false,
                       [this, key, done = std::move(done)](opened& r, int err) mutable {
                           done(err == 0 ? install(key, std::move(r)) : nullptr, err);
                           path_done(key);
                       });
    });
}

void cas_store::find_range(const std::string& key, std::uint64_t off, std::uint64_t len,
                           std::function<void(std::shared_ptr<unique_fd>)> done) {
    open_entry(key, std::nullopt, [this, key, off, len, done = std::move(done)](entry* e, int) mutable {
        if (!e || e->empty) return loop_.defer([done = std::move(done)] { done(nullptr); });
        pool_.submit([fd = e->fd, off, len, size = e->size] { return range_present(fd->get(), off, len, size); },
                     [this, key, fd = e->fd, done = std::move(done)](result<bool, int> r) {
                         // A file replaced meanwhile (a failed check) is not the one to read.
                         done(r && *r && live(key, fd) ? fd : nullptr);
                     });
    });
}

void cas_store::account(const std::string& key, std::shared_ptr<unique_fd> fd, std::string name) {
    auto it = entries_.find(key);
    const std::uint64_t size = it != entries_.end() ? it->second.size : 0;
    pool_.submit([fd, size] { return facts_of(fd->get(), size); },
                 [this, key, fd, name = std::move(name)](result<file_facts, int> r) {
                     // A file deleted meanwhile (evicted, or replaced after a failed check) is not
                     // the key's any more.
                     if (!r || r->err != 0 || !r->linked) return;
                     set_space(key, r->disk_bytes);
                     evict();
                     auto e = entries_.find(key);
                     if (e != entries_.end() && e->second.fd != fd) return;  // replaced meanwhile
                     if (e != entries_.end()) e->second.complete = r->complete;
                     // Checked by path: also when its last domain closed it meanwhile (a file being
                     // hashed is never evicted).
                     if (r->complete) verify_later(key, name);
                 });
}

void cas_store::maybe_verify(const std::string& key, const std::string& name) {
    if (auto it = entries_.find(key); it != entries_.end() && it->second.complete) verify_later(key, name);
}

void cas_store::verify_later(const std::string& key, const std::string& name) {
    if (!opt_.verify || sha256_of_name(name).empty() || verified_.count(key) || hashing_.count(key)) return;
    hashing_.insert(key);
    hash_queue_.emplace_back(key, name);
    start_hashes();
}

void cas_store::start_hashes() {
    // Hashing a large blob takes seconds: leave a worker for the opens and checks of fetches.
    const std::size_t limit = std::max(1u, pool_.threads() - 1);
    while (hashes_running_ < limit && !hash_queue_.empty()) {
        auto [key, name] = std::move(hash_queue_.front());
        hash_queue_.pop_front();
        ++hashes_running_;
        pool_.submit([path = path_of(key), &pool = pool_] { return sha256_file(path, [&pool] { return pool.stopping(); }); },
                     [this, key, name](result<std::string, int> r) {
                         --hashes_running_;
                         hashing_.erase(key);
                         if (r) {
                             on_verified(key, name, *r == sha256_of_name(name), *r);
                         } else {
                             // The pool could not run it (queue full, out of memory): no verdict;
                             // the next write or stat of the blob asks again.
                             if (unsigned n_ = 0; request_errors.allow(n_))
                                 lg.warn("{}: sha256 check not run: {}{}", name, std::strerror(-r.error()),
                                         log::suppressed_note(n_));
                         }
                         start_hashes();
                     });
    }
}

void cas_store::on_verified(const std::string& key, const std::string& name, bool ok, const std::string& got) {
    if (ok) {
        ++stats_.verified;
        verified_.insert(key);
        writers_.erase(key);
        lg.info("{}: sha256 verified", name);
        return;
    }
    std::string who;
    std::uint64_t size = 0;
    if (auto it = entries_.find(key); it != entries_.end()) size = it->second.size;
    for (int v : writers_[key]) {
        poisoned_.emplace(v, key);
        who += (who.empty() ? "" : ", ") + view_names_[v];
    }
    writers_.erase(key);
    if (unsigned n_ = 0; request_errors.allow(n_))
        lg.err("{}: sha256 mismatch (content hashes to {}); stored copy deleted; {}{}", name, got.empty() ? "?" : got,
               who.empty() ? "written before this process started, it is fetched again"
                           : "not fetched from " + who + " again",
               log::suppressed_note(n_));
    entries_.erase(key);
    if (auto f = files_.find(key); f != files_.end()) {
        stats_.disk_bytes -= f->second.bytes;
        files_.erase(f);
    }
    // Replaced by a fresh sparse file of the known size, so that the next source's bytes are stored
    // (a fetch alone creates no file: it has no size to trust). Delete and create are one job, so
    // that no open in between finds the bad file or none.
    with_path(key, [this, key, name, size] {
        open_on_worker(pool_, path_of(key), size ? std::optional(size) : std::nullopt, true,
                       [this, key, name, size](opened& r, int err) {
                           if (err == 0) {
                               install(key, std::move(r));
                           } else if (size) {
                               ++stats_.store_errors;
                               if (unsigned n_ = 0; request_errors.allow(n_))
                                   lg.warn("{}: cannot make a fresh store file: {}{}", key, std::strerror(-err),
                                           log::suppressed_note(n_));
                           }
                           ++stats_.integrity_failures;
                           path_done(key);
                           if (on_integrity_failure) on_integrity_failure(name);
                       });
    });
}

// ---- cas_fetcher ----

cas_fetcher::cas_fetcher(event_loop& loop, std::shared_ptr<fetcher> upstream, std::shared_ptr<cas_store> store)
    : loop_(loop), upstream_(std::move(upstream)), store_(std::move(store)), id_(store_->next_view_++) {
    const std::string d = upstream_->describe();
    std::array<unsigned char, 32> md{};
    unsigned int mdlen = 0;
    EVP_Digest(d.data(), d.size(), md.data(), &mdlen, EVP_sha256(), nullptr);
    source_dir_ = "src-" + to_hex(std::span(md.data(), 8));
    store_->view_names_[id_] = d;
}

cas_fetcher::cas_fetcher(event_loop& loop, std::shared_ptr<fetcher> upstream, options opt)
    : cas_fetcher(loop, std::move(upstream), std::make_shared<cas_store>(loop, std::move(opt))) {}

cas_fetcher::~cas_fetcher() { *alive_ = false; }

std::string cas_fetcher::describe() const { return upstream_->describe(); }

std::string cas_fetcher::key_of(const std::string& name) const {
    std::string hex = sha256_of_name(name);
    return hex.empty() ? source_dir_ + "/" + name : "sha256/" + hex;
}

void cas_fetcher::stat(const blob_ref& blob, deadline due, stat_done done) {
    const std::string key = key_of(blob.name);
    if (store_->poisoned(id_, key)) {
        ++stats_.stat_misses;
        loop_.defer([done = std::move(done)] { done(unexpected{-EIO}); });
        return;
    }
    // The store's callbacks capture it by pointer: its pool runs none after it is gone.
    upstream_->stat(blob, due, [this, alive = alive_, store = store_.get(), blob, key,
                           done = std::move(done)](result<std::uint64_t, int> r) mutable {
        if (!*alive) return done(r);
        if (!r) {
            ++stats_.stat_misses;
            return done(r);
        }
        ++stats_.stats;
        // Answered once the file is open: the blob's READs then find it, and its users are known
        // before any release.
        store->open_entry(key, *r, [store, blob, key, r, done = std::move(done)](cas_store::entry* e, int err) {
            if (!e) {
                ++store->stats_.store_errors;
                if (unsigned n_ = 0; request_errors.allow(n_))
                    lg.warn("{}: cannot open {}: {}{}", blob.name, store->path_of(key), std::strerror(-err),
                            log::suppressed_note(n_));
            } else {
                store->users_[key].insert(blob.domain);
                store->maybe_verify(key, blob.name);  // complete from an earlier run: check it once
            }
            done(r);
        });
    });
}

void cas_fetcher::fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) {
    ++stats_.fetches;
    std::string key = key_of(blob.name);
    if (store_->poisoned(id_, key)) {
        ++stats_.fetch_errors;
        loop_.defer([done = std::move(done)] { done(unexpected{-EIO}); });
        return;
    }
    range_key k{std::move(key), off, len};
    if (auto s = storing_.find(k); s != storing_.end()) {
        // Fetched a moment ago, on its way into the store: the same bytes, without a download.
        count_hits(len, 1);
        loop_.defer([done = std::move(done), data = s->second] { done(data); });
        return;
    }
    auto& w = inflight_[k];
    w.push_back(std::move(done));
    // That range is on its way already: the first caller's deadline governs it (every caller's
    // own deadline is enforced above, by the engine).
    if (w.size() > 1) return;
    store_->find_range(std::get<0>(k), off, len, [this, alive = alive_, blob, k, due](std::shared_ptr<unique_fd> fd) {
        if (!*alive) return;
        if (fd) return read_stored(blob, k, std::move(fd), due);
        from_upstream(blob, k, due);
    });
}

void cas_fetcher::read_stored(const blob_ref& blob, const range_key& k, std::shared_ptr<unique_fd> fd, deadline due) {
    auto buf = try_make_fetch_buffer(std::get<2>(k));
    if (!buf) {
        ++stats_.fetch_errors;
        return finish(k, unexpected{-ENOMEM});
    }
    loop_.read_all(fd->get(), buf->data(), static_cast<unsigned>(std::get<2>(k)), std::get<1>(k),
                   [this, alive = alive_, store = store_, buf, fd, blob, k, due](int res) mutable {
                       if (!*alive) return;
                       const auto& [key, off, len] = k;
                       if (res >= 0 && static_cast<std::uint64_t>(res) == len && store->live(key, fd)) {
                           store->touch(key);
                           count_hits(len, inflight_[k].size());
                           buf->filled = len;
                           return finish(k, buffer_ptr(buf));
                       }
                       if (res < 0 || static_cast<std::uint64_t>(res) != len) {
                           if (unsigned n_ = 0; request_errors.allow(n_))
                               lg.warn("{}: stored range at {} unreadable: {}; fetching it again{}", blob.name, off,
                                       res < 0 ? std::strerror(-res) : "short read", log::suppressed_note(n_));
                           ++store->stats_.store_errors;
                       }
                       from_upstream(blob, k, due);
                   });
}

void cas_fetcher::count_hits(std::uint64_t len, std::uint64_t served) {
    store_->stats_.hits += served;
    store_->stats_.bytes_saved += len * served;
    stats_.bytes += len * served;
}

void cas_fetcher::finish(const range_key& k, const result<buffer_ptr, int>& r) {
    auto it = inflight_.find(k);
    if (it == inflight_.end()) return;
    auto waiters = std::move(it->second);
    inflight_.erase(it);
    for (auto& w : waiters) w(r);
}

void cas_fetcher::from_upstream(const blob_ref& blob, const range_key& k, deadline due) {
    upstream_->fetch(blob, std::get<1>(k), std::get<2>(k), due, [this, alive = alive_, store = store_.get(), blob, k](result<buffer_ptr, int> r) {
        if (!*alive) return;
        if (!r) {
            ++stats_.fetch_errors;
            return finish(k, r);
        }
        stats_.bytes += std::get<2>(k);
        store->open_entry(std::get<0>(k), std::nullopt,
                          [this, alive, store, blob, k, r](cas_store::entry* e, int err) {
                              if (!*alive) return;
                              if (!e) {
                                  // No file and no size (never stat'ed, or its stat already counted
                                  // the failure).
                                  if (err != -ENODATA && err != -ENOENT) ++store->stats_.store_errors;
                                  return finish(k, r);
                              }
                              store_and_finish(blob, k, r, e->fd);
                          });
    });
}

void cas_fetcher::store_and_finish(const blob_ref& blob, const range_key& k, const result<buffer_ptr, int>& r,
                                   std::shared_ptr<unique_fd> fd) {
    auto data = *r;
    if (auto it = store_->entries_.find(std::get<0>(k)); it != store_->entries_.end() && it->second.fd == fd) {
        it->second.empty = false;  // from now on a worker must look
    }
    // Answer now and store beside it: waiting for the store write made every byte's second write
    // (the engine's, into the cache file) start after the first, 0.60x of curl writing files
    // (bench_http_throughput). A fetch of the range while the write runs is answered from the
    // buffer (storing_), so a second domain asking right after still does not download it again.
    storing_[k] = data;
    finish(k, r);
    loop_.write_all(fd->get(), data->data(), static_cast<unsigned>(std::get<2>(k)), std::get<1>(k),
                    [this, alive = alive_, store = store_, id = id_, fd, data, blob, k](int res) {
                        const auto& [key, off, len] = k;
                        if (*alive) {
                            if (auto s = storing_.find(k); s != storing_.end() && s->second == data) storing_.erase(s);
                        }
                        if (res < 0 || static_cast<std::uint64_t>(res) != len) {
                            // A full disk only costs the dedup, never the READ.
                            ++store->stats_.store_errors;
                            if (unsigned n_ = 0; request_errors.allow(n_))
                                lg.warn("{}: storing {} bytes failed: {}{}", blob.name, len,
                                        res < 0 ? std::strerror(-res) : "short write", log::suppressed_note(n_));
                            return;
                        }
                        store->stats_.stored_bytes += len;
                        // Only bytes written into the live file count towards its writers (a file
                        // replaced meanwhile has another entry, or none).
                        if (store->live(key, fd) || !store->entries_.count(key)) store->writers_[key].insert(id);
                        store->account(key, fd, blob.name);
                    });
}

void cas_fetcher::release(const blob_ref& blob) {
    // The last domain using the file lets go: close it (bounds descriptors; what is stored stays,
    // and a later fetch reopens it by path). Every view of a chain hears each release, also for
    // blobs another view stat'ed: the set makes that harmless.
    const std::string key = key_of(blob.name);
    if (auto it = store_->users_.find(key); it != store_->users_.end()) {
        it->second.erase(blob.domain);
        if (it->second.empty()) store_->users_.erase(it);
    }
    if (!store_->users_.count(key)) store_->entries_.erase(key);
    upstream_->release(blob);
}

}  // namespace blobd
