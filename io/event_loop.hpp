// event_loop: the io_uring reactor every piece of the daemon runs on.
//
// One ring, one thread. Submissions carry a completion callback; the loop calls it with the CQE's
// result when the operation retires, never inline from the submitting call. Other threads hand work
// to the loop with post(), which writes an eventfd the ring polls (as ublksrv does).
//
// Ownership: the loop owns the ring and every in-flight operation record. A callback owns whatever
// it captured (buffers, shared_ptr<cache_object>): it keeps them alive until the operation retires,
// so a buffer or an fd is never released while the kernel may still use it.
//
// Errors: a callback (completion, timer, deferred or posted function) that throws does not end the
// loop: the exception is caught where the loop called it, counted (callback_exceptions()) and
// logged, rate-limited, and the loop goes on with the next one. That is a safety net for bugs,
// not an error channel: callbacks report failures through their results.
//
// Threading: everything is loop-thread only except post(), which any thread may call.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <liburing.h>

#include "base/unique_fd.hpp"

namespace blobd {

class event_loop {
public:
    using completion = std::function<void(int res)>;

    /// Creates the ring (probing setup flags, falling back when the kernel rejects them).
    /// Throws std::system_error when io_uring is unavailable.
    explicit event_loop(unsigned entries = 512);
    ~event_loop();
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;

    /// Asynchronous pread/pwrite through the ring. `res` is bytes transferred or -errno; short
    /// transfers are the caller's to continue (see write_all/read_all).
    void read(int fd, void* buf, unsigned len, std::uint64_t off, completion done);
    void write(int fd, const void* buf, unsigned len, std::uint64_t off, completion done);
    /// Reads/writes the whole range, continuing after short transfers and retrying EAGAIN/EINTR.
    /// res = len on success, a short count at end of file (read), or -errno.
    void read_all(int fd, void* buf, unsigned len, std::uint64_t off, completion done);
    void write_all(int fd, const void* buf, unsigned len, std::uint64_t off, completion done);
    /// One-shot poll; res = revents or -errno.
    void poll(int fd, unsigned events, completion done);
    /// Runs `fn` after `delay` (a ring timeout).
    void after(std::chrono::milliseconds delay, std::function<void()> fn);
    /// Runs `fn` on the loop at the next iteration (loop thread only).
    void defer(std::function<void()> fn);
    /// Thread-safe: runs `fn` on the loop thread soon.
    void post(std::function<void()> fn);

    /// Submits pending SQEs, waits up to `timeout` for at least one event and handles all that are
    /// ready. Returns the number of completions handled.
    unsigned run_once(std::chrono::milliseconds timeout);
    /// Operations submitted and not yet retired (timers and the internal wake-up poll excluded).
    std::size_t inflight() const noexcept { return inflight_io_; }
    /// Callbacks that threw (and were caught) since the loop started.
    std::uint64_t callback_exceptions() const noexcept { return callback_exceptions_; }

private:
    // One record per operation the kernel may still complete. Records live in slabs and are
    // recycled through a free list, so submitting costs no allocation beyond the caller's callback.
    // read_all/write_all continue in the same record after a short transfer.
    enum class op_kind : std::uint8_t { plain, read_all, write_all };
    struct op {
        completion done;
        __kernel_timespec ts{};        // timeouts: must live until the CQE
        std::byte* buf = nullptr;      // read_all/write_all: the whole range and the progress made
        std::uint64_t off = 0;
        unsigned len = 0, moved = 0, retries = 0;
        int fd = -1;
        std::uint32_t index = 0;       // position in the slabs; user_data = generation << 32 | index + 1
        std::uint32_t generation = 0;  // bumped on every reuse, so a stale user_data matches nothing
        op_kind kind = op_kind::plain;
        bool counted = false;          // counts towards inflight()
        bool live = false;
        op* next_free = nullptr;
    };
    static constexpr std::size_t slab_size = 256;

    io_uring_sqe* get_sqe();
    op* make_op(completion done, bool counted, op_kind kind = op_kind::plain);
    void free_op(op* o) noexcept;
    static std::uint64_t user_data(const op* o) noexcept;
    op* find_op(std::uint64_t user_data) noexcept;
    void submit_transfer(op* o);
    /// A transfer's CQE: true if it was submitted again (short transfer, EAGAIN), else `res`
    /// becomes the result for the caller's callback.
    bool continue_transfer(op* o, int& res);
    void arm_wakeup();
    /// Calls `fn(args...)`; an exception from it is counted and logged, never passed on.
    template <class F, class... A>
    void invoke(F& fn, A... args) noexcept;
    void caught(const char* what) noexcept;
    void run_deferred();

    io_uring ring_{};
    std::size_t inflight_io_ = 0;
    std::uint64_t callback_exceptions_ = 0;
    std::vector<std::unique_ptr<op[]>> slabs_;
    op* free_ops_ = nullptr;
    std::size_t live_ops_ = 0;                           // every op the kernel may still complete
    std::vector<std::pair<std::uint64_t, int>> ready_;   // reaped CQEs (capacity reused)
    unique_fd wake_fd_;
    std::uint64_t wake_value_ = 0;
    std::vector<std::function<void()>> deferred_, deferred_spare_;
    std::mutex posted_mu_;
    std::vector<std::function<void()>> posted_;
};

template <class F, class... A>
void event_loop::invoke(F& fn, A... args) noexcept {
    try {
        fn(args...);
    } catch (const std::exception& e) {
        caught(e.what());
    } catch (...) {
        caught("not a std::exception");
    }
}

}  // namespace blobd
