#include "core/registry.hpp"

#include <algorithm>
#include <cerrno>

#include "base/assert.hpp"
#include "base/log.hpp"
#include "base/text.hpp"

// GCC 12 reports -Wmaybe-uninitialized inside std::variant's move constructor when effects are
// pushed into the vector in fail_all (a known false positive with variants of non-trivial types;
// every alternative here is fully initialised). Silence it here rather than weaken -Werror builds.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace blobd {

namespace {
const log::logger lg{"registry"};
// Requests for unknown objects come from the kernel: a misbehaving one must not flood the log.
log::rate_limit unknown_object_limit;
}

registry::registry(std::uint64_t chunk_size) : chunk_size_(chunk_size) {
    spare_effects_.reserve(max_spare_effects);  // recycle() then never allocates
}

effects registry::fresh_effects() noexcept {
    if (spare_effects_.empty()) return {};
    effects e = std::move(spare_effects_.back());
    spare_effects_.pop_back();
    return e;
}

void registry::recycle(effects&& done) noexcept {
    done.clear();
    if (done.capacity() != 0 && spare_effects_.size() < max_spare_effects) spare_effects_.push_back(std::move(done));
}

registry::blob_state& registry::blob_of(const object_state& os) {
    // Every object's blob lives while the object does (maybe_forget_blob requires no objects).
    auto it = blobs_.find(os.object->blob);
    BLOBD_ASSERT(it != blobs_.end(), "an open object's blob is registered");
    return it->second;
}

std::pair<std::uint64_t, std::uint64_t> registry::chunk_range(const blob_state& b, std::uint64_t chunk) const {
    const std::uint64_t off = chunk * chunk_size_;
    return {off, std::min(chunk_size_, b.size - off)};
}

registry::blob_state& registry::blob_for(std::string domain, std::string name) {
    auto key = std::make_pair(domain, name);
    if (auto it = blob_index_.find(key); it != blob_index_.end()) return blobs_.find(it->second)->second;
    const blob_id id = next_blob_++;
    blob_index_.emplace(std::move(key), id);
    blob_state b;
    b.id = id;
    b.domain = std::move(domain);
    b.name = std::move(name);
    ++stats_.blobs;
    return blobs_.emplace(id, std::move(b)).first->second;
}

effects registry::drop_stale(object_key key) {
    if (!objects_.count(key)) return fresh_effects();
    // The kernel re-sends OPEN for an object whose anon fd was closed; a stale entry under the
    // same key is gone on the frontend's side, so drop ours before taking the new one. This runs
    // before the new object's blob is looked up: it may forget that very blob.
    lg.notice("open of object {} which is already open: replacing it", key);
    effects out = close(key);
    --stats_.closes;
    return out;
}

object_ptr registry::add_object(blob_state& b, object_key key, unique_fd fd) {
    ++stats_.opens;
    auto obj = std::make_shared<cache_object>();
    obj->key = key;
    obj->fd = std::move(fd);
    obj->blob = b.id;
    objects_[key] = object_state{obj, {}, {}, {}, 0, 0, false};
    b.objects.push_back(key);
    ++stats_.objects_open;
    return obj;
}

effects registry::open(request_token req, object_key key, std::string domain, std::string name, unique_fd fd) {
    effects out = drop_stale(key);
    blob_state& b = blob_for(std::move(domain), std::move(name));
    object_ptr obj = add_object(b, key, std::move(fd));
    if (b.sized) {
        out.push_back(reply_open{req, static_cast<std::int64_t>(b.size), {}, obj, b.domain});
        return out;
    }
    const bool first = b.opens.empty();
    b.opens.push_back(pending_open{req, obj});
    if (first) out.push_back(stat_blob{b.id, b.domain, b.name});
    return out;
}

effects registry::open_sized(request_token req, object_key key, std::string domain, std::string name, unique_fd fd,
                             std::uint64_t size) {
    effects out = drop_stale(key);
    blob_state& b = blob_for(std::move(domain), std::move(name));
    if (b.sized && b.size != size) {
        // Two cache files of one blob must agree on its bytes; one of them is from another blob.
        lg.err("blob {}/{}: opened as {} bytes, but it is {} bytes", printable(b.domain), printable(b.name), size,
               b.size);
        ++stats_.opens;
        ++stats_.open_failures;
        out.push_back(reply_open{req, -ESTALE, std::move(fd), {}, {}});
        maybe_forget_blob(b.id, out);
        return out;
    }
    object_ptr obj = add_object(b, key, std::move(fd));
    if (!b.sized) {
        b.sized = true;
        b.size = size;
        // Opens waiting for a stat of this blob need not wait any longer; the stat's answer, when
        // it comes, finds nothing to do.
        auto opens = std::move(b.opens);
        b.opens.clear();
        for (auto& po : opens) {
            out.push_back(reply_open{po.req, static_cast<std::int64_t>(size), {}, po.object, b.domain});
        }
    }
    out.push_back(reply_open{req, static_cast<std::int64_t>(size), {}, obj, b.domain});
    return out;
}

effects registry::on_stat(blob_id blob, result<std::uint64_t, int> size) {
    effects out = fresh_effects();
    auto it = blobs_.find(blob);
    if (it == blobs_.end()) return out;
    blob_state& b = it->second;
    auto opens = std::move(b.opens);
    b.opens.clear();
    if (b.sized) return out;  // open_sized() answered meanwhile
    if (size) {
        b.sized = true;
        b.size = *size;
        for (auto& po : opens) {
            out.push_back(reply_open{po.req, static_cast<std::int64_t>(b.size), {}, po.object, b.domain});
        }
        return out;
    }
    const int err = size.error() < 0 ? size.error() : -EIO;
    for (auto& po : opens) {
        ++stats_.open_failures;
        // The object never opened on the kernel side: forget it and hand its fd to the reply,
        // which closes it after the copen error is sent.
        auto oit = objects_.find(po.object->key);
        if (oit != objects_.end() && oit->second.object == po.object) {
            objects_.erase(oit);
            --stats_.objects_open;
        }
        std::erase(b.objects, po.object->key);
        out.push_back(reply_open{po.req, err, std::move(po.object->fd), {}, {}});
    }
    maybe_forget_blob(blob, out);
    return out;
}

effects registry::read(request_token req, object_key key, std::uint64_t off, std::uint64_t len) {
    effects out = fresh_effects();
    ++stats_.reads;
    stats_.read_bytes_requested += len;
    auto oit = objects_.find(key);
    if (oit == objects_.end()) {
        // The kernel flushes READs of objects it closed, so this is a protocol violation; it is
        // answered all the same (with no object), since a frontend may have to answer each one.
        ++stats_.reads_failed;
        unsigned suppressed = 0;
        if (unknown_object_limit.allow(suppressed)) {
            lg.warn("read {} for unknown object {}{}", req.id, key, log::suppressed_note(suppressed));
        }
        out.push_back(complete_read{nullptr, req, -EBADF});
        return out;
    }
    object_state& os = oit->second;
    blob_state& b = blob_of(os);
    if (len > max_read_len) {
        // The kernel reads at most a readahead window at a time; a giant range would make us
        // track (and fetch) a whole blob for one request. Serve the front; the reader retries or
        // sees EIO for the rest.
        lg.warn("read {} of {} bytes on object {} clamped to {} bytes", req.id, len, key, max_read_len);
        len = max_read_len;
    }
    const std::uint64_t end = std::min(off + len, b.size);
    if (len == 0 || off >= end) {
        // Nothing inside the blob to write: complete at once.
        out.push_back(complete_read{os.object, req, 0});
        return out;
    }
    pending_read pr{req, {}, 0};
    for (std::uint64_t c = off / chunk_size_; c * chunk_size_ < end; ++c) {
        auto cit = os.chunks.find(c);
        if (cit != os.chunks.end()) {
            if (cit->second != chunk_state::written) {
                pr.waiting.push_back(c);
                ++stats_.fetch_joins;
                if (cit->second == chunk_state::fetching) want_chunk(b, c, key, false, out);
            }
            continue;
        }
        if (b.failed.count(c)) {
            // Its fetch failed a moment ago: fail fast rather than ask the source again for every
            // page the kernel retries.
            ++stats_.failed_fast;
            pr.status = -EIO;
            continue;
        }
        pr.waiting.push_back(c);
        os.chunks.emplace(c, chunk_state::fetching);
        want_chunk(b, c, key, false, out);
    }
    if (pr.waiting.empty()) {
        // Everything was written already (the kernel asked again, e.g. racing readahead), or
        // what was not failed lately.
        if (pr.status < 0) ++stats_.reads_failed;
        out.push_back(complete_read{os.object, req, pr.status});
    } else {
        os.reads.push_back(std::move(pr));
    }
    read_ahead(os, b, off, end, out);
    return out;
}

void registry::read_ahead(object_state& os, blob_state& b, std::uint64_t off, std::uint64_t end, effects& out) {
    // Sequential: this READ starts exactly where the previous one ended (consecutive readahead
    // windows; fanotify asks for every range erofs reads, cached or not), or exactly at the start
    // of the chunk after the previous READ's last one (cachefiles never asks for ranges the cache
    // file holds, so once a whole chunk is written a sequential reader's next READ starts at the
    // next chunk). Without fetching ahead such a reader waits for one source round trip plus one
    // chunk write per chunk. Anything else does not count: in particular a READ somewhere inside
    // the next chunk, which is what a reader of small files scattered over the blob (a container
    // start: 10 % of an image's files) looks like; counting those, as an earlier rule did ("any
    // READ in the next chunk"), made read-ahead 56 % of the bytes fetched at 64 KiB chunks
    // (bench/lazy-start).
    const std::uint64_t last = (end - 1) / chunk_size_;
    const bool sequential = os.has_read && (off == os.next_off || off == os.next_chunk * chunk_size_);
    os.has_read = true;
    os.next_chunk = last + 1;
    os.next_off = end;
    if (!sequential) {
        os.ahead_end = 0;
        os.run_start = off;
        return;
    }
    // Other READs of this object still pending: the kernel is already asking ahead (async
    // readahead, several readers), and those READs fetch what they need; reading ahead as well
    // would only queue and promote background fetches (measured: +10% instructions per READ for
    // a stream of 4 KiB READs with 64 in flight).
    if (os.reads.size() > 1) return;
    // As far ahead as the run has read so far (as the kernel's own readahead ramps up), so that
    // a reader of a file a little longer than one readahead window, who stops at its end, makes
    // at most as many bytes be fetched past it as it read: a fixed window fetched 512 KiB past
    // every such file (bench/lazy-start). Less than a chunk read so far: nothing ahead yet.
    const std::uint64_t n = std::min(std::min(readahead_bytes, end - os.run_start) / chunk_size_, readahead_max_chunks);
    if (n == 0) return;
    // Chunks up to ahead_end were considered by the previous READs of this run: each chunk is
    // looked at once per run, not once per READ.
    const std::uint64_t end_chunk = last + 1 + n;
    for (std::uint64_t c = std::max(last + 1, os.ahead_end); c < end_chunk && c * chunk_size_ < b.size; ++c) {
        if (os.chunks.count(c) || b.failed.count(c)) continue;  // written, in flight, or failing
        os.chunks.emplace(c, chunk_state::fetching);
        ++stats_.readahead_chunks;
        want_chunk(b, c, os.object->key, true, out);
    }
    os.ahead_end = std::max(os.ahead_end, end_chunk);
}

void registry::want_chunk(blob_state& b, std::uint64_t c, object_key key, bool background, effects& out) {
    auto [it, first] = b.fetching.try_emplace(c);
    auto& fs = it->second;
    if (first) {
        fs.background = background;
        auto [coff, clen] = chunk_range(b, c);
        out.push_back(fetch_chunk{b.id, b.domain, b.name, c, coff, clen, background});
    } else {
        if (std::find(fs.objects.begin(), fs.objects.end(), key) == fs.objects.end()) {
            // Another object of the same blob is already fetching this chunk.
            if (!background) ++stats_.fetch_joins;
        }
        if (fs.background && !background) {
            fs.background = false;
            ++stats_.prefetch_promoted;
            out.push_back(promote_fetch{b.id, c});
        }
    }
    if (std::find(fs.objects.begin(), fs.objects.end(), key) == fs.objects.end()) fs.objects.push_back(key);
}

effects registry::prefetch(object_key key, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& present) {
    effects out = fresh_effects();
    auto oit = objects_.find(key);
    if (oit == objects_.end()) return out;
    object_state& os = oit->second;
    blob_state& b = blob_of(os);
    if (!b.sized) return out;
    for (std::uint64_t c = 0; c * chunk_size_ < b.size; ++c) {
        if (os.chunks.count(c) || b.failed.count(c)) continue;
        auto [coff, clen] = chunk_range(b, c);
        const bool cached = std::any_of(present.begin(), present.end(), [&, coff = coff, clen = clen](const auto& r) {
            return r.first <= coff && r.first + r.second >= coff + clen;
        });
        if (cached) {
            os.chunks.emplace(c, chunk_state::written);
            continue;
        }
        os.chunks.emplace(c, chunk_state::fetching);
        ++stats_.prefetch_chunks;
        want_chunk(b, c, key, true, out);
    }
    return out;
}

std::size_t registry::mark_present(object_key key,
                                   const std::vector<std::pair<std::uint64_t, std::uint64_t>>& present) {
    auto oit = objects_.find(key);
    if (oit == objects_.end()) return 0;
    object_state& os = oit->second;
    const blob_state& b = blob_of(os);
    if (!b.sized) return 0;
    std::size_t marked = 0;
    // Ranges come sorted and disjoint (SEEK_DATA); walk the chunks each one covers entirely.
    for (const auto& [roff, rlen] : present) {
        if (roff >= b.size) break;
        const std::uint64_t end = std::min(b.size, roff + rlen);
        for (std::uint64_t c = (roff + chunk_size_ - 1) / chunk_size_; c * chunk_size_ < end; ++c) {
            auto [coff, clen] = chunk_range(b, c);
            if (coff + clen > end) break;
            if (os.chunks.emplace(c, chunk_state::written).second) ++marked;
        }
    }
    return marked;
}

bool registry::complete(object_key key) const {
    auto oit = objects_.find(key);
    if (oit == objects_.end()) return false;
    const object_state& os = oit->second;
    auto bit = blobs_.find(os.object->blob);
    if (bit == blobs_.end() || !bit->second.sized) return false;
    const std::uint64_t n = (bit->second.size + chunk_size_ - 1) / chunk_size_;
    if (os.chunks.size() < n) return false;
    return std::all_of(os.chunks.begin(), os.chunks.end(),
                       [](const auto& kv) { return kv.second == chunk_state::written; });
}

effects registry::refetch(std::string_view name) {
    effects out = fresh_effects();
    for (auto& [id, b] : blobs_) {
        if (b.name != name || !b.sized) continue;
        for (object_key oid : b.objects) {
            auto oit = objects_.find(oid);
            if (oit == objects_.end()) continue;
            auto& os = oit->second;
            for (auto& [c, state] : os.chunks) {
                ++stats_.refetch_chunks;
                if (state != chunk_state::written) {
                    // Its bytes may be the bad ones too (the check can finish before they land).
                    if (std::find(os.stale.begin(), os.stale.end(), c) == os.stale.end()) os.stale.push_back(c);
                    continue;
                }
                // A READ of it meanwhile waits for the new bytes rather than trusting the old.
                state = chunk_state::fetching;
                want_chunk(b, c, oid, true, out);
            }
        }
    }
    return out;
}

void registry::note_failure(blob_id blob, std::uint64_t chunk) {
    if (auto it = blobs_.find(blob); it != blobs_.end()) it->second.failed.insert(chunk);
}

void registry::forget_failure(blob_id blob, std::uint64_t chunk) {
    if (auto it = blobs_.find(blob); it != blobs_.end()) it->second.failed.erase(chunk);
}

effects registry::abandon_fetch(blob_id blob, std::uint64_t chunk) {
    effects out = fresh_effects();
    auto it = blobs_.find(blob);
    if (it == blobs_.end()) return out;
    auto fit = it->second.fetching.find(chunk);
    if (fit == it->second.fetching.end()) return out;
    for (object_key oid : fit->second.objects) {
        auto oit = objects_.find(oid);
        if (oit != objects_.end()) {
            // No READ waits on it (one would have promoted the fetch), so only the state goes.
            auto& os = oit->second;
            auto cit = os.chunks.find(chunk);
            if (cit != os.chunks.end() && cit->second == chunk_state::fetching) os.chunks.erase(cit);
            for (auto& pr : os.reads) {
                if (std::find(pr.waiting.begin(), pr.waiting.end(), chunk) != pr.waiting.end()) {
                    settle(os, chunk, -EIO, out);
                    break;
                }
            }
        }
    }
    it->second.fetching.erase(fit);
    maybe_forget_blob(blob, out);
    return out;
}

effects registry::on_fetched(blob_id blob, std::uint64_t chunk, result<buffer_ptr, int> data, std::size_t at) {
    effects out = fresh_effects();
    auto it = blobs_.find(blob);
    if (it == blobs_.end()) return out;
    blob_state& b = it->second;
    auto fit = b.fetching.find(chunk);
    if (fit == b.fetching.end()) return out;
    auto waiters = std::move(fit->second.objects);
    b.fetching.erase(fit);
    const auto [coff, clen] = chunk_range(b, chunk);
    // Too short (the engine checks that a fetch returned exactly what it asked for).
    if (data && (*data)->filled < at + clen) {
        lg.err("blob {}/{}: fetcher returned {} bytes for chunk {} of {} bytes", printable(b.domain), printable(b.name),
               (*data)->filled - std::min<std::size_t>(at, (*data)->filled), chunk, clen);
        data = unexpected{-EIO};
    }
    if (!data) {
        ++stats_.fetch_errors;
    } else {
        ++stats_.chunks_fetched;
        stats_.bytes_fetched += clen;
        if (auto d = fetched_by_domain_.find(b.domain); d != fetched_by_domain_.end()) {
            d->second += clen;
        } else {
            fetched_by_domain_.emplace(b.domain, clen);
        }
    }
    for (object_key oid : waiters) {
        auto oit = objects_.find(oid);
        if (oit == objects_.end()) continue;  // closed meanwhile
        object_state& os = oit->second;
        if (os.object->blob != blob) continue;  // id reused by another blob's object
        if (data) {
            os.chunks[chunk] = chunk_state::writing;
            out.push_back(write_chunk{os.object, chunk, coff, *data, clen, at});
        } else {
            settle(os, chunk, data.error(), out);
        }
    }
    maybe_forget_blob(blob, out);
    return out;
}

effects registry::on_written(const object_ptr& object, std::uint64_t chunk, int res) {
    effects out = fresh_effects();
    auto oit = objects_.find(object->key);
    if (res < 0) {
        ++stats_.write_errors;
    } else {
        ++stats_.chunks_written;
        stats_.bytes_written += static_cast<std::uint64_t>(res);
    }
    if (oit == objects_.end() || oit->second.object != object) return out;  // closed meanwhile
    auto& os = oit->second;
    if (auto st = std::find(os.stale.begin(), os.stale.end(), chunk); st != os.stale.end()) {
        os.stale.erase(st);
        if (res >= 0) {
            // Written bytes that refetch() distrusts: fetch again; waiting READs keep waiting.
            const bool wanted = std::any_of(os.reads.begin(), os.reads.end(), [&](const pending_read& pr) {
                return std::find(pr.waiting.begin(), pr.waiting.end(), chunk) != pr.waiting.end();
            });
            os.chunks[chunk] = chunk_state::fetching;
            want_chunk(blob_of(os), chunk, object->key, !wanted, out);
            return out;
        }
    }
    settle(os, chunk, res < 0 ? res : 0, out);
    return out;
}

void registry::settle(object_state& os, std::uint64_t chunk, int status, effects& out) {
    if (status < 0) {
        // Forget the chunk so that a later READ fetches it again (the source may recover).
        os.chunks.erase(chunk);
        std::erase(os.stale, chunk);
    } else {
        os.chunks[chunk] = chunk_state::written;
    }
    // Every pending READ of the object is looked at (a 64-deep queue of 4 KiB READs: 64 short
    // scans of inline chunk lists). A completed one is replaced by the last, not erased in place:
    // erasing would move every READ behind it, inline lists included (measured: more than the
    // scan itself). Pending READs are therefore in no particular order.
    auto& reads = os.reads;
    for (std::size_t i = 0; i < reads.size();) {
        pending_read& pr = reads[i];
        auto w = std::find(pr.waiting.begin(), pr.waiting.end(), chunk);
        if (w == pr.waiting.end()) {
            ++i;
            continue;
        }
        pr.waiting.erase(w);
        if (status < 0 && pr.status == 0) pr.status = status;
        if (!pr.waiting.empty()) {
            ++i;
            continue;
        }
        if (pr.status < 0) ++stats_.reads_failed;
        out.push_back(complete_read{os.object, pr.req, pr.status});
        if (i + 1 != reads.size()) pr = std::move(reads.back());
        reads.pop_back();  // and look at position i again: it holds the moved READ now
    }
}

effects registry::close(object_key key) {
    effects out = fresh_effects();
    auto oit = objects_.find(key);
    if (oit == objects_.end()) {
        unsigned suppressed = 0;
        if (unknown_object_limit.allow(suppressed)) {
            lg.warn("close of unknown object {}{}", key, log::suppressed_note(suppressed));
        }
        return out;
    }
    ++stats_.closes;
    object_state& os = oit->second;
    // The kernel flushed this object's requests before sending CLOSE, but we promised one
    // completion per READ: send them (the ioctl then fails harmlessly with EINVAL).
    for (auto& pr : os.reads) {
        ++stats_.reads_failed;
        out.push_back(complete_read{os.object, pr.req, -EIO});
    }
    const blob_id blob = os.object->blob;
    auto bit = blobs_.find(blob);
    if (bit != blobs_.end()) {
        blob_state& b = bit->second;
        std::erase(b.objects, key);
        for (auto& po : b.opens) {
            if (po.object == os.object) {
                // CLOSE before we answered its OPEN cannot come from the kernel, but answer anyway.
                out.push_back(reply_open{po.req, -EIO, {}, {}, {}});
            }
        }
        std::erase_if(b.opens, [&](const pending_open& po) { return po.object == os.object; });
    }
    objects_.erase(oit);
    --stats_.objects_open;
    maybe_forget_blob(blob, out);
    return out;
}

std::vector<blob_info> registry::blobs() const {
    std::vector<blob_info> out;
    out.reserve(blob_index_.size());
    for (const auto& [key, id] : blob_index_) {  // blob_index_ is ordered by (domain, name)
        auto it = blobs_.find(id);
        if (it == blobs_.end()) continue;
        const blob_state& b = it->second;
        blob_info bi{b.domain, b.name, b.sized, b.size, b.objects.size(), 0, b.fetching.size()};
        if (b.sized) {
            for (object_key k : b.objects) {
                auto oit = objects_.find(k);
                if (oit == objects_.end()) continue;
                std::uint64_t bytes = 0;
                for (const auto& [c, st] : oit->second.chunks) {
                    if (st == chunk_state::written) bytes += chunk_range(b, c).second;
                }
                bi.cached_bytes = std::max(bi.cached_bytes, bytes);
            }
        }
        out.push_back(std::move(bi));
    }
    return out;
}

void registry::maybe_forget_blob(blob_id id, effects& out) {
    auto it = blobs_.find(id);
    if (it == blobs_.end()) return;
    const blob_state& b = it->second;
    if (!b.objects.empty() || !b.opens.empty() || !b.fetching.empty()) return;
    out.push_back(release_blob{b.domain, b.name});
    blob_index_.erase({b.domain, b.name});
    blobs_.erase(it);
    --stats_.blobs;
}

effects registry::fail_all(int neg_errno) {
    effects out = fresh_effects();
    for (auto& [id, b] : blobs_) {
        for (auto& po : b.opens) {
            ++stats_.open_failures;
            out.push_back(reply_open{po.req, neg_errno, {}, {}, {}});
        }
        b.opens.clear();
        b.fetching.clear();
    }
    for (auto& [oid, os] : objects_) {
        for (auto& pr : os.reads) {
            ++stats_.reads_failed;
            out.push_back(complete_read{os.object, pr.req, neg_errno});
        }
        os.reads.clear();
        std::erase_if(os.chunks, [](const auto& kv) { return kv.second != chunk_state::written; });
    }
    return out;
}

bool registry::busy() const noexcept {
    for (const auto& [id, b] : blobs_) {
        if (!b.opens.empty() || !b.fetching.empty()) return true;
    }
    for (const auto& [oid, os] : objects_) {
        if (!os.reads.empty()) return true;
        for (const auto& [c, st] : os.chunks) {
            if (st != chunk_state::written) return true;
        }
    }
    return false;
}

}  // namespace blobd
