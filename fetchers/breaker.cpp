#include "fetchers/breaker.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.hpp"

namespace blobd {

namespace {
const log::logger lg{"sources"};

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

bool is_outage(int err) noexcept {
    switch (-err) {
        case 0:
        case ENOENT:  // no such blob: the source answered
        case EACCES:  // credentials refused: a configuration problem, not an outage
        case EPERM:
        case ENOMEM:  // ours, not the source's
        case EINVAL:  // a request the source was never asked
            return false;
        default:
            return true;
    }
}

circuit_breaker::verdict circuit_breaker::admit(time_point now) noexcept {
    switch (state_) {
        case state::closed:
            return verdict::go;
        case state::open:
            // A probe of an earlier open period still out (the breaker closed and opened again
            // meanwhile): its answer decides; never two probes at once.
            if (now < until_ || probing_) return verdict::refuse;
            state_ = state::half_open;
            probing_ = true;
            return verdict::probe;
        case state::half_open:
            if (probing_) return verdict::refuse;  // one probe at a time
            probing_ = true;
            return verdict::probe;
    }
    return verdict::go;
}

circuit_breaker::change circuit_breaker::record(bool outage, bool was_probe, time_point now) noexcept {
    if (was_probe) probing_ = false;
    if (!outage) {
        fails_ = 0;
        if (state_ == state::closed) return change::none;
        // Any success says the source works again, also of a call sent before the breaker opened.
        state_ = state::closed;
        backoff_ = opts_.backoff;
        return change::closed;
    }
    ++fails_;
    switch (state_) {
        case state::closed:
            if (opts_.failures == 0 || fails_ < opts_.failures) return change::none;
            state_ = state::open;
            backoff_ = opts_.backoff;
            until_ = now + backoff_;
            return change::opened;
        case state::half_open:
            if (!was_probe) return change::none;  // a straggler from before: the probe decides
            state_ = state::open;
            backoff_ = std::min(backoff_ * 2, std::max(opts_.max_backoff, opts_.backoff));
            until_ = now + backoff_;
            return change::reopened;
        case state::open:
            return change::none;  // a straggler sent before the breaker opened
    }
    return change::none;
}

circuit_breaker::state circuit_breaker::current(time_point now) const noexcept {
    if (state_ == state::open && now >= until_) return state::half_open;
    return state_;
}

bool guarded_fetcher::admit(bool& probe) {
    const auto v = breaker_.admit(std::chrono::steady_clock::now());
    probe = v == circuit_breaker::verdict::probe;
    if (probe) {
        ++counts_.probes;
        lg.debug("source {}: probing after {:g} s of failing fast", inner_->describe(),
                 seconds(std::chrono::steady_clock::now() - opened_at_));
    }
    if (v != circuit_breaker::verdict::refuse) return true;
    ++counts_.fast_failures;
    return false;
}

void guarded_fetcher::outcome(int err, bool probe) {
    const auto now = std::chrono::steady_clock::now();
    switch (breaker_.record(is_outage(err), probe, now)) {
        case circuit_breaker::change::none:
            break;
        case circuit_breaker::change::opened:
            ++counts_.opens;
            opened_at_ = now;
            lg.warn("source {}: {} failures in a row (last: {}); failing fast, probing again in {:g} s",
                    inner_->describe(), breaker_.failures_in_a_row(), std::strerror(-err),
                    seconds(breaker_.backoff()));
            break;
        case circuit_breaker::change::reopened:
            // Not a line per probe: the one line at opening said what happens.
            lg.debug("source {}: probe failed ({}); next one in {:g} s", inner_->describe(), std::strerror(-err),
                     seconds(breaker_.backoff()));
            break;
        case circuit_breaker::change::closed:
            lg.info("source {}: answering again after {:g} s of failing fast", inner_->describe(),
                    seconds(now - opened_at_));
            break;
    }
}

void guarded_fetcher::stat(const blob_ref& blob, deadline due, stat_done done) {
    bool probe = false;
    if (!admit(probe)) {
        loop_.defer([done = std::move(done)] { done(unexpected{-EIO}); });
        return;
    }
    inner_->stat(blob, due, [this, alive = alive_, probe, done = std::move(done)](result<std::uint64_t, int> r) {
        if (*alive) outcome(r ? 0 : r.error(), probe);
        done(r);
    });
}

void guarded_fetcher::fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due,
                            fetch_done done) {
    bool probe = false;
    if (!admit(probe)) {
        loop_.defer([done = std::move(done)] { done(unexpected{-EIO}); });
        return;
    }
    inner_->fetch(blob, off, len, due,
                  [this, alive = alive_, probe, started = std::chrono::steady_clock::now(),
                   done = std::move(done)](result<buffer_ptr, int> r) mutable {
                      if (*alive) {
                          timing_.fetch_seconds.observe(
                              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
                          outcome(r ? 0 : r.error(), probe);
                      }
                      done(std::move(r));
                  });
}

void guarded_fetcher::collect(metrics::snapshot& out, const std::string& label) const {
    inner_->collect(out, label);
    breaker_stats s = counts_;
    // Read at snapshot time: an open breaker turns half-open by the clock, not by an event.
    s.state = static_cast<std::uint64_t>(breaker_.current(std::chrono::steady_clock::now()));
    out.add(breaker_metrics, s, {label});
    out.add(source_timing_metrics, timing_, {label});
}

}  // namespace blobd
