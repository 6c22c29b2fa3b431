// fetcher: where blob bytes come from. One asynchronous interface for every source type: a local
// directory (local_fetcher), an HTTP server (http_fetcher), an OCI registry (oci_fetcher), and the
// blob store in front of any of them (cas_fetcher).
//
// Contract:
//   - stat() reports a blob's size or a negative errno (-ENOENT: this source does not have it).
//   - fetch() fills an aligned buffer with exactly [off, off+len) of the blob, or fails with a
//     negative errno; a source returning fewer or more bytes than asked is an error (-EIO), never
//     passed on.
//   - Both take a deadline: the answer (success or failure) is due by then. A source gives up its
//     remaining attempts once the deadline would pass and answers -ETIMEDOUT (at the latest); one
//     that cannot be interrupted (a local read) may answer late, and the caller (core/engine)
//     answers the reader itself at the deadline. `no_deadline`: the source's own limits only.
//   - Callbacks run on the loop thread and never inline from the call (they are deferred or come
//     from an I/O completion), so callers may hold state across the call safely.
// Threading: calls on the loop thread only; implementations may work on other threads and post
// their results back with event_loop::post.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/buffer.hpp"
#include "base/metrics.hpp"
#include "base/result.hpp"

namespace blobd {

struct blob_ref {
    std::string domain;  ///< volume key without "erofs,": the domain_id, or the fsid
    std::string name;    ///< cookie key, validated as a plain file name
};

/// When an answer is due (steady clock).
using deadline = std::chrono::steady_clock::time_point;
inline constexpr deadline no_deadline = deadline::max();

/// Per-source counters (loop thread), declared in source_metrics.
struct source_stats {
    std::uint64_t stats = 0, stat_misses = 0, fetches = 0, fetch_errors = 0, bytes = 0;
};

/// Every per-source group carries the source's describe() text as its one label.
inline constexpr std::string_view source_labels[] = {"source"};

/// source_stats as metrics: an object per source in the stats JSON's "sources" array,
/// erofs_blobd_source_<name>{source="..."} in Prometheus.
inline constexpr auto source_metrics = [] {
    using s = source_stats;
    using metrics::counter;
    return metrics::make_table(
        metrics::group{"source", source_labels, "sources"},
        counter(&s::stats, "stat_requests", "Size lookups (stat) asked of the source.").json("stats"),
        counter(&s::stat_misses, "stat_misses", "Size lookups the source could not answer (no such blob, or failed)."),
        counter(&s::fetches, "fetches", "Range fetches asked of the source."),
        counter(&s::fetch_errors, "fetch_errors", "Range fetches of the source that failed."),
        counter(&s::bytes, "received", "Bytes the source delivered (over the network for remote ones).",
                metrics::unit::bytes)
            .json("bytes"));
}();

class fetcher {
public:
    using stat_done = std::function<void(result<std::uint64_t, int>)>;
    using fetch_done = std::function<void(result<buffer_ptr, int>)>;

    virtual ~fetcher() = default;
    virtual void stat(const blob_ref& blob, deadline due, stat_done done) = 0;
    virtual void fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due,
                       fetch_done done) = 0;
    /// The blob will not be asked for again soon (its last object closed): drop cached handles.
    virtual void release(const blob_ref& blob) = 0;
    /// "local:/srv/blobs": for logs and metrics; never contains credentials.
    virtual std::string describe() const = 0;
    const source_stats& stats() const noexcept { return stats_; }
    /// Adds this source's counters to `out`, labelled source=`label` (its describe() text, unless
    /// that names another source too): source_metrics, and whatever the kind of source adds (its
    /// HTTP client's, its auth's). Loop thread.
    virtual void collect(metrics::snapshot& out, const std::string& label) const {
        out.add(source_metrics, stats_, {label});
    }

protected:
    source_stats stats_;
};

/// Which fetcher serves each domain: the per-domain source chains built from the config
/// (sources::source_set), or a test's fake. The fetcher returned lives as long as the directory.
/// Loop thread.
class fetcher_directory {
public:
    virtual ~fetcher_directory() = default;
    virtual fetcher& for_domain(std::string_view domain) = 0;
};

/// Tries sources in order. stat() answers from the first source that has the blob and remembers
/// it; fetch() asks that source first and falls back to the others in order on failure.
/// The deadline covers the whole walk: each source but the last one left is given an equal share
/// of the time that remains (with two sources, a stalling first one uses half of it and leaves the
/// second the other half); a source that fails fast (its breaker is open) leaves its share to the
/// ones after it.
class source_chain final : public fetcher {
public:
    explicit source_chain(std::vector<std::shared_ptr<fetcher>> sources) : sources_(std::move(sources)) {}
    void stat(const blob_ref& blob, deadline due, stat_done done) override;
    void fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) override;
    void release(const blob_ref& blob) override;
    std::string describe() const override;

    /// The deadline given to one of `left` sources still to try (left >= 1), `due` for the walk.
    static deadline share(deadline due, std::size_t left, std::chrono::steady_clock::time_point now);

private:
    void stat_from(std::size_t i, blob_ref blob, deadline due, stat_done done, int first_err);
    void fetch_from(std::size_t i, std::size_t tried, blob_ref blob, std::uint64_t off, std::uint64_t len,
                    deadline due, fetch_done done, int first_err);
    std::vector<std::shared_ptr<fetcher>> sources_;
    // Blob name -> index of the source that answered its stat, for blobs not found in the first
    // source (absent: start at source 0). A hash map, since it holds one entry per open blob and is
    // consulted on every fetch (a vector scan made OPENs quadratic in the number of blobs).
    std::unordered_map<std::string, std::size_t> preferred_;
};

}  // namespace blobd
