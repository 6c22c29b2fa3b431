#include "fetchers/local_fetcher.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "base/log.hpp"

namespace blobd {

namespace {
const log::logger lg{"local"};
// Per-request errors (a failing disk fails every READ): one line per burst, with a count.
log::rate_limit request_errors;
}

local_fetcher::local_fetcher(event_loop& loop, std::string dir, std::size_t max_open_files)
    : loop_(loop), dir_(std::move(dir)), max_open_(std::max<std::size_t>(1, max_open_files)) {}

result<local_fetcher::open_file, int> local_fetcher::get(const std::string& name) {
    if (auto it = open_.find(name); it != open_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
        return it->second.file;
    }
    // The name was validated as a single path component by the frontend; O_NOFOLLOW refuses a
    // symlink planted in the blob directory as the final component.
    const std::string path = dir_ + "/" + name;
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return unexpected{-errno};
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return unexpected{-errno};
    if (!S_ISREG(st.st_mode)) return unexpected{-EINVAL};
    open_file f{std::make_shared<unique_fd>(std::move(fd)), static_cast<std::uint64_t>(st.st_size)};
    if (open_.size() >= max_open_ && !lru_.empty()) {
        open_.erase(lru_.back());  // in-flight reads hold their own reference to the fd
        lru_.pop_back();
    }
    lru_.push_front(name);
    open_.emplace(name, cached{f, lru_.begin()});
    return f;
}

void local_fetcher::stat(const blob_ref& blob, deadline /*due: answered at once*/, stat_done done) {
    ++stats_.stats;
    auto f = get(blob.name);
    if (!f) {
        ++stats_.stat_misses;
        if (f.error() != -ENOENT) {
            if (unsigned n_ = 0; request_errors.allow(n_))
                lg.warn("{}/{}: {}{}", dir_, blob.name, std::strerror(-f.error()), log::suppressed_note(n_));
        }
    }
    result<std::uint64_t, int> r = f ? result<std::uint64_t, int>(f->size) : unexpected{f.error()};
    loop_.defer([done = std::move(done), r]() { done(r); });
}

// A read from a local file cannot be interrupted: the deadline is the engine's to enforce.
void local_fetcher::fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline /*due*/,
                          fetch_done done) {
    ++stats_.fetches;
    auto f = get(blob.name);
    if (!f || len > UINT_MAX / 2) {
        ++stats_.fetch_errors;
        int err = f ? -EINVAL : f.error();
        loop_.defer([done = std::move(done), err]() { done(unexpected{err}); });
        return;
    }
    auto buf = try_make_fetch_buffer(len);
    if (!buf) {
        ++stats_.fetch_errors;
        loop_.defer([done = std::move(done)]() { done(unexpected{-ENOMEM}); });
        return;
    }
    auto fd = f->fd;
    loop_.read_all(fd->get(), buf->data(), static_cast<unsigned>(len), off,
                   [this, buf, fd, len, off, name = blob.name, done = std::move(done)](int res) {
                       if (res < 0 || static_cast<std::uint64_t>(res) != len) {
                           ++stats_.fetch_errors;
                           if (res >= 0) {
                               if (unsigned n_ = 0; request_errors.allow(n_))
                                   lg.err("{}/{}: short read at {}: {} of {} bytes (file shrank?){}", dir_, name, off,
                                          res, len, log::suppressed_note(n_));
                           } else {
                               if (unsigned n_ = 0; request_errors.allow(n_))
                                   lg.err("{}/{}: read at {}: {}{}", dir_, name, off, std::strerror(-res),
                                          log::suppressed_note(n_));
                           }
                           // Drop the cached handle: the file may have been replaced.
                           release(blob_ref{{}, name});
                           return done(unexpected{res < 0 ? res : -EIO});
                       }
                       stats_.bytes += len;
                       buf->filled = len;
                       done(buffer_ptr(buf));
                   });
}

void local_fetcher::release(const blob_ref& blob) {
    if (auto it = open_.find(blob.name); it != open_.end()) {
        lru_.erase(it->second.lru_pos);
        open_.erase(it);
    }
}

}  // namespace blobd
