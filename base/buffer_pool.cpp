// The fetch buffer pool behind make_fetch_buffer (base/buffer.hpp).
//
// Why: every chunk fetch needs a chunk-sized aligned buffer (1 MiB by default) that lives until
// the chunk is written into every cache file that wants it. Freshly allocated, each page of it
// faults (and is zeroed by the kernel) when the source's bytes land: measured 750-820 us of the
// loop thread per 1 MiB fetch against ~280 us with reused memory (docs/benchmarks.md). main()'s
// mallopt settings make glibc keep freed memory mapped, but only in the daemon binary and only
// as long as the heap does not fragment; the pool makes reuse explicit.
//
// Buffers are matched by capacity (chunk size rounded to blocks, so nearly every fetch is the
// same size; blob tails are smaller). At most fetch_buffer_pool_bytes stay idle, the oldest idle
// buffer going first. Buffers are taken on the loop thread or the network thread and released
// wherever their last reference drops, so the pool takes a mutex (uncontended in practice: a few
// tens of nanoseconds against the microseconds a fetch costs).
#include <atomic>
#include <mutex>
#include <vector>

#include "base/buffer.hpp"
#include "base/log.hpp"

namespace blobd {

namespace {

class buffer_pool {
public:
    std::unique_ptr<aligned_buffer> take(std::size_t size) {
        const std::size_t cap = round_up(size ? size : 1, io_alignment);
        {
            std::lock_guard lock(mu_);
            // Newest first: the most recently used memory is the likeliest to be in cache.
            for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
                if ((*it)->capacity() != cap) continue;
                auto b = std::move(*it);
                idle_.erase(std::next(it).base());
                idle_bytes_ -= cap;
                b->reset(size);
                return b;
            }
        }
        return std::make_unique<aligned_buffer>(size);
    }

    void give_back(aligned_buffer* raw) noexcept {
        std::unique_ptr<aligned_buffer> b(raw);
        const std::size_t cap = b->capacity();
        if (cap > fetch_buffer_pool_bytes) return;  // freed here
        std::lock_guard lock(mu_);
        while (idle_bytes_ + cap > fetch_buffer_pool_bytes && !idle_.empty()) {
            idle_bytes_ -= idle_.front()->capacity();
            idle_.erase(idle_.begin());  // frees the oldest
        }
        try {
            idle_.push_back(std::move(b));
            idle_bytes_ += cap;
        } catch (const std::bad_alloc&) {
            // No room to remember it: b still owns it (push_back is all-or-nothing) and frees it.
        }
    }

    std::size_t idle_bytes() {
        std::lock_guard lock(mu_);
        return idle_bytes_;
    }

private:
    std::mutex mu_;
    std::vector<std::unique_ptr<aligned_buffer>> idle_;  // oldest first; at most ~64 entries
    std::size_t idle_bytes_ = 0;
};

// Never destroyed: buffers may be released by static destructors or late threads at exit.
buffer_pool& pool() {
    static auto* p = new buffer_pool;
    return *p;
}

}  // namespace

std::shared_ptr<aligned_buffer> make_fetch_buffer(std::size_t size) {
    // If the shared_ptr cannot allocate its control block it hands raw to the deleter (back to
    // the pool) and throws bad_alloc.
    aligned_buffer* raw = pool().take(size).release();
    return std::shared_ptr<aligned_buffer>(raw, [](aligned_buffer* p) { pool().give_back(p); });
}

namespace {
const log::logger lg{"buffers"};
std::atomic<std::uint64_t> g_failures{0};
log::rate_limit g_failure_limit;
}  // namespace

std::shared_ptr<aligned_buffer> try_make_fetch_buffer(std::size_t size) noexcept {
    try {
        return make_fetch_buffer(size);
    } catch (const std::bad_alloc&) {
        // One chunk-sized allocation failing is a fetch failing (-ENOMEM), not the daemon.
        ++g_failures;
        if (unsigned suppressed = 0; g_failure_limit.allow(suppressed)) {
            lg.err("cannot allocate a {}-byte fetch buffer{}", size,
                   log::suppressed_note(suppressed));
        }
        return nullptr;
    }
}

std::uint64_t fetch_buffer_failures() noexcept { return g_failures.load(std::memory_order_relaxed); }

std::size_t fetch_buffer_pool_idle_bytes() { return pool().idle_bytes(); }

}  // namespace blobd
