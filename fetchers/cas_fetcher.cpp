#include "fetchers/cas_fetcher.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <openssl/evp.h>

#include "base/hex.hpp"
#include "base/log.hpp"

namespace blobd {

namespace {
const log::logger lg{"cas"};
}  // namespace

std::string sha256_file(const std::string& path) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return {};
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return {};
    std::vector<unsigned char> buf(1 << 20);
    for (;;) {
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

cas_store::cas_store(event_loop& loop, options opt) : loop_(loop), opt_(std::move(opt)) {
    std::error_code ec;
    std::filesystem::create_directories(opt_.dir, ec);
    if (ec) lg.err("cannot create the blob store {}: {}; fetching without it", opt_.dir, ec.message());
    if (!opt_.dir.empty()) scan();
}

void cas_store::scan() {
    namespace fs = std::filesystem;
    struct found {
        std::int64_t mtime_ns;
        std::string key;
        std::uint64_t bytes;
    };
    std::vector<found> all;
    const fs::path base(opt_.dir);
    std::error_code ec;
    for (fs::recursive_directory_iterator it(base, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
        struct stat st {};
        if (::lstat(it->path().c_str(), &st) < 0 || !S_ISREG(st.st_mode)) continue;
        all.push_back({static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                       it->path().lexically_relative(base).string(), static_cast<std::uint64_t>(st.st_blocks) * 512});
    }
    if (ec) lg.warn("blob store {}: cannot list it all: {}", opt_.dir, ec.message());
    // The least recently written first: the eviction order until this process uses them.
    std::sort(all.begin(), all.end(), [](const found& a, const found& b) { return a.mtime_ns < b.mtime_ns; });
    for (auto& f : all) {
        stats_.disk_bytes += f.bytes;
        files_[std::move(f.key)] = file_use{f.bytes, ++use_clock_};
    }
    if (!all.empty()) lg.info("blob store {}: {} files, {} bytes on disk", opt_.dir, all.size(), stats_.disk_bytes);
    evict();  // the limit may have been lowered
}

void cas_store::touch(const std::string& key) {
    if (auto it = files_.find(key); it != files_.end()) it->second.last_use = ++use_clock_;
}

void cas_store::account(const std::string& key, int fd) {
    struct stat st {};
    // A file deleted meanwhile (evicted, or replaced after a failed check) is not the key's any more.
    if (::fstat(fd, &st) < 0 || st.st_nlink == 0) return;
    file_use& f = files_[key];
    const auto bytes = static_cast<std::uint64_t>(st.st_blocks) * 512;
    stats_.disk_bytes = stats_.disk_bytes - f.bytes + bytes;
    f.bytes = bytes;
    f.last_use = ++use_clock_;
    evict();
}

void cas_store::evict() {
    if (opt_.max_bytes == 0 || stats_.disk_bytes <= opt_.max_bytes) return;
    // Down to 90 %, so that a full store does not delete a file for every chunk it stores.
    const std::uint64_t target = opt_.max_bytes - opt_.max_bytes / 10;
    std::vector<std::pair<std::uint64_t, std::string>> order;  // (last use, key)
    for (const auto& [key, f] : files_) {
        // Open files serve blobs in use; a file being hashed must stay what the hash reads.
        if (!entries_.count(key) && !users_.count(key) && !workers_.count(key)) order.emplace_back(f.last_use, key);
    }
    std::sort(order.begin(), order.end());
    for (const auto& [use, key] : order) {
        if (stats_.disk_bytes <= target) break;
        if (::unlink(path_of(key).c_str()) < 0 && errno != ENOENT) {
            ++stats_.store_errors;
            lg.warn("{}: cannot evict {}: {}", opt_.dir, key, std::strerror(errno));
            continue;
        }
        auto it = files_.find(key);
        const std::uint64_t bytes = it->second.bytes;
        files_.erase(it);
        stats_.disk_bytes -= bytes;
        ++stats_.evicted_files;
        stats_.evicted_bytes += bytes;
        verified_.erase(key);
        writers_.erase(key);
        lg.info("{}: evicted from the blob store ({} bytes, least recently used)", key, bytes);
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

cas_store::~cas_store() {
    *alive_ = false;
    for (auto& [key, t] : workers_) t.join();
}

cas_store::entry* cas_store::open_entry(const std::string& key, std::optional<std::uint64_t> size) {
    if (opt_.dir.empty()) {  // "/" + key would be a path at the root
        errno = EINVAL;
        return nullptr;
    }
    auto it = entries_.find(key);
    if (it != entries_.end()) {
        if (!size || it->second.size == *size) return &it->second;
        entries_.erase(it);
    }
    const std::string path = path_of(key);
    const int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (size ? O_CREAT : 0);
    unique_fd fd(::open(path.c_str(), flags, 0600));
    if (!fd && size && errno == ENOENT) {
        // The per-source or sha256 subdirectory is made on first use.
        ::mkdir(path.substr(0, path.rfind('/')).c_str(), 0700);
        fd = unique_fd(::open(path.c_str(), flags, 0600));
    }
    if (!fd) return nullptr;
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return nullptr;
    auto have = static_cast<std::uint64_t>(st.st_size);
    if (size && have != *size) {
        // New, or the source's blob changed size: start over (a sparse file of the right size).
        if (have != 0) lg.notice("{}: stored size {} differs from the source's {}: discarding it", key, have, *size);
        verified_.erase(key);
        writers_.erase(key);
        if (::ftruncate(fd.get(), 0) < 0 || ::ftruncate(fd.get(), static_cast<off_t>(*size)) < 0) return nullptr;
        have = *size;
    } else if (!size && have == 0) {
        errno = ENODATA;
        return nullptr;  // never stat'ed in this process and nothing stored: no size to trust
    }
    entry e;
    e.fd = std::make_shared<unique_fd>(std::move(fd));
    e.size = have;
    entry* out = &entries_.insert_or_assign(key, std::move(e)).first->second;
    account(key, out->fd->get());  // open now, so never the one evicted
    return out;
}

bool cas_store::present(const entry& e, std::uint64_t off, std::uint64_t len) const {
    const std::uint64_t end = std::min(off + len, e.size);
    if (off >= end) return false;
    // Data written by pwrite is allocated; a range is present when it starts with data and the
    // next hole is at or beyond its end. A chunk torn by a crash has a hole and is refetched.
    off_t d = ::lseek(e.fd->get(), static_cast<off_t>(off), SEEK_DATA);
    if (d < 0 || static_cast<std::uint64_t>(d) != off) return false;
    off_t h = ::lseek(e.fd->get(), static_cast<off_t>(off), SEEK_HOLE);
    return h >= 0 && static_cast<std::uint64_t>(h) >= end;
}

void cas_store::maybe_verify(const std::string& key, const std::string& name) {
    if (!opt_.verify) return;
    const std::string want = sha256_of_name(name);
    if (want.empty()) return;
    auto it = entries_.find(key);
    // One check at a time per file: a second worker under the same key would be a second thread
    // object in one map slot.
    if (it == entries_.end() || verified_.count(key) || workers_.count(key)) return;
    entry& e = it->second;
    off_t hole = ::lseek(e.fd->get(), 0, SEEK_HOLE);
    if (e.size == 0 || hole < 0 || static_cast<std::uint64_t>(hole) < e.size) return;  // not complete yet
    // Hashing a large blob takes seconds: never on the loop thread.
    workers_.emplace(key, std::thread([this, alive = alive_, path = path_of(key), key, name, want] {
        std::string got = sha256_file(path);
        loop_.post([this, alive, key, name, ok = (got == want), got] {
            if (*alive) on_verified(key, name, ok, got);
        });
    }));
}

void cas_store::on_verified(const std::string& key, const std::string& name, bool ok, const std::string& got) {
    // The worker posted this as its last act: joining it now takes no time.
    if (auto w = workers_.find(key); w != workers_.end()) {
        w->second.join();
        workers_.erase(w);
    }
    auto it = entries_.find(key);
    if (ok) {
        ++stats_.verified;
        verified_.insert(key);
        writers_.erase(key);
        lg.info("{}: sha256 verified", name);
        return;
    }
    ++stats_.integrity_failures;
    std::string who;
    std::uint64_t size = 0;
    if (it != entries_.end()) size = it->second.size;
    for (int v : writers_[key]) {
        poisoned_.emplace(v, key);
        who += (who.empty() ? "" : ", ") + view_names_[v];
    }
    writers_.erase(key);
    lg.err("{}: sha256 mismatch (content hashes to {}); stored copy deleted; {}", name, got.empty() ? "?" : got,
           who.empty() ? "written before this process started, it is fetched again"
                       : "not fetched from " + who + " again");
    entries_.erase(key);
    ::unlink(path_of(key).c_str());
    if (auto f = files_.find(key); f != files_.end()) {
        stats_.disk_bytes -= f->second.bytes;
        files_.erase(f);
    }
    // A fresh sparse file of the known size, so that the next source's bytes are stored (a fetch
    // alone creates no file: it has no size to trust).
    if (size) open_entry(key, size);
    if (on_integrity_failure) on_integrity_failure(name);
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

void cas_fetcher::stat(const blob_ref& blob, stat_done done) {
    const std::string key = key_of(blob.name);
    if (store_->poisoned(id_, key)) {
        ++stats_.stat_misses;
        loop_.defer([done = std::move(done)] { done(unexpected{-EIO}); });
        return;
    }
    upstream_->stat(blob, [this, alive = alive_, blob, key, done = std::move(done)](result<std::uint64_t, int> r) {
        if (*alive && r) {
            ++stats_.stats;
            if (!store_->open_entry(key, *r)) {
                ++store_->stats_.store_errors;
                lg.warn("{}: cannot open {}: {}", blob.name, store_->path_of(key), std::strerror(errno));
            } else {
                store_->users_[key].insert(blob.domain);
                store_->maybe_verify(key, blob.name);  // complete from an earlier run: check it once
            }
        } else if (*alive) {
            ++stats_.stat_misses;
        }
        done(r);
    });
}

void cas_fetcher::fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, fetch_done done) {
    ++stats_.fetches;
    std::string key = key_of(blob.name);
    if (store_->poisoned(id_, key)) {
        ++stats_.fetch_errors;
        loop_.defer([done = std::move(done)] { done(unexpected{-EIO}); });
        return;
    }
    auto* e = store_->open_entry(key, std::nullopt);
    if (e && store_->present(*e, off, len)) {
        auto buf = make_fetch_buffer(len);
        auto fd = e->fd;
        loop_.read_all(fd->get(), buf->data(), static_cast<unsigned>(len), off,
                       [this, alive = alive_, store = store_, buf, fd, off, len, blob, key,
                        done = std::move(done)](int res) mutable {
                           if (!*alive) return done(unexpected{-ECANCELED});
                           if (res >= 0 && static_cast<std::uint64_t>(res) == len) {
                               store->touch(key);
                               ++store->stats_.hits;
                               store->stats_.bytes_saved += len;
                               stats_.bytes += len;
                               buf->filled = len;
                               return done(buffer_ptr(buf));
                           }
                           lg.warn("{}: stored range at {} unreadable: {}; fetching it again", blob.name, off,
                                   res < 0 ? std::strerror(-res) : "short read");
                           ++store->stats_.store_errors;
                           auto& w = inflight_[{key, off, len}];
                           w.push_back(std::move(done));
                           if (w.size() == 1) from_upstream(blob, key, off, len);
                       });
        return;
    }
    auto& w = inflight_[{key, off, len}];
    w.push_back(std::move(done));
    if (w.size() == 1) from_upstream(blob, key, off, len);
}

void cas_fetcher::from_upstream(const blob_ref& blob, const std::string& key, std::uint64_t off, std::uint64_t len) {
    upstream_->fetch(blob, off, len, [this, alive = alive_, blob, key, off, len](result<buffer_ptr, int> r) {
        if (!*alive) return;
        auto finish = [this, alive, k = std::make_tuple(key, off, len)](const result<buffer_ptr, int>& res) {
            if (!*alive) return;
            auto it = inflight_.find(k);
            if (it == inflight_.end()) return;
            auto waiters = std::move(it->second);
            inflight_.erase(it);
            for (auto& w : waiters) w(res);
        };
        if (!r) {
            ++stats_.fetch_errors;
            return finish(r);
        }
        stats_.bytes += len;
        auto* e = store_->open_entry(key, std::nullopt);
        if (!e) {
            // No file and no size (never stat'ed, or its stat already counted the failure).
        if (errno != ENODATA && errno != ENOENT) ++store_->stats_.store_errors;
            return finish(r);
        }
        auto data = *r;
        auto fd = e->fd;
        // Store first, then answer: a second domain asking right after finds the range present.
        loop_.write_all(fd->get(), data->data(), static_cast<unsigned>(len), off,
                        [this, store = store_, fd, data, blob, key, len, finish, r](int res) {
                            if (res < 0 || static_cast<std::uint64_t>(res) != len) {
                                // A full disk only costs the dedup, never the READ.
                                ++store->stats_.store_errors;
                                lg.warn("{}: storing {} bytes failed: {}", blob.name, len,
                                        res < 0 ? std::strerror(-res) : "short write");
                                return finish(r);
                            }
                            store->stats_.stored_bytes += len;
                            store->account(key, fd->get());
                            // Only bytes written into the live file count towards its writers (a
                            // file replaced meanwhile has another entry, or none).
                            auto it = store->entries_.find(key);
                            if (it == store->entries_.end() || it->second.fd == fd) {
                                store->writers_[key].insert(id_);
                            }
                            finish(r);
                            store->maybe_verify(key, blob.name);
                        });
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
