#include "io/worker_pool.hpp"

#include <exception>
#include <new>
#include <string>

#include "base/log.hpp"
#include "io/event_loop.hpp"

namespace blobd {

namespace {
const log::logger lg{"workers"};
log::rate_limit job_error_limit;
}  // namespace

worker_pool::worker_pool(event_loop& loop, unsigned threads, std::size_t max_queued)
    : loop_(loop), max_queued_(max_queued) {
    const unsigned n = threads ? threads : 1;
    threads_.reserve(n);
    try {
        for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { run_worker(); });
    } catch (...) {
        // The threads already running must not outlive a pool that never finished constructing.
        {
            std::lock_guard lk(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
        throw;
    }
}

worker_pool::~worker_pool() {
    std::deque<task> dropped;
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
        dropped.swap(queue_);
    }
    // From here on no done callback runs, also the ones already posted: the owner is going away.
    shared_->alive = false;
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    // `dropped` goes last, on this thread: what the unrun jobs captured is released here.
}

bool worker_pool::stopping() const noexcept {
    std::lock_guard lk(mu_);
    return stopping_;
}

std::size_t worker_pool::queued() const {
    std::lock_guard lk(mu_);
    return queue_.size();
}

std::uint64_t worker_pool::job_exceptions() const noexcept { return shared_->exceptions.load(); }

void worker_pool::enqueue(std::function<void()> job, std::function<void(int)> done) {
    {
        std::lock_guard lk(mu_);
        if (stopping_) return;  // a job submitting a follow-up during shutdown: nobody waits for it
        if (queue_.size() < max_queued_) {
            queue_.push_back(task{std::move(job), std::move(done)});
            cv_.notify_one();
            return;
        }
    }
    // Full: the caller learns it the way it learns every other result, on the loop, later.
    finish(std::move(done), -EAGAIN);
}

void worker_pool::finish(std::function<void(int)> done, int err) {
    try {
        loop_.post([s = shared_, done = std::move(done), err]() mutable {
            if (s->alive) done(err);
        });
    } catch (const std::exception& e) {
        // Out of memory for the post itself: the done callback is lost. Say so; nothing else can.
        lg.err("cannot hand a job's result to the loop: {}", e.what());
    }
}

void worker_pool::run_worker() {
    for (;;) {
        task t;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            t = std::move(queue_.front());
            queue_.pop_front();
        }
        int err = 0;
        // A copy: e.what() dies with the exception at the end of its catch block.
        std::string what;
        try {
            t.job();
        } catch (const std::bad_alloc&) {
            err = -ENOMEM;
            what = "out of memory";
        } catch (const std::exception& e) {
            err = -EIO;
            try {
                what = e.what();
            } catch (...) {
                what = "(message lost: out of memory)";
            }
        } catch (...) {
            err = -EIO;
            what = "not a std::exception";
        }
        if (err != 0) {
            // A job's failure is its done callback's to handle; the log says it happened at all.
            ++shared_->exceptions;
            if (unsigned suppressed = 0; job_error_limit.allow(suppressed)) {
                lg.err("a worker job threw: {}{}", what,
                       log::suppressed_note(suppressed));
            }
        }
        t.job = nullptr;  // what the job captured goes now, on the worker, not with the done
        finish(std::move(t.done), err);
    }
}

}  // namespace blobd
