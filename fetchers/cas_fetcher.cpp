#include "fetchers/cas_fetcher.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <openssl/evp.h>

#include "daemon/base/log.hpp"

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
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < mdlen; ++i) {
        out.push_back(hex[md[i] >> 4]);
        out.push_back(hex[md[i] & 15]);
    }
    return out;
}

cas_fetcher::cas_fetcher(event_loop& loop, std::shared_ptr<fetcher> upstream, options opt)
    : loop_(loop), upstream_(std::move(upstream)), opt_(std::move(opt)) {
    std::error_code ec;
    std::filesystem::create_directories(opt_.dir, ec);
    if (ec) lg.err("cannot create the blob store {}: {}; fetching without it", opt_.dir, ec.message());
}

cas_fetcher::~cas_fetcher() {
    *alive_ = false;
    for (auto& [name, t] : workers_) t.join();
}

std::string cas_fetcher::describe() const { return upstream_->describe() + " (store " + opt_.dir + ")"; }

cas_fetcher::entry* cas_fetcher::open_entry(const std::string& name, std::optional<std::uint64_t> size) {
    auto it = entries_.find(name);
    if (it != entries_.end()) {
        if (!size || it->second.size == *size) return &it->second;
        entries_.erase(it);
    }
    const std::string path = path_of(name);
    unique_fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return nullptr;
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return nullptr;
    auto have = static_cast<std::uint64_t>(st.st_size);
    if (size && have != *size) {
        // New, or the source's blob changed size: start over (a sparse file of the right size).
        if (have != 0) lg.notice("{}: stored size {} differs from the source's {}: discarding it", name, have, *size);
        if (::ftruncate(fd.get(), 0) < 0 || ::ftruncate(fd.get(), static_cast<off_t>(*size)) < 0) return nullptr;
        have = *size;
    } else if (!size && have == 0) {
        return nullptr;  // never stat'ed in this process and nothing stored: no size to trust
    }
    entry e;
    e.fd = std::make_shared<unique_fd>(std::move(fd));
    e.size = have;
    return &entries_.insert_or_assign(name, std::move(e)).first->second;
}

bool cas_fetcher::present(const entry& e, std::uint64_t off, std::uint64_t len) const {
    const std::uint64_t end = std::min(off + len, e.size);
    if (off >= end) return false;
    // Data written by pwrite is allocated; a range is present when it starts with data and the
    // next hole is at or beyond its end. A chunk torn by a crash has a hole and is refetched.
    off_t d = ::lseek(e.fd->get(), static_cast<off_t>(off), SEEK_DATA);
    if (d < 0 || static_cast<std::uint64_t>(d) != off) return false;
    off_t h = ::lseek(e.fd->get(), static_cast<off_t>(off), SEEK_HOLE);
    return h >= 0 && static_cast<std::uint64_t>(h) >= end;
}

void cas_fetcher::stat(const blob_ref& blob, stat_done done) {
    if (poisoned_.count(blob.name)) {
        loop_.defer([done = std::move(done)] { done(unexpected{-EIO}); });
        return;
    }
    upstream_->stat(blob, [this, alive = alive_, blob, done = std::move(done)](result<std::uint64_t, int> r) {
        if (*alive && r) {
            ++stats_.stats;
            if (!open_entry(blob.name, *r)) {
                ++cas_.store_errors;
                lg.warn("{}: cannot open {}: {}", blob.name, path_of(blob.name), std::strerror(errno));
            }
        } else if (*alive) {
            ++stats_.stat_misses;
        }
        done(r);
    });
}

void cas_fetcher::fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, fetch_done done) {
    ++stats_.fetches;
    if (poisoned_.count(blob.name)) {
        ++stats_.fetch_errors;
        loop_.defer([done = std::move(done)] { done(unexpected{-EIO}); });
        return;
    }
    entry* e = open_entry(blob.name, std::nullopt);
    if (e && present(*e, off, len)) {
        auto buf = std::make_shared<aligned_buffer>(len);
        auto fd = e->fd;
        loop_.read_all(fd->get(), buf->data(), static_cast<unsigned>(len), off,
                       [this, alive = alive_, buf, fd, off, len, blob, done = std::move(done)](int res) mutable {
                           if (!*alive) return done(unexpected{-ECANCELED});
                           if (res >= 0 && static_cast<std::uint64_t>(res) == len) {
                               ++cas_.hits;
                               cas_.bytes_saved += len;
                               stats_.bytes += len;
                               buf->filled = len;
                               return done(buffer_ptr(buf));
                           }
                           lg.warn("{}: stored range at {} unreadable: {}; fetching it again", blob.name, off,
                                   res < 0 ? std::strerror(-res) : "short read");
                           ++cas_.store_errors;
                           auto& w = inflight_[{blob.name, off, len}].waiters;
                           w.push_back(std::move(done));
                           if (w.size() == 1) from_upstream(blob, off, len);
                       });
        return;
    }
    // One upstream fetch per range, however many domains want it at once.
    auto& w = inflight_[{blob.name, off, len}].waiters;
    w.push_back(std::move(done));
    if (w.size() == 1) from_upstream(blob, off, len);
}

void cas_fetcher::from_upstream(const blob_ref& blob, std::uint64_t off, std::uint64_t len) {
    upstream_->fetch(blob, off, len, [this, alive = alive_, blob, off, len](result<buffer_ptr, int> r) {
        if (!*alive) return;
        auto finish = [this, key = std::make_tuple(blob.name, off, len)](const result<buffer_ptr, int>& res) {
            auto it = inflight_.find(key);
            if (it == inflight_.end()) return;
            auto waiters = std::move(it->second.waiters);
            inflight_.erase(it);
            for (auto& w : waiters) w(res);
        };
        if (!r) {
            ++stats_.fetch_errors;
            return finish(r);
        }
        stats_.bytes += len;
        entry* e = open_entry(blob.name, std::nullopt);
        if (!e) return finish(r);
        auto data = *r;
        auto fd = e->fd;
        // Store first, then answer: a second domain asking right after finds the range present.
        loop_.write_all(fd->get(), data->data(), static_cast<unsigned>(len), off,
                        [this, alive, fd, data, blob, len, finish, r](int res) {
                            if (!*alive) return;
                            if (res < 0 || static_cast<std::uint64_t>(res) != len) {
                                // A full disk only costs the dedup, never the READ.
                                ++cas_.store_errors;
                                lg.warn("{}: storing {} bytes failed: {}", blob.name, len,
                                        res < 0 ? std::strerror(-res) : "short write");
                            } else {
                                cas_.stored_bytes += len;
                            }
                            finish(r);
                            if (res >= 0) maybe_verify(blob.name);
                        });
    });
}

void cas_fetcher::maybe_verify(const std::string& name) {
    if (!opt_.verify) return;
    const std::string want = sha256_of_name(name);
    if (want.empty()) return;
    auto it = entries_.find(name);
    if (it == entries_.end() || it->second.verifying || it->second.verified) return;
    entry& e = it->second;
    off_t hole = ::lseek(e.fd->get(), 0, SEEK_HOLE);
    if (e.size == 0 || hole < 0 || static_cast<std::uint64_t>(hole) < e.size) return;  // not complete yet
    e.verifying = true;
    // Hashing a large blob takes seconds: never on the loop thread.
    workers_.emplace(name, std::thread([this, alive = alive_, path = path_of(name), name, want] {
        std::string got = sha256_file(path);
        loop_.post([this, alive, name, ok = (got == want), got] {
            if (*alive) on_verified(name, ok, got);
        });
    }));
}

void cas_fetcher::on_verified(const std::string& name, bool ok, const std::string& got) {
    // The worker posted this as its last act: joining it now takes no time.
    if (auto w = workers_.find(name); w != workers_.end()) {
        w->second.join();
        workers_.erase(w);
    }
    auto it = entries_.find(name);
    if (ok) {
        ++cas_.verified;
        if (it != entries_.end()) {
            it->second.verifying = false;
            it->second.verified = true;
        }
        lg.info("{}: sha256 verified", name);
        return;
    }
    ++cas_.integrity_failures;
    lg.err("{}: sha256 mismatch (content hashes to {}): {} served corrupt data; its stored copy is deleted "
           "and it will not be used for this blob again", name, got.empty() ? "?" : got, upstream_->describe());
    poisoned_.insert(name);
    entries_.erase(name);
    ::unlink(path_of(name).c_str());
}

void cas_fetcher::release(const blob_ref& blob) {
    entries_.erase(blob.name);
    upstream_->release(blob);
}

}  // namespace blobd
