// Description: io/worker_pool: jobs run off the loop thread and their results come back on it;
// the queue bound is kept; a throwing job becomes an error result; shutdown with jobs queued runs
// no further done callback; the loop keeps turning (timers fire) while a job blocks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "io/event_loop.hpp"
#include "io/worker_pool.hpp"

using namespace blobd;
using namespace std::chrono_literals;

namespace {

template <class P>
bool run_until(event_loop& loop, P pred, std::chrono::milliseconds limit = 5s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        loop.run_once(5ms);
    }
    return true;
}

// Holds jobs on the workers until opened.
struct gate {
    std::atomic<bool> open{false};
    void wait() const {
        while (!open) std::this_thread::sleep_for(1ms);
    }
};

}  // namespace

TEST_CASE("worker_pool: results arrive on the loop thread, every job once", "[unit][workers]") {
    event_loop loop;
    worker_pool pool(loop, 2);
    const auto loop_thread = std::this_thread::get_id();
    std::set<int> got;
    std::atomic<int> off_loop{0};
    for (int i = 0; i < 50; ++i) {
        pool.submit(
            [i, loop_thread, &off_loop] {
                if (std::this_thread::get_id() != loop_thread) ++off_loop;
                return i * 2;
            },
            [&, loop_thread](result<int, int> r) {
                CHECK(std::this_thread::get_id() == loop_thread);
                REQUIRE(r);
                CHECK(got.insert(*r).second);
            });
    }
    REQUIRE(run_until(loop, [&] { return got.size() == 50; }));
    CHECK(off_loop == 50);
    CHECK(*got.rbegin() == 98);  // which order they came in is not promised; that all came is
}

TEST_CASE("worker_pool: a full queue answers -EAGAIN and runs nothing", "[unit][workers]") {
    event_loop loop;
    worker_pool pool(loop, 1, 2);
    gate g;
    std::atomic<int> ran{0};
    std::vector<int> errs;
    // One job holds the only worker; two fit in the queue; the fourth and fifth do not.
    pool.submit([&] { g.wait(); ++ran; }, [&](int e) { errs.push_back(e); });
    REQUIRE(run_until(loop, [&] { return pool.queued() == 0; }));
    for (int i = 0; i < 4; ++i) pool.submit([&] { ++ran; }, [&](int e) { errs.push_back(e); });
    CHECK(pool.queued() == 2);
    REQUIRE(run_until(loop, [&] { return errs.size() == 2; }));
    CHECK(errs == std::vector<int>{-EAGAIN, -EAGAIN});
    CHECK(ran == 0);
    g.open = true;
    REQUIRE(run_until(loop, [&] { return errs.size() == 5; }));
    CHECK(ran == 3);
    CHECK(std::count(errs.begin(), errs.end(), 0) == 3);
}

TEST_CASE("worker_pool: a throwing job is an error result, not a dead worker", "[unit][workers]") {
    event_loop loop;
    worker_pool pool(loop, 1);
    std::optional<result<int, int>> a, b, c;
    pool.submit([]() -> int { throw std::runtime_error("boom"); }, [&](result<int, int> r) { a = r; });
    pool.submit([]() -> int { throw std::bad_alloc(); }, [&](result<int, int> r) { b = r; });
    pool.submit([] { return 7; }, [&](result<int, int> r) { c = r; });
    REQUIRE(run_until(loop, [&] { return a && b && c; }));
    REQUIRE_FALSE(*a);
    CHECK(a->error() == -EIO);
    REQUIRE_FALSE(*b);
    CHECK(b->error() == -ENOMEM);
    REQUIRE(*c);
    CHECK(**c == 7);  // the same (only) worker still serves
    CHECK(pool.job_exceptions() == 2);
}

TEST_CASE("worker_pool: shutdown with jobs queued and results posted runs no done", "[unit][workers]") {
    event_loop loop;
    std::atomic<int> ran{0};
    int done_calls = 0;
    auto owned = std::make_shared<int>(0);  // what queued jobs capture is released at shutdown
    {
        worker_pool pool(loop, 1);
        // A job that has run and posted its result, which the loop has not run yet.
        pool.submit([&] { ++ran; }, [&](int) { ++done_calls; });
        while (ran == 0) std::this_thread::sleep_for(1ms);
        // A long job holding the only worker until shutdown tells it to stop, and eleven behind it.
        pool.submit([&] {
            while (!pool.stopping()) std::this_thread::sleep_for(1ms);
            ++ran;
        }, [&](int) { ++done_calls; });
        while (pool.queued() != 0) std::this_thread::sleep_for(1ms);
        pool.submit([&] { ++ran; }, [&](int) { ++done_calls; });
        for (int i = 0; i < 10; ++i) pool.submit([&, owned] { ++ran; }, [&, owned](int) { ++done_calls; });
        CHECK(pool.queued() == 11);
        CHECK(owned.use_count() == 21);
    }
    CHECK(ran == 2);                 // the first job and the long one; nothing queued ran
    CHECK(owned.use_count() == 1);   // the dropped jobs and their done callbacks are released
    loop.run_once(20ms);
    loop.run_once(0ms);
    CHECK(done_calls == 0);          // neither the first done, posted before, nor the long job's
}

TEST_CASE("worker_pool: the loop keeps running while a job blocks", "[unit][workers]") {
    event_loop loop;
    worker_pool pool(loop, 2);
    bool finished = false;
    int ticks_during = 0;
    std::function<void()> tick = [&] {
        if (finished) return;
        ++ticks_during;
        loop.after(5ms, tick);
    };
    loop.after(5ms, tick);
    const auto t0 = std::chrono::steady_clock::now();
    pool.submit([] { std::this_thread::sleep_for(200ms); }, [&](int e) {
        CHECK(e == 0);
        finished = true;
    });
    REQUIRE(run_until(loop, [&] { return finished; }));
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= 200ms);
    // A blocked loop would have fired the timer at most once; 5 ms ticks over 200 ms give ~40.
    CHECK(ticks_during >= 10);
}
