// http_fetcher: blobs served over HTTP(S) at `<base url>/<cookie name>` (see docs/http.md).
//
// stat() is a HEAD (falling back to a `Range: bytes=0-0` GET when HEAD is refused), fetch() a
// range GET whose answer is checked before a byte is used: a 206 must carry exactly the requested
// Content-Range and length; a 200 (Range ignored) must be the whole blob, within body_limit, and
// only the requested slice is kept. Keep-alive connections are pooled per origin (at most
// max_connections each; more requests queue), every step has a timeout, 5xx answers and transport
// failures are retried with exponential backoff, redirects are followed (5 hops), TLS is verified
// against the system store (plus ca_file) with host name checks unless `insecure`.
//
// The network work is http_client's (fetchers/http/http_client.hpp); this class maps blob names to
// URLs and carries results to the loop.
//
// Threading: the public calls are loop-thread only. The requests run on the net_thread's
// io_context; their results come back with event_loop::post and callbacks run on the loop thread,
// never inline. Ownership: the fetcher owns its net-side state; destroying it (loop thread) shuts
// that state down synchronously on the net thread, after which nothing is posted back, and results
// already posted are dropped. The net_thread (and the event_loop) must outlive the fetcher.
// Logs show scheme://host/path only, never query strings (they may carry tokens).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "io/event_loop.hpp"
#include "io/net_thread.hpp"
#include "fetchers/fetcher.hpp"
#include "fetchers/http/http_client.hpp"
#include "protocol/http/http_util.hpp"

namespace blobd {

class http_fetcher final : public fetcher {
public:
    /// Throws std::system_error (EINVAL) when the URL does not parse or ca_file cannot be loaded.
    http_fetcher(event_loop& loop, net_thread& net, http_options opts);
    ~http_fetcher() override;
    http_fetcher(const http_fetcher&) = delete;
    http_fetcher& operator=(const http_fetcher&) = delete;

    void stat(const blob_ref& blob, deadline due, stat_done done) override;
    void fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) override;
    void release(const blob_ref& blob) override;
    /// The base URL without its query string: "https://host/path".
    std::string describe() const override { return base_.redacted(); }

    /// TCP connections opened so far (keep-alive reuse shows as fewer connections than requests).
    std::uint64_t connections_opened() const noexcept;
    /// HTTP requests sent so far (every attempt, redirect hop and stat probe counts).
    std::uint64_t requests_sent() const noexcept;
    /// source_metrics and http_client_metrics (loop thread).
    void collect(metrics::snapshot& out, const std::string& label) const override;

private:
    void finish_stat(std::uint64_t id, http::response o);
    void finish_fetch(std::uint64_t id, http::response o);
    void submit(http::request req, void (http_fetcher::*finish)(std::uint64_t, http::response), std::uint64_t id);

    event_loop& loop_;
    net_thread& net_;
    http::url base_;
    std::shared_ptr<http_client> client_;
    // Cleared by the destructor; results posted to the loop check it before touching `this`.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    std::uint64_t next_id_ = 1;
    struct stat_waiter {
        stat_done done;
        std::string name;
    };
    std::unordered_map<std::uint64_t, stat_waiter> stat_waiting_;
    std::unordered_map<std::uint64_t, fetch_done> fetch_waiting_;
    // Sizes learnt from stat(): a whole-body (200) answer must match them. Bounded; dropped on release.
    std::unordered_map<std::string, std::uint64_t> sizes_;
};

}  // namespace blobd
