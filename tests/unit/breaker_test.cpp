// Tests of the circuit breaker policy (fetchers/breaker.hpp): pure, times passed in.
#include <catch2/catch.hpp>

#include <cerrno>
#include <random>

#include "fetchers/breaker.hpp"

using namespace blobd;
using namespace std::chrono_literals;
using cb = circuit_breaker;

namespace {
const cb::time_point t0 = cb::time_point{} + 1h;
}

// Description: closed until `failures` outages in a row (a success in between resets the count);
// open fails fast until the backoff ends; then one probe at a time; a failed probe doubles the
// backoff up to its cap; a good probe closes it and resets the backoff.
TEST_CASE("breaker: opens, probes, backs off, closes", "[breaker]") {
    cb b({3, 1000ms, 4000ms});
    CHECK(b.admit(t0) == cb::verdict::go);
    CHECK(b.record(true, false, t0) == cb::change::none);
    CHECK(b.record(true, false, t0) == cb::change::none);
    CHECK(b.record(false, false, t0) == cb::change::none);  // a success resets the count
    CHECK(b.record(true, false, t0) == cb::change::none);
    CHECK(b.record(true, false, t0) == cb::change::none);
    CHECK(b.current(t0) == cb::state::closed);
    CHECK(b.record(true, false, t0) == cb::change::opened);
    CHECK(b.current(t0) == cb::state::open);
    CHECK(b.admit(t0) == cb::verdict::refuse);
    CHECK(b.admit(t0 + 999ms) == cb::verdict::refuse);
    CHECK(b.current(t0 + 1000ms) == cb::state::half_open);
    CHECK(b.admit(t0 + 1000ms) == cb::verdict::probe);
    CHECK(b.admit(t0 + 1001ms) == cb::verdict::refuse);  // one probe at a time
    CHECK(b.record(true, true, t0 + 1100ms) == cb::change::reopened);
    CHECK(b.backoff() == 2000ms);
    CHECK(b.admit(t0 + 3099ms) == cb::verdict::refuse);
    CHECK(b.admit(t0 + 3100ms) == cb::verdict::probe);
    CHECK(b.record(true, true, t0 + 3100ms) == cb::change::reopened);
    CHECK(b.backoff() == 4000ms);
    CHECK(b.admit(t0 + 7100ms) == cb::verdict::probe);
    CHECK(b.record(true, true, t0 + 7100ms) == cb::change::reopened);
    CHECK(b.backoff() == 4000ms);  // capped
    CHECK(b.admit(t0 + 11100ms) == cb::verdict::probe);
    CHECK(b.record(false, true, t0 + 11200ms) == cb::change::closed);
    CHECK(b.current(t0 + 11200ms) == cb::state::closed);
    CHECK(b.backoff() == 1000ms);
    CHECK(b.admit(t0 + 11200ms) == cb::verdict::go);
}

// Description: a straggler (a call let through before the breaker opened) failing does not
// extend the open period or take the probe's place; one succeeding closes the breaker; 0
// failures means never open.
TEST_CASE("breaker: stragglers and the off switch", "[breaker]") {
    cb b({1, 500ms, 500ms});
    CHECK(b.record(true, false, t0) == cb::change::opened);
    CHECK(b.record(true, false, t0 + 100ms) == cb::change::none);
    CHECK(b.retry_at() == t0 + 500ms);
    CHECK(b.admit(t0 + 500ms) == cb::verdict::probe);
    CHECK(b.record(true, false, t0 + 510ms) == cb::change::none);  // not the probe
    CHECK(b.admit(t0 + 520ms) == cb::verdict::refuse);             // the probe is still out
    CHECK(b.record(false, false, t0 + 530ms) == cb::change::closed);
    CHECK(b.admit(t0 + 530ms) == cb::verdict::go);

    cb never({0, 500ms, 500ms});
    for (int i = 0; i < 100; ++i) CHECK(never.record(true, false, t0) == cb::change::none);
    CHECK(never.admit(t0) == cb::verdict::go);
}

// Description: which errors are outages: timeouts, resets, I/O errors; not "no such blob",
// "access denied", or our own memory and argument errors.
TEST_CASE("breaker: what counts as an outage", "[breaker]") {
    for (int e : {EIO, ETIMEDOUT, ECONNREFUSED, ECONNRESET, EHOSTUNREACH, EPROTO}) CHECK(is_outage(-e));
    for (int e : {0, ENOENT, EACCES, EPERM, ENOMEM, EINVAL}) CHECK_FALSE(is_outage(-e));
}

// Description: a seeded model run: random admits, outcomes and clock steps over several seeds.
// Invariants: refuse only while open (or half-open with its probe out); never two probes out; a
// closed breaker has fewer than `failures` outages in a row; the backoff stays within its bounds;
// an open breaker always lets a probe through once its backoff has passed.
TEST_CASE("breaker: seeded model run keeps its invariants", "[breaker]") {
    for (unsigned seed = 1; seed <= 20; ++seed) {
        std::mt19937 rng(seed);
        const breaker_options o{static_cast<unsigned>(1 + rng() % 4), std::chrono::milliseconds(50 + rng() % 200),
                                std::chrono::milliseconds(400 + rng() % 1000)};
        cb b(o);
        auto now = t0;
        std::vector<bool> out;  // outstanding calls: whether each is the probe
        int probes_out = 0;
        for (int step = 0; step < 5000; ++step) {
            const unsigned what = rng() % 10;
            if (what < 4) {
                const auto before = b.current(now);
                const auto v = b.admit(now);
                if (v == cb::verdict::refuse) {
                    CHECK(before != cb::state::closed);
                    if (before == cb::state::half_open) CHECK(probes_out == 1);
                } else {
                    if (v == cb::verdict::probe) {
                        CHECK(probes_out == 0);
                        CHECK(before == cb::state::half_open);
                        ++probes_out;
                    } else {
                        CHECK(before == cb::state::closed);
                    }
                    out.push_back(v == cb::verdict::probe);
                }
            } else if (what < 8 && !out.empty()) {
                const std::size_t i = rng() % out.size();
                const bool probe = out[i];
                out.erase(out.begin() + static_cast<long>(i));
                if (probe) --probes_out;
                const bool outage = rng() % 3 != 0;
                const auto ch = b.record(outage, probe, now);
                if (!outage) CHECK(b.current(now) == cb::state::closed);
                if (ch == cb::change::opened || ch == cb::change::reopened) {
                    CHECK(b.retry_at() == now + b.backoff());
                }
            } else {
                now += std::chrono::milliseconds(rng() % 300);
            }
            CHECK(b.backoff() >= o.backoff);
            CHECK(b.backoff() <= std::max(o.max_backoff, o.backoff));
            if (b.current(now) == cb::state::closed) CHECK(b.failures_in_a_row() < o.failures);
            if (b.current(now) == cb::state::open) CHECK(now < b.retry_at());
            // Past its backoff with no probe out, an open breaker lets the next call probe.
            if (b.current(now) == cb::state::half_open && probes_out == 0) {
                CHECK(b.admit(now) == cb::verdict::probe);
                ++probes_out;
                out.push_back(true);
            }
        }
    }
}
