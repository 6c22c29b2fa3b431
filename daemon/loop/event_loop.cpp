#include "daemon/loop/event_loop.hpp"

#include <poll.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <system_error>

#include "daemon/base/log.hpp"

namespace blobd {

namespace {
const log::logger lg{"loop"};
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
        if (ret == 0) {
            setup_flags_ = q.flags;
            break;
        }
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
    if (!live_.empty()) {
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data(sqe, nullptr);
        io_uring_submit(&ring_);
    }
    for (int timeouts = 0; timeouts < 100 && !live_.empty();) {
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec ts{0, 50 * 1000 * 1000};
        if (io_uring_wait_cqe_timeout(&ring_, &cqe, &ts) < 0 || !cqe) {
            ++timeouts;
            continue;
        }
        auto* o = static_cast<op*>(io_uring_cqe_get_data(cqe));
        io_uring_cqe_seen(&ring_, cqe);
        if (o && live_.erase(o)) delete o;
    }
    if (!live_.empty()) lg.warn("{} io_uring operations did not retire at exit", live_.size());
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

event_loop::op* event_loop::make_op(completion done, bool counted) {
    if (counted) ++inflight_io_;
    auto* o = new op{std::move(done), counted};
    live_.insert(o);
    return o;
}

void event_loop::read(int fd, void* buf, unsigned len, std::uint64_t off, completion done) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, fd, buf, len, off);
    io_uring_sqe_set_data(sqe, make_op(std::move(done), true));
}

void event_loop::write(int fd, const void* buf, unsigned len, std::uint64_t off, completion done) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_write(sqe, fd, buf, len, off);
    io_uring_sqe_set_data(sqe, make_op(std::move(done), true));
}

namespace {
// Continues a transfer after short results, as liburing's io_uring-cp does ("adjust and requeue").
struct transfer : std::enable_shared_from_this<transfer> {
    event_loop* loop;
    bool is_write;
    int fd;
    std::byte* buf;
    unsigned len;
    std::uint64_t off;
    unsigned done_bytes = 0;
    unsigned retries = 0;
    event_loop::completion done;

    transfer(event_loop* l, bool w, int f, std::byte* b, unsigned n, std::uint64_t o, event_loop::completion d)
        : loop(l), is_write(w), fd(f), buf(b), len(n), off(o), done(std::move(d)) {}

    void step() {
        auto self = shared_from_this();
        auto cb = [self](int res) { self->on(res); };
        if (is_write) {
            loop->write(fd, buf + done_bytes, len - done_bytes, off + done_bytes, std::move(cb));
        } else {
            loop->read(fd, buf + done_bytes, len - done_bytes, off + done_bytes, std::move(cb));
        }
    }
    void on(int res) {
        if (res == -EAGAIN || res == -EINTR) {
            // Bounded: a file that keeps saying EAGAIN must not spin the loop forever.
            if (++retries <= 1000) return step();
        }
        if (res < 0) return done(res);
        if (res == 0) {
            // End of file on read; a zero-byte write would loop forever: report what we have.
            return done(is_write && done_bytes == 0 ? -EIO : static_cast<int>(done_bytes));
        }
        done_bytes += static_cast<unsigned>(res);
        if (done_bytes >= len) return done(static_cast<int>(done_bytes));
        step();
    }
};
}  // namespace

void event_loop::read_all(int fd, void* buf, unsigned len, std::uint64_t off, completion done) {
    std::make_shared<transfer>(this, false, fd, static_cast<std::byte*>(buf), len, off, std::move(done))->step();
}

void event_loop::write_all(int fd, const void* buf, unsigned len, std::uint64_t off, completion done) {
    std::make_shared<transfer>(this, true, fd, static_cast<std::byte*>(const_cast<void*>(buf)), len, off, std::move(done))
        ->step();
}

void event_loop::poll(int fd, unsigned events, completion done) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data(sqe, make_op(std::move(done), false));
}

void event_loop::after(std::chrono::milliseconds delay, std::function<void()> fn) {
    op* o = make_op([fn = std::move(fn)](int) { fn(); }, false);
    o->ts.tv_sec = delay.count() / 1000;
    o->ts.tv_nsec = (delay.count() % 1000) * 1000000;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_timeout(sqe, &o->ts, 0, 0);
    io_uring_sqe_set_data(sqe, o);
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
        for (auto& fn : batch) fn();
        arm_wakeup();
    });
}

void event_loop::run_deferred() {
    // Deferred work may defer more: run in rounds, each over a stable batch.
    while (!deferred_.empty()) {
        auto batch = std::move(deferred_);
        deferred_.clear();
        for (auto& fn : batch) fn();
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
    std::vector<std::pair<op*, int>> ready;
    unsigned head;
    io_uring_for_each_cqe(&ring_, head, cqe) {
        ready.emplace_back(static_cast<op*>(io_uring_cqe_get_data(cqe)), cqe->res);
        ++handled;
    }
    io_uring_cq_advance(&ring_, handled);
    for (auto [o, res] : ready) {
        if (!o || !live_.erase(o)) continue;
        if (o->counted) --inflight_io_;
        auto done = std::move(o->done);
        delete o;
        done(res);
    }
    run_deferred();
    return handled;
}

}  // namespace blobd
