// Circuit breakers: a source that keeps failing is failed fast instead of being waited for.
//
// circuit_breaker is the policy, pure (times are passed in) so that tests drive it exhaustively:
//   closed     every call goes to the source; `failures` outages in a row open it.
//   open       calls fail at once (the chain moves to its next source) until the backoff ends.
//   half-open  the first call after the backoff is a probe and goes to the source; the others
//              still fail fast. The probe's success closes the breaker; its failure opens it
//              again with the backoff doubled, up to max_backoff.
// Any success closes it, also of a call let through before it opened. What counts as an outage is
// is_outage(): "no such blob" and "access denied" are answers of a working source.
//
// guarded_fetcher puts a breaker in front of one source (every configured source gets one, see
// sources::source_set), logs one line when it opens and one when it closes, and counts for metrics.
//
// Threading: loop thread only (like every fetcher).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/metrics.hpp"
#include "fetchers/fetcher.hpp"
#include "io/event_loop.hpp"

namespace blobd {

struct breaker_options {
    unsigned failures = 3;  ///< outages in a row that open the breaker; 0: never opens
    std::chrono::milliseconds backoff{1000};       ///< the first open period
    std::chrono::milliseconds max_backoff{10000};  ///< doubling stops here
};

/// Whether a source's error says it is unwell (timeouts, resets, 5xx, I/O errors) rather than
/// answering (-ENOENT, -EACCES, -EPERM), or a local condition (-ENOMEM, -EINVAL: a bad request).
bool is_outage(int err) noexcept;

class circuit_breaker {
public:
    using time_point = std::chrono::steady_clock::time_point;
    enum class state : std::uint8_t { closed, open, half_open };
    enum class verdict : std::uint8_t { go, probe, refuse };
    enum class change : std::uint8_t { none, opened, reopened, closed };

    explicit circuit_breaker(breaker_options opts) : opts_(opts), backoff_(opts.backoff) {}

    /// Asks to send a call now. `probe`: this is the half-open probe; report its outcome with
    /// was_probe = true. `refuse`: fail the call without asking the source.
    verdict admit(time_point now) noexcept;
    /// The outcome of an admitted call (`outage`: is_outage() of its error). What changed.
    change record(bool outage, bool was_probe, time_point now) noexcept;

    /// The state as admit() would see it at `now` (an open breaker past its backoff: half_open).
    state current(time_point now) const noexcept;
    /// When an open breaker lets its probe through.
    time_point retry_at() const noexcept { return until_; }
    std::chrono::milliseconds backoff() const noexcept { return backoff_; }
    unsigned failures_in_a_row() const noexcept { return fails_; }

private:
    breaker_options opts_;
    state state_ = state::closed;
    unsigned fails_ = 0;
    bool probing_ = false;
    std::chrono::milliseconds backoff_;
    time_point until_{};
};

/// What a guarded_fetcher counts (loop thread).
struct breaker_stats {
    std::uint64_t state = 0;          ///< 0 closed, 1 open, 2 half-open (filled in by collect())
    std::uint64_t opens = 0;          ///< closed -> open transitions
    std::uint64_t fast_failures = 0;  ///< calls failed without asking the source
    std::uint64_t probes = 0;         ///< half-open probes sent
};

/// breaker_stats as metrics, per source: keys "breaker_*" of the source's object in the stats
/// JSON's "sources" array, erofs_blobd_breaker_<name>{source="..."} in Prometheus.
inline constexpr auto breaker_metrics = [] {
    using s = breaker_stats;
    using metrics::counter, metrics::gauge;
    return metrics::make_table(
        metrics::group{"breaker", source_labels, "sources"},
        gauge(&s::state, "state", "The source's circuit breaker: 0 closed, 1 open (failing fast), 2 half-open.")
            .json("breaker_state"),
        counter(&s::opens, "opens", "Times the breaker opened after repeated failures of the source.")
            .json("breaker_opens"),
        counter(&s::fast_failures, "fast_failures", "Requests failed at once because the breaker was open.")
            .json("breaker_fast_failures"),
        counter(&s::probes, "probes", "Requests let through to test whether the source recovered.")
            .json("breaker_probes"));
}();

/// Bounds of the fetch time histogram, in seconds (a local file to a slow registry).
inline constexpr double fetch_seconds_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

/// How long the source took per range fetch (the breaker sees every fetch that reaches it).
struct source_timing {
    metrics::histogram fetch_seconds{fetch_seconds_bounds};
};
inline constexpr auto source_timing_metrics = [] {
    using metrics::histogram_of, metrics::unit;
    return metrics::make_table(metrics::group{"source", source_labels, "sources"},
                               histogram_of(&source_timing::fetch_seconds, "fetch_duration",
                                            "Time the source took to answer a range fetch (success or failure).",
                                            unit::seconds));
}();

class guarded_fetcher final : public fetcher {
public:
    guarded_fetcher(event_loop& loop, std::shared_ptr<fetcher> inner, breaker_options opts)
        : loop_(loop), inner_(std::move(inner)), breaker_(opts) {}
    ~guarded_fetcher() override { *alive_ = false; }
    guarded_fetcher(const guarded_fetcher&) = delete;
    guarded_fetcher& operator=(const guarded_fetcher&) = delete;

    void stat(const blob_ref& blob, deadline due, stat_done done) override;
    void fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) override;
    void release(const blob_ref& blob) override { inner_->release(blob); }
    std::string describe() const override { return inner_->describe(); }
    /// The source's own metrics, then the breaker's.
    void collect(metrics::snapshot& out, const std::string& label) const override;

    const circuit_breaker& breaker() const noexcept { return breaker_; }
    const breaker_stats& breaker_counts() const noexcept { return counts_; }

private:
    /// Whether to send (and whether as the probe); counts and schedules the fast failure otherwise.
    bool admit(bool& probe);
    void outcome(int err, bool probe);

    event_loop& loop_;
    std::shared_ptr<fetcher> inner_;
    circuit_breaker breaker_;
    breaker_stats counts_;
    source_timing timing_;
    std::chrono::steady_clock::time_point opened_at_{};
    // The source's callbacks may run after we are gone (it can outlive us in source_set).
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace blobd
