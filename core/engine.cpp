#include "core/engine.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

#include <boost/container/small_vector.hpp>

#include "base/assert.hpp"
#include "base/buffer.hpp"
#include "base/file.hpp"
#include "base/log.hpp"
#include "base/text.hpp"

namespace blobd {

namespace {
const log::logger lg{"core"};
// A source that is down fails every OPEN: one line per burst, with a count.
log::rate_limit open_errors;
}

engine::engine(event_loop& loop, fetcher_directory& sources, engine_options opts)
    : loop_(loop), sources_(sources), opts_(std::move(opts)), registry_(opts_.chunk_size) {
    opts_.prefetch_concurrency = std::max(1u, opts_.prefetch_concurrency);
}

void engine::open(request_token req, object_key key, std::string domain, std::string name, unique_fd fd) {
    execute(registry_.open(req, key, std::move(domain), std::move(name), std::move(fd)));
}

void engine::open_sized(request_token req, object_key key, std::string domain, std::string name, unique_fd fd,
                        std::uint64_t size) {
    execute(registry_.open_sized(req, key, std::move(domain), std::move(name), std::move(fd), size));
}

void engine::read(request_token req, object_key key, std::uint64_t off, std::uint64_t len) {
    read_started_.try_emplace(req.id, std::chrono::steady_clock::now());
    execute(registry_.read(req, key, off, len));
}

void engine::close(object_key key) {
    execute(registry_.close(key));
    if (opts_.on_close) opts_.on_close();
}

std::size_t engine::adopt_present(object_key key, int fd) {
    return registry_.mark_present(key, data_ranges(fd));
}

void engine::refetch(std::string_view name) {
    // The cache files of open objects hold the bad bytes: overwrite them (not while stopping:
    // background work no longer starts then).
    if (!stopping_) execute(registry_.refetch(name));
}

void engine::retune(const engine_options& o) {
    opts_.prefetch_concurrency = std::max(1u, o.prefetch_concurrency);
    opts_.prefetch_for = o.prefetch_for;
    opts_.failure_ttl = o.failure_ttl;
    opts_.read_deadline = o.read_deadline;
    pump_fetches();
}

void engine::execute(effects&& effs) {
    BLOBD_ASSERT(port_ != nullptr, "a frontend is attached before the first request");
    bool queued = false;
    // Writes of one batch, as runs of adjacent chunks per object and buffer: a fetch of several
    // chunks lands with one write per object, not one per chunk.
    boost::container::small_vector<write_run, 2> runs;
    for (auto& e : effs) {
        std::visit([this, &queued, &runs](auto& eff) {
            using T = std::decay_t<decltype(eff)>;
            if constexpr (std::is_same_v<T, reply_open>) {
                const bool ok = eff.size_or_errno >= 0;
                const int r = port_->answer_open(eff.req, eff.size_or_errno, std::move(eff.fd_to_close));
                if (r == 0 && ok && eff.opened && eff.size_or_errno > 0 && !stopping_ && opts_.prefetch_for &&
                    opts_.prefetch_for(eff.domain)) {
                    start_prefetch(eff.opened);
                }
            } else if constexpr (std::is_same_v<T, stat_blob>) {
                const std::uint64_t id = next_call_++;
                const deadline due = due_from_now();
                calls_.emplace(id, call{false, {fetch_chunk{eff.blob, eff.domain, eff.name, 0, 0, 0, false}}, due});
                if (due != no_deadline) ++calls_with_deadline_, arm_sweep();
                sources_.for_domain(eff.domain)
                    .stat(blob_ref{eff.domain, eff.name}, due,
                          [this, id, blob = eff.blob, d = eff.domain, n = eff.name](result<std::uint64_t, int> r) {
                              auto it = calls_.find(id);
                              if (it == calls_.end()) {  // answered at its deadline already
                                  ++stats_.late_results;
                                  return;
                              }
                              if (it->second.due != no_deadline) --calls_with_deadline_;
                              calls_.erase(it);
                              if (!r) {
                                  if (unsigned n_ = 0; open_errors.allow(n_))
                                      lg.err({{"DOMAIN", d}, {"BLOB", n}}, "blob {}/{}: not available from any source: {}{}",
                                             printable(d), printable(n), std::strerror(-r.error()), log::suppressed_note(n_));
                              } else {
                                  lg.info({{"DOMAIN", d}, {"BLOB", n}}, "blob {}/{}: {} bytes", printable(d), printable(n), *r);
                              }
                              execute(registry_.on_stat(blob, r));
                          });
            } else if constexpr (std::is_same_v<T, fetch_chunk>) {
                // A reader waits for an on-demand fetch: its deadline runs from now, queued or not.
                if (eff.background) {
                    prefetch_queue_.push_back({std::move(eff), no_deadline});
                } else {
                    const deadline due = due_from_now();
                    fetch_queue_.push_back({std::move(eff), due});
                    if (due != no_deadline) arm_sweep();
                }
                // Started after the whole batch is queued: the chunks of one READ (or one
                // read-ahead) arrive in one batch, and go out as one source call.
                queued = true;
            } else if constexpr (std::is_same_v<T, promote_fetch>) {
                promote(eff);
            } else if constexpr (std::is_same_v<T, write_chunk>) {
                auto run = std::find_if(runs.rbegin(), runs.rend(), [&](const write_run& r) {
                    return r.object == eff.object;
                });
                // Only whole chunks are followed by more: the run's chunks follow from its length.
                if (run != runs.rend() && run->data == eff.data && run->at + run->len == eff.at &&
                    run->len % registry_.chunk_size() == 0 &&
                    run->chunk + run->len / registry_.chunk_size() == eff.chunk) {
                    run->len += eff.len;
                } else {
                    runs.push_back(write_run{std::move(eff.object), eff.chunk, eff.off, std::move(eff.data), eff.at, eff.len});
                }
            } else if constexpr (std::is_same_v<T, release_blob>) {
                sources_.for_domain(eff.domain).release(blob_ref{eff.domain, eff.name});
            } else if constexpr (std::is_same_v<T, complete_read>) {
                if (auto it = read_started_.find(eff.req.id); it != read_started_.end()) {
                    stats_.read_seconds.observe(
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second).count());
                    read_started_.erase(it);
                }
                port_->answer_read(eff.object.get(), eff.req, eff.status);
            }
        }, e);
    }
    registry_.recycle(std::move(effs));
    for (auto& r : runs) queue_write(std::move(r));
    if (queued) pump_fetches();
}

void engine::queue_write(write_run w) {
    bytes_held_ += w.len;
    write_lane& lane = write_lanes_[w.object.get()];
    if (lane.admits(w.len)) {
        stats_.writes_per_file_peak = std::max<std::uint64_t>(stats_.writes_per_file_peak, ++lane.inflight);
        lane.bytes += w.len;
        submit_write(std::move(w));
    } else {
        ++stats_.write_waits;
        lane.queued.push_back(std::move(w));
    }
}

void engine::submit_write(write_run w) {
    // Direct I/O (cachefiles' anon fds write straight into the backing file): the length must be
    // a multiple of the logical block size, so an unaligned blob tail is written as a whole
    // zero-padded block (observed on 6.1: an exact 577-byte tail write fails with EINVAL). Chunk
    // offsets are multiples of the chunk size, so only the length needs rounding. A regular
    // sparse file gets exact lengths: a padded tail would grow it past the blob.
    // The padding of the tail chunk lies past the buffer's size (zeroed): the tail is the last
    // chunk of whatever fetch filled the buffer.
    const std::uint64_t padded =
        opts_.writes.align ? std::min<std::uint64_t>(round_up(w.len, opts_.writes.align), w.data->capacity() - w.at)
                           : w.len;
    const auto len = static_cast<unsigned>(padded);
    const int fd = w.object->fd.get();
    const void* data = w.data->data() + w.at;
    const std::uint64_t off = w.off;
    // The callback holds the object (so its fd) and the buffer until the CQE.
    loop_.write_all(fd, data, len, off, [this, w = std::move(w), len](int res) mutable {
        if (res >= 0 && static_cast<unsigned>(res) != len) res = -EIO;
        if (res < 0) {
            // Below bstop every cold read fails this way: one line per burst, not one per chunk.
            static log::rate_limit rl;
            unsigned n = 0;
            if (rl.allow(n)) {
                lg.err("write of {} bytes at {} into object {} failed: {}{}", len, w.off, w.object->key,
                       std::strerror(-res), log::suppressed_note(n));
            }
            if (res == -ENOBUFS || res == -ENOSPC) ++stats_.nospace_writes;
        }
        if (opts_.on_write) opts_.on_write(res);
        bytes_held_ -= w.len;
        // The next queued write into this file goes out before the registry reacts to this one.
        auto it = write_lanes_.find(w.object.get());
        BLOBD_ASSERT(it != write_lanes_.end(), "a retiring write has its lane");
        write_lane& lane = it->second;
        --lane.inflight;
        lane.bytes -= w.len;
        while (!lane.queued.empty() && lane.admits(lane.queued.front().len)) {
            write_run next = std::move(lane.queued.front());
            lane.queued.pop_front();
            ++lane.inflight;
            lane.bytes += next.len;
            submit_write(std::move(next));
        }
        if (lane.inflight == 0) write_lanes_.erase(it);
        // Each chunk of the run is settled with its own length (all whole chunks but a blob's tail).
        effects out;
        const std::uint64_t cs = registry_.chunk_size();
        for (std::uint64_t at = 0; at < w.len; at += cs) {
            const std::uint64_t clen = std::min(cs, w.len - at);
            append(out, registry_.on_written(w.object, w.chunk + at / cs, res < 0 ? res : static_cast<int>(clen)));
        }
        execute(std::move(out));
        pump_fetches();
    });
}

void engine::append(effects& out, effects&& more) {
    if (out.empty()) {
        out = std::move(more);
    } else {
        std::move(more.begin(), more.end(), std::back_inserter(out));
        registry_.recycle(std::move(more));
    }
}

deadline engine::due_from_now() const {
    if (opts_.read_deadline.count() <= 0) return no_deadline;
    return std::chrono::steady_clock::now() + opts_.read_deadline;
}

void engine::start_fetch(std::deque<queued_fetch>& q) {
    queued_fetch first = std::move(q.front());
    q.pop_front();
    const bool bg = first.f.background;
    const blob_id blob_of_call = first.f.blob;
    std::uint64_t len = first.f.len;
    deadline due = first.due;
    std::vector<fetch_chunk> chunks;
    chunks.push_back(std::move(first.f));
    // Chunks queued right behind it that continue it. Only the front of the queue is looked at:
    // a READ's chunks (and a read-ahead's, a prefetch's) are queued in order and together.
    while (!q.empty() && q.front().f.blob == blob_of_call && q.front().f.chunk == chunks.back().chunk + 1 &&
           q.front().f.off == chunks.back().off + chunks.back().len && len + q.front().f.len <= opts_.merge_bytes) {
        len += q.front().f.len;
        due = std::min(due, q.front().due);
        chunks.push_back(std::move(q.front().f));
        q.pop_front();
    }
    ++fetches_inflight_;
    if (bg) ++prefetches_inflight_;
    bytes_held_ += len;
    const std::uint64_t id = next_call_++;
    blob_ref blob{chunks.front().domain, chunks.front().name};
    const std::uint64_t off = chunks.front().off;
    calls_.emplace(id, call{true, std::move(chunks), due});
    if (due != no_deadline) ++calls_with_deadline_, arm_sweep();
    sources_.for_domain(blob.domain).fetch(blob, off, len, due, [this, id, bg, len](result<buffer_ptr, int> r) {
        // The slot is held until the source answers, also when the engine answered the reader at
        // the deadline: that keeps the bound on buffers held true.
        --fetches_inflight_;
        if (bg) --prefetches_inflight_;
        bytes_held_ -= len;
        auto it = calls_.find(id);
        if (it == calls_.end()) {
            ++stats_.late_results;
        } else {
            call c = std::move(it->second);
            if (c.due != no_deadline) --calls_with_deadline_;
            calls_.erase(it);
            fetched(c.chunks, std::move(r));
        }
        pump_fetches();
    });
}

void engine::fetched(const std::vector<fetch_chunk>& chunks, result<buffer_ptr, int> r) {
    const fetch_chunk& first = chunks.front();
    const std::uint64_t len = chunks.back().off + chunks.back().len - first.off;
    if (r && (*r)->filled != len) {
        // A source that lies about what it read: none of the chunks is trusted.
        lg.err("blob {}/{}: fetcher returned {} bytes for {} bytes at {}", printable(first.domain), printable(first.name),
               (*r)->filled, len, first.off);
        r = unexpected{-EIO};
    }
    effects out;
    for (const fetch_chunk& f : chunks) {
        if (!r && opts_.failure_ttl.count() > 0) {
            registry_.note_failure(f.blob, f.chunk);
            loop_.after(opts_.failure_ttl, [this, alive = std::weak_ptr<int>(alive_), id = f.blob, chunk = f.chunk] {
                if (!alive.expired()) registry_.forget_failure(id, chunk);
            });
        }
        append(out, registry_.on_fetched(f.blob, f.chunk, r, static_cast<std::size_t>(f.off - first.off)));
    }
    // One batch: the chunks' writes into each object go out as one write.
    execute(std::move(out));
}

void engine::arm_sweep() {
    if (sweep_armed_) return;
    sweep_armed_ = true;
    // A quarter of a second of lateness at most, for a source that ignored its deadline; one
    // timer for everything outstanding rather than one per request.
    loop_.after(std::chrono::milliseconds(250), [this, alive = std::weak_ptr<int>(alive_)] {
        if (alive.expired()) return;
        sweep_armed_ = false;
        sweep();
    });
}

void engine::sweep() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<call> expired;
    for (auto it = calls_.begin(); it != calls_.end();) {
        if (it->second.due <= now) {
            expired.push_back(std::move(it->second));
            --calls_with_deadline_;
            it = calls_.erase(it);
        } else {
            ++it;
        }
    }
    // Queued behind other fetches past their deadline (every slot held by a stuck source).
    bool queued_left = false;
    for (auto it = fetch_queue_.begin(); it != fetch_queue_.end();) {
        if (it->due <= now) {
            expired.push_back(call{true, {std::move(it->f)}, it->due});
            it = fetch_queue_.erase(it);
        } else {
            queued_left |= it->due != no_deadline;
            ++it;
        }
    }
    for (auto& c : expired) {
        ++stats_.deadline_misses;
        const fetch_chunk& f = c.chunks.front();
        unsigned suppressed = 0;
        if (deadline_warn_.allow(suppressed)) {
            lg.warn("blob {}/{}: {} not answered within {} ms: failing it{}", printable(f.domain), printable(f.name),
                    c.is_fetch ? fmt::format("{} at {}", c.chunks.size() > 1 ? "chunks" : "chunk", f.off)
                               : std::string("size lookup"),
                    opts_.read_deadline.count(), log::suppressed_note(suppressed));
        }
        if (c.is_fetch) {
            fetched(c.chunks, unexpected{-ETIMEDOUT});
        } else {
            execute(registry_.on_stat(f.blob, unexpected{-ETIMEDOUT}));
        }
    }
    if (calls_with_deadline_ > 0 || queued_left) arm_sweep();
}

void engine::start_prefetch(const object_ptr& obj) {
    // What the cache file already holds (a remount, a restarted daemon) is not fetched again: seek
    // for data in it, as cachefiles itself does to decide on READs.
    execute(registry_.prefetch(obj->key, data_ranges(obj->fd.get())));
}

void engine::pump_fetches() {
    // Buffers held for a write count like fetches in flight: together at most max_inflight_bytes.
    const auto room = [this] { return fetches_inflight_ < max_inflight_fetches && bytes_held_ < max_inflight_bytes; };
    while (room() && !fetch_queue_.empty()) start_fetch(fetch_queue_);
    while (fetch_queue_.empty() && room() && prefetches_inflight_ < opts_.prefetch_concurrency &&
           !prefetch_queue_.empty()) {
        prefetch_queue_.front().due = due_from_now();  // nobody waits yet: its time starts now
        start_fetch(prefetch_queue_);
    }
}

void engine::promote(const promote_fetch& p) {
    // Still queued: move it to the on-demand queue. Already running: nothing to do, the READ
    // joined it and it holds no on-demand slot hostage beyond the prefetch limit.
    auto it = std::find_if(prefetch_queue_.begin(), prefetch_queue_.end(),
                           [&](const queued_fetch& q) { return q.f.blob == p.blob && q.f.chunk == p.chunk; });
    if (it == prefetch_queue_.end()) return;
    queued_fetch q = std::move(*it);
    prefetch_queue_.erase(it);
    q.f.background = false;
    q.due = due_from_now();  // a reader waits for it from now on
    if (q.due != no_deadline) arm_sweep();
    fetch_queue_.push_front(std::move(q));
    pump_fetches();
}

void engine::request_stop(std::chrono::milliseconds grace) {
    if (stopping_) return;
    stopping_ = true;
    // Background fetches that have not started never will: forget them now so the drain only
    // waits for work a reader needs.
    auto queued = std::move(prefetch_queue_);
    prefetch_queue_.clear();
    for (const auto& q : queued) execute(registry_.abandon_fetch(q.f.blob, q.f.chunk));
    loop_.after(grace, [this, alive = std::weak_ptr<int>(alive_)] {
        if (alive.expired() || !registry_.busy()) return;
        lg.warn("in-flight work did not finish in time: failing what is left");
        failed_pending_ = true;
        fetch_queue_.clear();  // their READs are failed below; nobody waits for the data
        prefetch_queue_.clear();
        execute(registry_.fail_all(-EIO));
    });
}

}  // namespace blobd
