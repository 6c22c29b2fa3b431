// Tests of the source chain with circuit breakers and deadlines (fetchers/source_chain.cpp,
// fetchers/breaker.cpp) over the real loop, with scripted sources.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <memory>

#include "fetchers/breaker.hpp"
#include "fetchers/fetcher.hpp"
#include "io/event_loop.hpp"

using namespace blobd;
using namespace std::chrono_literals;

namespace {

// A source that serves zeros, fails with EIO, or stalls (answering -ETIMEDOUT at the deadline,
// as a real source does), as the test says. Counts calls.
class scripted final : public fetcher {
public:
    enum class mode { ok, fail, stall };
    explicit scripted(event_loop& loop, std::string name) : loop_(loop), name_(std::move(name)) {}
    mode m = mode::ok;
    int calls = 0;

    void stat(const blob_ref&, deadline due, stat_done done) override {
        answer(due, [done = std::move(done)](int err) mutable {
            done(err ? result<std::uint64_t, int>(unexpected{err}) : result<std::uint64_t, int>(4096));
        });
    }
    void fetch(const blob_ref&, std::uint64_t, std::uint64_t len, deadline due, fetch_done done) override {
        answer(due, [len, done = std::move(done)](int err) mutable {
            if (err) return done(unexpected{err});
            auto b = std::make_shared<aligned_buffer>(len);
            std::memset(b->data(), 0, len);
            b->filled = len;
            done(buffer_ptr(std::move(b)));
        });
    }
    void release(const blob_ref&) override {}
    std::string describe() const override { return name_; }

private:
    template <class F>
    void answer(deadline due, F f) {
        ++calls;
        if (m == mode::stall) {
            REQUIRE(due != no_deadline);
            const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(due - std::chrono::steady_clock::now());
            loop_.after(std::max(wait, 0ms), [f = std::move(f)]() mutable { f(-ETIMEDOUT); });
            return;
        }
        loop_.defer([f = std::move(f), err = m == mode::fail ? -EIO : 0]() mutable { f(err); });
    }
    event_loop& loop_;
    std::string name_;
};

struct bench {
    event_loop loop;
    std::shared_ptr<scripted> a = std::make_shared<scripted>(loop, "a"), b = std::make_shared<scripted>(loop, "b");
    std::shared_ptr<guarded_fetcher> ga, gb;
    std::unique_ptr<source_chain> chain;
    explicit bench(breaker_options o) {
        ga = std::make_shared<guarded_fetcher>(loop, a, o);
        gb = std::make_shared<guarded_fetcher>(loop, b, o);
        chain = std::make_unique<source_chain>(std::vector<std::shared_ptr<fetcher>>{ga, gb});
    }
    /// Fetches 4 KiB with a deadline `in` from now; the result and how long it took.
    std::pair<result<buffer_ptr, int>, std::chrono::steady_clock::duration> fetch(std::chrono::milliseconds in) {
        std::optional<result<buffer_ptr, int>> r;
        const auto t0 = std::chrono::steady_clock::now();
        chain->fetch(blob_ref{"d", "x"}, 0, 4096, t0 + in, [&](result<buffer_ptr, int> v) { r = std::move(v); });
        const auto end = t0 + 10s;
        while (!r && std::chrono::steady_clock::now() < end) loop.run_once(10ms);
        REQUIRE(r);
        return {std::move(*r), std::chrono::steady_clock::now() - t0};
    }
};

}  // namespace

// Description: with two sources, a stalling first one gets half of the deadline and the second
// serves the data within it; after 3 such outages the first one's breaker opens (one log line) and
// the chain goes straight to the second without asking it; after the backoff one probe goes to it,
// and once it answers again the breaker closes (one log line) and it serves first again.
TEST_CASE("a stalling first source: the second serves within the deadline, the breaker opens and closes",
          "[integration][breaker]") {
    bench t({3, 300ms, 1000ms});
    t.a->m = scripted::mode::stall;
    for (int i = 0; i < 3; ++i) {
        auto [r, took] = t.fetch(400ms);
        CHECK(r);
        CHECK(took >= 190ms);  // a's share: half of 400 ms
        CHECK(took < 400ms);
    }
    CHECK(t.a->calls == 3);
    CHECK(t.b->calls == 3);
    CHECK(t.ga->breaker().current(std::chrono::steady_clock::now()) == circuit_breaker::state::open);
    CHECK(t.ga->breaker_counts().opens == 1);

    auto [fast, took] = t.fetch(400ms);
    CHECK(fast);
    CHECK(took < 100ms);
    CHECK(t.a->calls == 3);  // not asked
    CHECK(t.ga->breaker_counts().fast_failures == 1);

    // The first source recovers; after the backoff the next fetch probes it and it serves.
    t.a->m = scripted::mode::ok;
    const auto until = std::chrono::steady_clock::now() + 350ms;
    while (std::chrono::steady_clock::now() < until) t.loop.run_once(10ms);
    auto [probed, took2] = t.fetch(400ms);
    CHECK(probed);
    CHECK(took2 < 100ms);
    CHECK(t.a->calls == 4);
    CHECK(t.ga->breaker_counts().probes == 1);
    CHECK(t.ga->breaker().current(std::chrono::steady_clock::now()) == circuit_breaker::state::closed);
    CHECK(t.b->calls == 4);  // served by a this time

    // Metrics show the state per source.
    metrics::snapshot snap;
    t.ga->collect(snap, "a");
    const auto j = metrics::to_json(snap);
    REQUIRE(j.contains("sources"));
    INFO(j.dump());
    CHECK(j["sources"][0]["breaker_state"] == 0);
    CHECK(j["sources"][0]["breaker_opens"] == 1);
}

// Description: when every source fails, the chain answers the first source's error; a source whose
// breaker is open fails at once (no waiting for its share), and "no such blob" never opens one.
TEST_CASE("every source failing: errors, fast failures, no breaker for missing blobs", "[integration][breaker]") {
    bench t({2, 5000ms, 5000ms});
    t.a->m = scripted::mode::fail;
    t.b->m = scripted::mode::fail;
    for (int i = 0; i < 2; ++i) CHECK(t.fetch(1000ms).first.error() == -EIO);
    CHECK(t.a->calls == 2);
    CHECK(t.b->calls == 2);
    auto [r, took] = t.fetch(1000ms);
    CHECK(r.error() == -EIO);
    CHECK(took < 100ms);
    CHECK(t.a->calls == 2);  // both breakers open: nobody asked
    CHECK(t.b->calls == 2);

    circuit_breaker b({1, 100ms, 100ms});
    CHECK(b.record(is_outage(-ENOENT), false, std::chrono::steady_clock::now()) == circuit_breaker::change::none);
}
