// worker_pool: a fixed set of threads for blocking work that must not run on the loop thread
// (filesystem calls that may wait on the disk, hashing whole blobs).
//
// submit(job, done): `job` runs on one of the workers; `done` then runs on the loop thread, handed
// over with event_loop::post. Jobs may run concurrently and finish in any order: no ordering is
// promised, not even between two jobs submitted back to back (callers that need an order chain
// the second submit from the first one's done).
//
// Errors: done is called exactly once per submit while the pool lives, with the job's result or a
// negative errno: -EAGAIN when the queue already holds max_queued jobs (the job never runs),
// -ENOMEM when the job threw std::bad_alloc, -EIO when it threw anything else (counted in
// job_exceptions() and logged, rate-limited). No exception leaves a worker.
//
// Shutdown (the destructor): jobs still queued are dropped unrun, running ones are waited for
// (long jobs poll stopping() to end early), and no done callback runs after the destructor
// returned, not even one already posted to the loop.
//
// Ownership and threads: owned by one object on the loop thread, which constructs, submits and
// destroys it; the event_loop must outlive it. submit() and stopping() are also safe from a worker
// (a job may submit a follow-up). A job must not capture what its owner may destroy before it
// ran: it gets copies (paths, shared_ptr'd fds), and its done callback touches the owner.
#pragma once

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/result.hpp"

namespace blobd {

class event_loop;

class worker_pool {
public:
    /// Starts `threads` workers (at least one). Throws std::system_error if a thread cannot start.
    explicit worker_pool(event_loop& loop, unsigned threads = 2, std::size_t max_queued = 1024);
    ~worker_pool();
    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;

    /// Runs `job()` on a worker, then `done(...)` on the loop thread. A job returning void gets
    /// done(int err) (0 on success); a job returning T gets done(result<T, int>).
    template <class Job, class Done>
    void submit(Job job, Done done);

    /// True once the destructor started: a long job may stop early (its done will not run).
    bool stopping() const noexcept;
    unsigned threads() const noexcept { return static_cast<unsigned>(threads_.size()); }
    /// Jobs waiting for a worker (not counting running ones).
    std::size_t queued() const;
    /// Jobs that threw (their done got -ENOMEM or -EIO).
    std::uint64_t job_exceptions() const noexcept;

private:
    struct task {
        std::function<void()> job;
        std::function<void(int)> done;
    };
    // What posted done callbacks check on the loop thread: false once the pool is gone.
    struct shared {
        std::atomic<bool> alive{true};
        std::atomic<std::uint64_t> exceptions{0};
    };

    void enqueue(std::function<void()> job, std::function<void(int)> done);
    void run_worker();
    void finish(std::function<void(int)> done, int err);

    event_loop& loop_;
    const std::size_t max_queued_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<task> queue_;
    bool stopping_ = false;
    std::shared_ptr<shared> shared_ = std::make_shared<shared>();
    std::vector<std::thread> threads_;
};

template <class Job, class Done>
void worker_pool::submit(Job job, Done done) {
    using value = std::invoke_result_t<Job&>;
    if constexpr (std::is_void_v<value>) {
        enqueue(std::function<void()>(std::move(job)), std::function<void(int)>(std::move(done)));
    } else {
        // The job's value travels from the worker to the loop in a slot both callbacks share; the
        // post in finish() orders the write before the read.
        auto slot = std::make_shared<std::optional<value>>();
        enqueue([slot, job = std::move(job)]() mutable { slot->emplace(job()); },
                [slot, done = std::move(done)](int err) mutable {
                    if (err != 0 || !slot->has_value()) {
                        done(result<value, int>(unexpected{err != 0 ? err : -EIO}));
                    } else {
                        done(result<value, int>(std::move(**slot)));
                    }
                });
    }
}

}  // namespace blobd
