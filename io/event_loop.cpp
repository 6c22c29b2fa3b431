#include "io/event_loop.hpp"

#include <poll.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <system_error>

#include "base/log.hpp"

namespace blobd {

namespace {
const log::logger lg{"loop"};
log::rate_limit callback_error_limit;
}

void event_loop::caught(const char* what) noexcept {
    // Where a callback threw, it gave up on whatever it was doing (an answer may be missing);
    // ending the loop would lose every other request as well.
    ++callback_exceptions_;
    if (unsigned suppressed = 0; callback_error_limit.allow(suppressed)) {
        try {
            lg.err("a loop callback threw: {}{}", what,
                   log::suppressed_note(suppressed));
        } catch (...) {
        }
    }
}

event_loop::event_loop(unsigned entries) {
    io_uring_params p{};
    // A CQ four times the SQ: completions for device polls, writes and fetches may all land in one
    // iteration, and an overflowing CQ costs a slow path in the kernel.
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 4;
    // SINGLE_ISSUER + DEFER_TASKRUN (6.1+): only this thread submits, and completions run when we
    // wait for them instead of interrupting us. Older kernels reject them: fall back.
    const unsigned wanted[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_SINGLE_ISSUER, 0};
    int ret = -EINVAL;
    for (unsigned extra : wanted) {
        io_uring_params q = p;
        q.flags |= extra;
        ret = io_uring_queue_init_params(entries, &ring_, &q);
        if (ret != -EINVAL) break;
    }
    if (ret < 0) throw std::system_error(-ret, std::generic_category(), "io_uring_queue_init");
    wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_fd_) {
        int e = errno;
        io_uring_queue_exit(&ring_);
        throw std::system_error(e, std::generic_category(), "eventfd");
    }
    arm_wakeup();
}

event_loop::~event_loop() {
    // Callers drain I/O before destroying the loop; what is left are polls and timers. Cancel
    // them and wait for their CQEs: an op's callback may own a buffer the kernel still writes
    // into, so it is freed only after its CQE, never before.
    if (live_ops_ > 0) {
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data64(sqe, 0);
        io_uring_submit(&ring_);
    }
    for (int timeouts = 0; timeouts < 100 && live_ops_ > 0;) {
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec ts{0, 50 * 1000 * 1000};
        if (io_uring_wait_cqe_timeout(&ring_, &cqe, &ts) < 0 || !cqe) {
            ++timeouts;
            continue;
        }
        op* o = find_op(io_uring_cqe_get_data64(cqe));
        io_uring_cqe_seen(&ring_, cqe);
        if (o) free_op(o);
    }
    if (live_ops_ > 0) {
        lg.warn("{} io_uring operations did not retire at exit", live_ops_);
        // The kernel may still use what their callbacks own: leak the records rather than free it.
        for (auto& slab : slabs_) static_cast<void>(slab.release());
    }
    io_uring_queue_exit(&ring_);
}

io_uring_sqe* event_loop::get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (!sqe) {
        // SQ full: hand what we have to the kernel and try again.
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
}

event_loop::op* event_loop::make_op(completion done, bool counted, op_kind kind) {
    if (!free_ops_) {
        // A new slab, threaded onto the free list in index order.
        auto slab = std::make_unique<op[]>(slab_size);
        const auto base = static_cast<std::uint32_t>(slabs_.size() * slab_size);
        for (std::size_t i = slab_size; i-- > 0;) {
            slab[i].index = base + static_cast<std::uint32_t>(i);
            slab[i].next_free = free_ops_;
            free_ops_ = &slab[i];
        }
        slabs_.push_back(std::move(slab));
    }
    op* o = free_ops_;
    free_ops_ = o->next_free;
    o->next_free = nullptr;
    o->done = std::move(done);
    o->kind = kind;
    o->counted = counted;
    o->live = true;
    ++live_ops_;
    if (counted) ++inflight_io_;
    return o;
}

void event_loop::free_op(op* o) noexcept {
    o->done = nullptr;  // releases what the callback captured
    o->live = false;
    ++o->generation;
    o->next_free = free_ops_;
    free_ops_ = o;
    --live_ops_;
}

std::uint64_t event_loop::user_data(const op* o) noexcept {
    return static_cast<std::uint64_t>(o->generation) << 32 | (static_cast<std::uint64_t>(o->index) + 1);
}

event_loop::op* event_loop::find_op(std::uint64_t data) noexcept {
    const std::uint64_t slot = data & 0xffffffffu;
    if (slot == 0 || slot > slabs_.size() * slab_size) return nullptr;  // cancel requests, unknown tags
    op& o = slabs_[(slot - 1) / slab_size][(slot - 1) % slab_size];
    return o.live && o.generation == static_cast<std::uint32_t>(data >> 32) ? &o : nullptr;
}

void event_loop::read(int fd, void* buf, unsigned len, std::uint64_t off, completion done) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, fd, buf, len, off);
    io_uring_sqe_set_data64(sqe, user_data(make_op(std::move(done), true)));
}

void event_loop::write(int fd, const void* buf, unsigned len, std::uint64_t off, completion done) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_write(sqe, fd, buf, len, off);
    io_uring_sqe_set_data64(sqe, user_data(make_op(std::move(done), true)));
}

// read_all/write_all continue after short results in the same record, as liburing's io-uring-cp
// does ("adjust and requeue").
void event_loop::submit_transfer(op* o) {
    io_uring_sqe* sqe = get_sqe();
    if (o->kind == op_kind::write_all) {
        io_uring_prep_write(sqe, o->fd, o->buf + o->moved, o->len - o->moved, o->off + o->moved);
    } else {
        io_uring_prep_read(sqe, o->fd, o->buf + o->moved, o->len - o->moved, o->off + o->moved);
    }
    io_uring_sqe_set_data64(sqe, user_data(o));
}

bool event_loop::continue_transfer(op* o, int& res) {
    if (res == -EAGAIN || res == -EINTR) {
        // Bounded: a file that keeps saying EAGAIN must not spin the loop forever.
        if (++o->retries <= 1000) {
            submit_transfer(o);
            return true;
        }
    }
    if (res < 0) return false;
    if (res == 0) {
        // End of file on read; a zero-byte write would loop forever: report what we have.
        res = o->kind == op_kind::write_all && o->moved == 0 ? -EIO : static_cast<int>(o->moved);
        return false;
    }
    o->moved += static_cast<unsigned>(res);
    if (o->moved >= o->len) {
        res = static_cast<int>(o->moved);
        return false;
    }
    submit_transfer(o);
    return true;
}

void event_loop::read_all(int fd, void* buf, unsigned len, std::uint64_t off, completion done) {
    op* o = make_op(std::move(done), true, op_kind::read_all);
    o->fd = fd;
    o->buf = static_cast<std::byte*>(buf);
    o->len = len;
    o->off = off;
    o->moved = o->retries = 0;
    submit_transfer(o);
}

void event_loop::write_all(int fd, const void* buf, unsigned len, std::uint64_t off, completion done) {
    op* o = make_op(std::move(done), true, op_kind::write_all);
    o->fd = fd;
    o->buf = static_cast<std::byte*>(const_cast<void*>(buf));
    o->len = len;
    o->off = off;
    o->moved = o->retries = 0;
    submit_transfer(o);
}

void event_loop::poll(int fd, unsigned events, completion done) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, user_data(make_op(std::move(done), false)));
}

void event_loop::after(std::chrono::milliseconds delay, std::function<void()> fn) {
    op* o = make_op([fn = std::move(fn)](int) { fn(); }, false);
    o->ts.tv_sec = delay.count() / 1000;
    o->ts.tv_nsec = (delay.count() % 1000) * 1000000;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_timeout(sqe, &o->ts, 0, 0);
    io_uring_sqe_set_data64(sqe, user_data(o));
}

void event_loop::defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }

void event_loop::post(std::function<void()> fn) {
    {
        std::lock_guard lk(posted_mu_);
        posted_.push_back(std::move(fn));
    }
    std::uint64_t one = 1;
    // EAGAIN means the counter is saturated: a wake-up is pending anyway.
    [[maybe_unused]] auto n = ::write(wake_fd_.get(), &one, sizeof one);
}

void event_loop::arm_wakeup() {
    poll(wake_fd_.get(), POLLIN, [this](int) {
        [[maybe_unused]] auto n = ::read(wake_fd_.get(), &wake_value_, sizeof wake_value_);
        std::vector<std::function<void()>> batch;
        {
            std::lock_guard lk(posted_mu_);
            batch.swap(posted_);
        }
        for (auto& fn : batch) invoke(fn);
        arm_wakeup();
    });
}

void event_loop::run_deferred() {
    // Deferred work may defer more: run in rounds, each over a stable batch. The two vectors
    // trade places so that neither gives its capacity back.
    while (!deferred_.empty()) {
        std::vector<std::function<void()>> batch;
        batch.swap(deferred_spare_);
        batch.swap(deferred_);
        for (auto& fn : batch) invoke(fn);
        batch.clear();
        if (deferred_spare_.capacity() < batch.capacity()) deferred_spare_.swap(batch);
    }
}

unsigned event_loop::run_once(std::chrono::milliseconds timeout) {
    run_deferred();
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{};
    ts.tv_sec = timeout.count() / 1000;
    ts.tv_nsec = (timeout.count() % 1000) * 1000000;
    int ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY) {
        lg.err("io_uring wait failed: {}", std::system_category().message(-ret));
    }
    unsigned handled = 0;
    // Reap everything that is ready, then run callbacks: a callback may submit (and with
    // DEFER_TASKRUN even reap), so never call one while iterating the CQ ring.
    std::vector<std::pair<std::uint64_t, int>> ready;
    ready.swap(ready_);  // a callback that calls run_once gets an empty vector of its own
    unsigned head;
    io_uring_for_each_cqe(&ring_, head, cqe) {
        ready.emplace_back(io_uring_cqe_get_data64(cqe), cqe->res);
        ++handled;
    }
    io_uring_cq_advance(&ring_, handled);
    for (auto [data, res] : ready) {
        op* o = find_op(data);
        if (!o) continue;
        if (o->kind != op_kind::plain && continue_transfer(o, res)) continue;
        if (o->counted) --inflight_io_;
        auto done = std::move(o->done);
        free_op(o);
        invoke(done, res);
    }
    ready.clear();
    if (ready_.capacity() < ready.capacity()) ready_.swap(ready);
    run_deferred();
    return handled;
}

}  // namespace blobd
