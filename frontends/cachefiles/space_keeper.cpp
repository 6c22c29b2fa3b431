#include "frontends/cachefiles/space_keeper.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/digest.hpp"
#include "base/log.hpp"
#include "base/text.hpp"
#include "base/unique_fd.hpp"

namespace blobd {

namespace {
const log::logger lg{"space"};

constexpr std::string_view volume_prefix = "Ierofs,";

unique_fd open_dir(int at, const char* name) {
    return unique_fd(::openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

/// Calls fn(name, d_type) for every entry of directory fd `dir` but "." and "..". The fd stays
/// the caller's (the stream reads a duplicate).
template <class F>
void each_entry(int dir, F&& fn) {
    const int copy = ::fcntl(dir, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return;
    DIR* d = ::fdopendir(copy);
    if (!d) {
        ::close(copy);
        return;
    }
    while (const dirent* e = ::readdir(d)) {
        const std::string_view n = e->d_name;
        if (n == "." || n == "..") continue;
        fn(e->d_name, e->d_type);
    }
    ::closedir(d);
}

/// Removes everything below directory fd `dir` (not `dir` itself), depth-first, at most `depth`
/// levels (cachefiles' graves are volume/fan-out/file trees). Returns the entries removed.
std::uint64_t remove_below(int dir, int depth) {
    std::uint64_t removed = 0;
    std::vector<std::string> files, dirs;
    each_entry(dir, [&](const char* name, unsigned char type) {
        struct stat st{};
        if (type == DT_UNKNOWN && ::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            type = S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
        }
        (type == DT_DIR ? dirs : files).emplace_back(name);
    });
    for (const auto& f : files) removed += ::unlinkat(dir, f.c_str(), 0) == 0;
    for (const auto& d : dirs) {
        if (depth > 0) {
            if (unique_fd sub = open_dir(dir, d.c_str())) removed += remove_below(sub.get(), depth - 1);
        }
        removed += ::unlinkat(dir, d.c_str(), AT_REMOVEDIR) == 0;
    }
    return removed;
}

std::int64_t last_use_of(const struct stat& st) {
    auto ns = [](const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec; };
    return std::max(ns(st.st_atim), ns(st.st_mtim));
}
}  // namespace

std::optional<std::string> cachefiles_file_name(std::string_view name) {
    // fs/cachefiles/key.c: cachefiles_filecharmap (33..46 and 48..127), and keys of at most
    // NAME_MAX - 3 bytes.
    if (name.empty() || name.size() > 255 - 3) return std::nullopt;
    for (unsigned char c : name) {
        if (!((c >= 33 && c <= 46) || (c >= 48 && c <= 127))) return std::nullopt;
    }
    return "D" + std::string(name);
}

std::string cachefiles_volume_dir(std::string_view domain) { return std::string(volume_prefix) + std::string(domain); }

std::optional<std::string> cachefiles_volume_domain(std::string_view dir_name) {
    if (!dir_name.starts_with(volume_prefix) || dir_name.size() == volume_prefix.size()) return std::nullopt;
    return std::string(dir_name.substr(volume_prefix.size()));
}

std::string store_match_of_key(std::string_view key) {
    // cas_fetcher.hpp's layout: sha256/<hex> for digest names, src-<id>/<name> for the others.
    if (key.starts_with("sha256/")) return std::string(key);
    const auto slash = key.find('/');
    return "name:" + std::string(slash == std::string_view::npos ? key : key.substr(slash + 1));
}

std::string store_match_of_cookie(std::string_view cookie) {
    const std::string hex = sha256_of_name(cookie);
    return hex.empty() ? "name:" + std::string(cookie) : "sha256/" + hex;
}

namespace {
// Ids of store files in a walk's victim heap: beside the cache files' running count.
constexpr std::uint64_t store_id_bit = std::uint64_t{1} << 63;
}  // namespace

struct space_keeper::walked {
    struct victim {
        std::string volume, fan, file;
    };
    std::unordered_map<std::uint64_t, victim> names;  // only ids the heap keeps
    // The store's files (when they compete for the space) and, per match key, their indexes;
    // held[i]: a cache file holds at least as much of store[i]'s blob (tier 0).
    std::vector<store_file> store;
    std::unordered_map<std::string, std::vector<std::size_t>> store_by_match;
    std::vector<bool> held;
    std::vector<cull_candidate> order;                // best victim first
    std::map<std::string, volume_usage> usage;
    std::uint64_t bytes = 0, files = 0;
    bool ok = false;  // cache/ could be read
};

space_keeper::space_keeper(event_loop& loop, keeper_options opt, command_fn send)
    : loop_(loop), opt_(std::move(opt)), send_(std::move(send)), policy_(opt_.limits) {}

space_keeper::~space_keeper() { stop(); }

void space_keeper::start() {
    if (thread_.joinable()) return;
    kicked_ = true;  // a first sample and walk at once
    thread_ = std::thread([this] { run(); });
}

void space_keeper::stop() {
    {
        std::lock_guard g(mu_);
        stopping_ = true;
        requests_.clear();
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void space_keeper::wrote(std::uint64_t written, bool nospace) {
    {
        std::lock_guard g(mu_);
        stats_.cache_bytes += written;
        kicked_ = true;
        if (nospace) {
            urgent_ = true;
            ++stats_.nospace_kicks;
        }
    }
    cv_.notify_one();
}

void space_keeper::released() {
    {
        std::lock_guard g(mu_);
        last_release_ = std::chrono::steady_clock::now();
        kicked_ = true;
    }
    cv_.notify_one();
}

void space_keeper::set_store(store_hooks hooks) { store_ = std::move(hooks); }

template <class T>
std::optional<T> space_keeper::on_loop(std::function<void(std::function<void(T)> reply)> start,
                                       std::chrono::milliseconds limit) {
    // The answer lands in a state of its own: it may come after this call gave up, or after the
    // keeper is gone.
    struct slot {
        std::mutex mu;
        std::condition_variable cv;
        std::optional<T> value;
    };
    auto st = std::make_shared<slot>();
    loop_.post([st, start = std::move(start)] {
        start([st](T v) {
            std::lock_guard g(st->mu);
            st->value = std::move(v);
            st->cv.notify_all();
        });
    });
    const auto until = std::chrono::steady_clock::now() + limit;
    std::unique_lock lk(st->mu);
    while (!st->value) {
        {
            // stop() does not wake this wait (and the loop may never answer once stopping): look
            // again every 50 ms.
            std::lock_guard g(mu_);
            if (stopping_) return std::nullopt;
        }
        if (st->cv.wait_for(lk, std::chrono::milliseconds(50)) == std::cv_status::timeout &&
            std::chrono::steady_clock::now() >= until) {
            return std::nullopt;
        }
    }
    return std::move(st->value);
}

std::vector<store_file> space_keeper::store_candidates() {
    if (!store_.files || store_.dir.empty()) return {};
    // Deleting store files frees the cache filesystem only when they are on it; elsewhere they
    // count only towards the budget.
    struct stat a{}, b{};
    const bool same_fs = ::stat(store_.dir.c_str(), &a) == 0 && ::stat(opt_.cache_dir.c_str(), &b) == 0 &&
                         a.st_dev == b.st_dev;
    if (!same_fs && opt_.limits.max_bytes == 0) return {};
    auto files = store_.files;
    return on_loop<std::vector<store_file>>([files](auto reply) { reply(files()); }, std::chrono::seconds(5))
        .value_or(std::vector<store_file>{});
}

void space_keeper::set_other_bytes(std::uint64_t bytes) {
    std::lock_guard g(mu_);
    other_bytes_ = bytes;
}

void space_keeper::cull(std::string domain, std::string name, std::function<void(cull_report)> done) {
    {
        std::lock_guard g(mu_);
        if (stopping_) return;
        requests_.push_back({std::move(domain), std::move(name), std::move(done)});
    }
    cv_.notify_one();
}

void space_keeper::usage(std::string domain, std::function<void(cull_report)> done) {
    {
        std::lock_guard g(mu_);
        if (stopping_) return;
        requests_.push_back({std::move(domain), std::string(), std::move(done), true});
    }
    cv_.notify_one();
}

keeper_stats space_keeper::stats() const {
    std::lock_guard g(mu_);
    return stats_;
}

std::map<std::string, volume_usage> space_keeper::usage() const {
    std::lock_guard g(mu_);
    return usage_;
}

void space_keeper::run() {
    // `inuse` and `cull` name a file in the caller's working directory; with an fs context of its
    // own this thread can fchdir() without moving the rest of the daemon.
    if (::unshare(CLONE_FS) != 0) {
        lg.warn("unshare(CLONE_FS) failed ({}): culling moves the whole daemon's working directory",
                std::strerror(errno));
    }
    for (;;) {
        std::deque<request> reqs;
        bool urgent = false;
        {
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, opt_.interval, [&] { return stopping_ || kicked_ || !requests_.empty(); });
            if (stopping_) return;
            reqs.swap(requests_);
            urgent = urgent_;
            urgent_ = kicked_ = false;
        }
        for (auto& r : reqs) {
            cull_report rep = cull_on_request(r);
            std::lock_guard g(mu_);
            if (stopping_) return;
            loop_.post([done = std::move(r.done), rep = std::move(rep)]() mutable { done(std::move(rep)); });
        }
        sample_and_cull(urgent);
        // Writes come by the thousand per second: one sample per min_gap is enough, except after a
        // refused write or a request.
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, opt_.min_gap, [&] { return stopping_ || urgent_ || !requests_.empty(); });
        if (stopping_) return;
    }
}

void space_keeper::sample_and_cull(bool nospace) {
    auto sample = [&]() -> std::optional<space_sample> {
        struct statvfs v{};
        if (::statvfs(opt_.cache_dir.c_str(), &v) != 0) {
            static log::rate_limit rl;
            unsigned n = 0;
            if (rl.allow(n)) lg.err("statvfs {}: {}{}", printable(opt_.cache_dir), std::strerror(errno), log::suppressed_note(n));
            return std::nullopt;
        }
        space_sample s;
        s.blocks_total = v.f_blocks;
        s.blocks_avail = v.f_bavail;
        s.block_size = v.f_frsize ? v.f_frsize : v.f_bsize;
        s.files_total = v.f_files;
        s.files_avail = v.f_favail;
        std::lock_guard g(mu_);
        s.used_bytes = stats_.cache_bytes + other_bytes_;
        ++stats_.samples;
        stats_.fs_free_bytes = s.blocks_avail * s.block_size;
        stats_.fs_free_files = s.files_avail;
        if (policy_.stopped(s)) ++stats_.stop_samples;
        return s;
    };
    auto s = sample();
    if (!s) return;
    const bool was_culling = policy_.culling();
    bool culling = policy_.update(*s);
    const auto now = std::chrono::steady_clock::now();
    const auto walk_every = std::max<std::chrono::milliseconds>(opt_.walk_interval, last_walk_took_ * 10);
    const bool walk_due = last_walk_ == std::chrono::steady_clock::time_point{} || now - last_walk_ >= walk_every;
    // Everything left was in use at the last try: walk again only after a pause, not at every
    // write, unless an object was closed since (its file is a new candidate).
    std::chrono::steady_clock::time_point released;
    {
        std::lock_guard g(mu_);
        released = last_release_;
    }
    const bool may_cull = now >= next_cull_walk_ || now - released < std::chrono::seconds(1);
    if (culling && !was_culling) {
        lg.notice("culling: {} bytes and {} inodes free, cache and store take {} bytes (budget {})",
                  s->blocks_avail * s->block_size, s->files_avail, s->used_bytes,
                  opt_.limits.max_bytes ? std::to_string(opt_.limits.max_bytes) : std::string("none"));
    }
    const bool cull_now = culling && may_cull;
    for (int round = 0; cull_now || (round == 0 && walk_due); ++round) {
        victim_heap heap(opt_.batch);
        const auto t0 = std::chrono::steady_clock::now();
        walked w = walk(cull_now ? &heap : nullptr);
        w.order = heap.take();
        last_walk_ = std::chrono::steady_clock::now();
        last_walk_took_ = std::chrono::duration_cast<std::chrono::milliseconds>(last_walk_ - t0);
        {
            std::lock_guard g(mu_);
            ++stats_.walks;
            stats_.walked_files += w.files;
            stats_.walk_seconds.observe(std::chrono::duration<double>(last_walk_ - t0).count());
            if (w.ok) {
                stats_.cache_bytes = w.bytes;
                stats_.cache_files = w.files;
                usage_ = w.usage;
            }
        }
        if (!cull_now) break;
        // The sample's used bytes from this walk, not the estimate.
        {
            std::lock_guard g(mu_);
            s->used_bytes = stats_.cache_bytes + other_bytes_;
        }
        const std::uint64_t freed = cull_victims(policy_.need(*s), w);
        empty_graveyard();
        auto again = sample();
        if (!again) return;
        s = again;
        culling = policy_.update(*s);
        if (!culling) break;
        if (freed == 0 || round >= 16) {
            std::lock_guard g(mu_);
            ++stats_.unsatisfied;
            // The kernel links a closed object's file into the tree only some time after the
            // CLOSE, so a walk soon after finds what the last one could not; ten walk times keep a
            // walk of millions of files under a tenth of a core.
            // Reads fail while writes are refused: then pause for two walk times only.
            next_cull_walk_ = std::chrono::steady_clock::now() +
                              std::max<std::chrono::milliseconds>(std::chrono::milliseconds(100),
                                                                  last_walk_took_ * (nospace ? 2 : 10));
            static log::rate_limit rl(1, std::chrono::seconds(60));
            unsigned n = 0;
            if (rl.allow(n)) {
                lg.warn("still short of space ({} bytes, {} inodes free, {} bytes used) and every cache file left is in use{}",
                        s->blocks_avail * s->block_size, s->files_avail, s->used_bytes, log::suppressed_note(n));
            }
            break;
        }
    }
    if (was_culling && !policy_.culling()) {
        lg.notice("culling stopped: {} bytes and {} inodes free, cache and store take {} bytes",
                  s->blocks_avail * s->block_size, s->files_avail, s->used_bytes);
    }
    std::lock_guard g(mu_);
    stats_.culling = policy_.culling() ? 1 : 0;
}

space_keeper::walked space_keeper::walk(victim_heap* heap) {
    walked w;
    unique_fd cache = open_cache_subdir("cache");
    if (!cache) return w;
    w.ok = true;
    std::uint64_t next_id = 0;
    if (heap) {
        w.store = store_candidates();
        w.held.assign(w.store.size(), false);
        for (std::size_t i = 0; i < w.store.size(); ++i) w.store_by_match[store_match_of_key(w.store[i].key)].push_back(i);
    }
    each_entry(cache.get(), [&](const char* vname, unsigned char) {
        if (vname[0] != 'I') return;
        unique_fd vol = open_dir(cache.get(), vname);
        if (!vol) return;
        const std::string label = cachefiles_volume_domain(vname).value_or(std::string(vname).substr(1));
        volume_usage& use = w.usage[label];
        each_entry(vol.get(), [&](const char* fname, unsigned char) {
            if (fname[0] != '@') return;
            unique_fd fan = open_dir(vol.get(), fname);
            if (!fan) return;
            bool in_fan_cwd = false;
            each_entry(fan.get(), [&](const char* file, unsigned char) {
                struct stat st{};
                if (::fstatat(fan.get(), file, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) return;
                const auto bytes = static_cast<std::uint64_t>(st.st_blocks) * 512;
                w.bytes += bytes;
                ++w.files;
                use.bytes += bytes;
                ++use.files;
                if (!heap) return;
                if (!w.store_by_match.empty() && file[0] == 'D') {
                    if (auto it = w.store_by_match.find(store_match_of_cookie(file + 1)); it != w.store_by_match.end()) {
                        for (std::size_t i : it->second) {
                            if (bytes >= w.store[i].bytes) w.held[i] = true;
                        }
                    }
                }
                cull_candidate c{next_id++, bytes, last_use_of(st), 1, false};
                if (!heap->would_keep(c)) return;
                // Ask the kernel only about a file that would be kept as a victim.
                if (!in_fan_cwd) in_fan_cwd = ::fchdir(fan.get()) == 0;
                if (in_fan_cwd && send_(std::string("inuse ") + file) == -EBUSY) c.in_use = true;
                const auto dropped = heap->offer(c);
                if (dropped != c.id) w.names.emplace(c.id, walked::victim{vname, fname, file});
                if (dropped && *dropped != c.id) w.names.erase(*dropped);
            });
        });
    });
    if (heap) {
        // After the whole walk: only then is it known which store copies a cache file also holds.
        for (std::size_t i = 0; i < w.store.size(); ++i) {
            const store_file& f = w.store[i];
            heap->offer({store_id_bit | i, f.bytes, f.last_use, static_cast<std::uint8_t>(w.held[i] ? 0 : 1), f.in_use});
        }
    }
    return w;
}

void space_keeper::forget_use(const std::string& volume_dir, std::uint64_t bytes) {
    std::lock_guard g(mu_);
    auto it = usage_.find(cachefiles_volume_domain(volume_dir).value_or(volume_dir.substr(1)));
    if (it == usage_.end()) return;
    it->second.bytes -= std::min(it->second.bytes, bytes);
    if (it->second.files) --it->second.files;
}

unique_fd space_keeper::open_cache_subdir(const char* sub) const {
    unique_fd top(::open(opt_.cache_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return top ? open_dir(top.get(), sub) : unique_fd();
}

void space_keeper::cull_one(int dir, const std::string& volume, const std::string& fan, const std::string& file,
                            std::uint64_t bytes, cull_report& tally) {
    const int r = ::fchdir(dir) == 0 ? send_("cull " + file) : -errno;
    if (r == 0) {
        ++tally.culled;
        tally.bytes += bytes;
        forget_use(volume, bytes);
        lg.debug("culled {}/{}/{} ({} bytes)", printable(volume), fan, printable(file), bytes);
    } else if (r == -EBUSY) {
        ++tally.busy;
    } else if (r != -ESTALE && r != -ENOENT) {  // gone meanwhile: nothing to do
        ++tally.errors;
        static log::rate_limit rl;
        unsigned n = 0;
        if (rl.allow(n)) {
            lg.err("cull {}/{}/{}: {}{}", printable(volume), fan, printable(file), std::strerror(-r), log::suppressed_note(n));
        }
    }
}

void space_keeper::count(const cull_report& tally) {
    std::lock_guard g(mu_);
    stats_.culled_objects += tally.culled;
    stats_.culled_bytes += tally.bytes;
    stats_.cull_busy += tally.busy;
    stats_.cull_errors += tally.errors;
    stats_.cache_bytes -= std::min(stats_.cache_bytes, tally.bytes);
}

std::uint64_t space_keeper::cull_victims(const space_need& need, walked& w) {
    const cull_plan plan = plan_cull(need, w.order);
    unique_fd cache = open_cache_subdir("cache");
    if (!cache) return 0;
    // The store's victims first: the plan puts tier 0 (store copies a cache file also holds) ahead
    // of every cache file, and store files of tier 1 are few.
    std::vector<std::string> store_keys;
    for (const auto& v : plan.victims) {
        if (v.id & store_id_bit) store_keys.push_back(w.store[v.id & ~store_id_bit].key);
    }
    const std::uint64_t store_bytes = remove_store_files(std::move(store_keys));
    cull_report tally;
    std::string open_path;
    unique_fd dir;
    for (const auto& v : plan.victims) {
        auto it = (v.id & store_id_bit) ? w.names.end() : w.names.find(v.id);
        if (it == w.names.end()) continue;
        const auto& n = it->second;
        const std::string path = n.volume + "/" + n.fan;
        if (path != open_path) {
            dir = open_dir(cache.get(), path.c_str());
            open_path = path;
        }
        if (dir) cull_one(dir.get(), n.volume, n.fan, n.file, v.bytes, tally);
    }
    if (tally.culled) lg.info("culled {} cache files ({} bytes); {} in use", tally.culled, tally.bytes, tally.busy);
    count(tally);
    return tally.bytes + store_bytes;
}

std::uint64_t space_keeper::remove_store_files(std::vector<std::string> keys) {
    if (keys.empty() || !store_.remove) return 0;
    // The store deletes on the loop (it owns the files' accounting and their path order); the
    // answer comes when the unlinks retired.
    using freed = std::pair<std::uint64_t, std::uint64_t>;
    auto r = on_loop<freed>(
        [remove = store_.remove, keys = std::move(keys)](auto reply) mutable {
            remove(std::move(keys), [reply](std::uint64_t files, std::uint64_t bytes) { reply({files, bytes}); });
        },
        std::chrono::seconds(10));
    if (!r) return 0;
    const auto [files, bytes] = *r;
    if (files) lg.info("deleted {} blob store files ({} bytes) for space", files, bytes);
    std::lock_guard g(mu_);
    stats_.store_culled_files += files;
    stats_.store_culled_bytes += bytes;
    other_bytes_ -= std::min(other_bytes_, bytes);
    return bytes;
}

cull_report space_keeper::cull_on_request(const request& r) {
    cull_report rep;
    if (r.domain.empty() || r.domain.find('/') != std::string::npos || r.domain == "." || r.domain == "..") {
        rep.error = "a domain is a non-empty name without '/'";
        return rep;
    }
    std::optional<std::string> want;
    if (!r.name.empty()) {
        want = cachefiles_file_name(r.name);
        if (!want) {
            rep.error = "blob names with bytes outside '!'..'~' (or with '/') are stored encoded by cachefiles; culling "
                        "them by name is not supported";
            return rep;
        }
    }
    unique_fd cache = open_cache_subdir("cache");
    const std::string vname = cachefiles_volume_dir(r.domain);
    unique_fd vol = cache ? open_dir(cache.get(), vname.c_str()) : unique_fd();
    if (!vol) {
        rep.error = "domain " + printable(r.domain) + " has no cache files (no volume cache/" + printable(vname) + ")";
        return rep;
    }
    bool found = false;
    each_entry(vol.get(), [&](const char* fname, unsigned char) {
        if (fname[0] != '@') return;
        unique_fd fan = open_dir(vol.get(), fname);
        if (!fan) return;
        std::vector<std::pair<std::string, std::uint64_t>> files;
        auto consider = [&](const char* file) {
            struct stat st{};
            if (::fstatat(fan.get(), file, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) return;
            files.emplace_back(file, static_cast<std::uint64_t>(st.st_blocks) * 512);
        };
        if (want) {
            consider(want->c_str());
        } else {
            each_entry(fan.get(), [&](const char* file, unsigned char) { consider(file); });
        }
        for (const auto& [file, bytes] : files) {
            found = true;
            if (r.list_only) {
                const bool plain = file.size() > 1 && file[0] == 'D';
                rep.blobs.push_back({plain ? file.substr(1) : file, !plain, bytes});
                rep.bytes += bytes;
                continue;
            }
            cull_one(fan.get(), vname, fname, file, bytes, rep);
        }
    });
    if (want && !found) rep.error = "blob " + printable(r.name) + " has no cache file in domain " + printable(r.domain);
    if (r.list_only) {
        std::sort(rep.blobs.begin(), rep.blobs.end(), [](const blob_usage& a, const blob_usage& b) { return a.name < b.name; });
        // The domain was just walked: its figures in stats are fresh too.
        std::lock_guard g(mu_);
        usage_[r.domain] = {rep.bytes, rep.blobs.size()};
        return rep;
    }
    lg.info("cull on request (domain {}{}): {} culled ({} bytes), {} in use", printable(r.domain),
            r.name.empty() ? std::string() : ", blob " + printable(r.name), rep.culled, rep.bytes, rep.busy);
    count(rep);
    return rep;
}

void space_keeper::empty_graveyard() {
    unique_fd grave = open_cache_subdir("graveyard");
    if (!grave) return;
    const std::uint64_t n = remove_below(grave.get(), 4);
    if (n == 0) return;
    std::lock_guard g(mu_);
    stats_.graveyard_removed += n;
}

}  // namespace blobd
