// http_client: the network side of the HTTP(S) fetchers (http_fetcher, oci_fetcher). One request
// at a time per `exchange` walks through connection pool, resolve, connect, TLS handshake, request,
// response header and body, with timeouts, retries (5xx, resets, timeouts; exponential backoff) and
// redirects, all within the request's deadline; keep-alive connections are pooled per origin (at most max_connections each; more
// requests queue). TLS is verified against the system store (plus ca_file) with host name checks
// unless `insecure`.
//
// Requests may carry an Authorization value: it is sent only to the origin (scheme, host, port) of
// the URL the request started at, never to a redirect target elsewhere (a registry's 307 to blob
// storage must not leak the registry's token). A request may also ask for a 401 to be reported
// (status + WWW-Authenticate values) instead of failing with -EACCES, so an auth layer can answer
// the challenge.
//
// Threading: create on any thread; start() and shutdown() on the net thread only, and the done
// callbacks run there, never inline from start(). Ownership: shared (each exchange holds the
// client); after shutdown() no callback runs and every connection is closed. Logs show
// scheme://host/path only, never query strings or Authorization values.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/buffer.hpp"
#include "base/metrics.hpp"
#include "fetchers/fetcher.hpp"  // source_labels
#include "protocol/http/http_util.hpp"

namespace boost::asio {
class io_context;
}

namespace blobd {

struct http_options {
    std::string url;                            ///< http_fetcher: base URL, blobs are <url>/<name>
    std::string ca_file;                        ///< extra trusted CAs (PEM), on top of the system store
    bool insecure = false;                      ///< no certificate or host name verification
    std::chrono::milliseconds timeout{30000};   ///< per step: resolve, connect, TLS, write, headers, whole body
    unsigned retries = 3;                       ///< extra attempts after 5xx, timeouts, resets
    unsigned max_connections = 4;               ///< per origin (scheme, host, port)
    std::chrono::milliseconds backoff{200};     ///< before the first retry; doubles, capped at 5 s
    std::uint64_t body_limit = 64 << 20;        ///< largest whole-body (200) answer accepted for a range
    unsigned max_redirects = 5;

};

namespace http {

/// One request for the client.
struct request {
    enum class kind {
        stat,   ///< HEAD (falling back to a `Range: bytes=0-0` GET) -> response::size
        fetch,  ///< range GET of [off, off+len) -> response::data, checked as http_util says
        body,   ///< plain GET of a small document (a token) -> response::body, at most body_limit bytes
    };
    kind what = kind::stat;
    url target;
    std::uint64_t off = 0, len = 0;              ///< fetch
    std::optional<std::uint64_t> known_size;     ///< fetch: a whole-body (200) answer must be this long
    std::uint64_t body_limit = 64 * 1024;        ///< body
    /// Sent as `Authorization` to target's origin only (not after a redirect to another origin).
    std::string authorization;
    /// A 401 answer is delivered as status 401 with its challenges (err -EACCES all the same).
    bool report_unauthorized = false;
    /// The whole request (every attempt, redirect and backoff) ends by then: a step still running
    /// is cut off and the request fails with -ETIMEDOUT; no retry starts that could not finish.
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

/// A request's result.
struct response {
    int err = 0;                                  ///< 0 or a negative errno
    unsigned status = 0;                          ///< the last HTTP status seen (0: none arrived)
    std::uint64_t size = 0;                       ///< stat
    std::shared_ptr<aligned_buffer> data;         ///< fetch
    std::string body;                             ///< body
    std::vector<std::string> challenges;          ///< WWW-Authenticate values of a reported 401
    std::optional<url> redirected_to;             ///< success after redirects: the URL that answered
};

/// Why `path` cannot be an http_options::ca_file, or nothing: it must be a readable regular file
/// (at most 16 MiB) that the client's own loader (OpenSSL's PEM reader, as at start) accepts. The
/// message names the file. Any thread; blocking. What --check-config runs for ca_file.
std::optional<std::string> ca_file_error(const std::string& path);

}  // namespace http

/// What an http_client counts, copied out of its atomics (the net thread counts; any thread reads).
struct http_client_stats {
    std::uint64_t connections_opened = 0, requests_sent = 0;
};

/// http_client_stats as metrics, per source: keys of the source's object in the stats JSON's
/// "sources" array, erofs_blobd_http_<name>{source="..."} in Prometheus.
inline constexpr auto http_client_metrics = [] {
    using s = http_client_stats;
    using metrics::counter;
    return metrics::make_table(
        metrics::group{"http", source_labels, "sources"},
        counter(&s::connections_opened, "connections_opened",
                "TCP connections opened (keep-alive reuse shows as fewer connections than requests)."),
        counter(&s::requests_sent, "requests_sent",
                "HTTP requests sent: every attempt, redirect hop and stat probe."));
}();

class http_client {
public:
    using done_fn = std::function<void(http::response)>;

    /// Throws std::system_error (EINVAL) when ca_file cannot be loaded; `what` names the source in
    /// that message and in the log. opts.url is not used.
    http_client(boost::asio::io_context& io, http_options opts, const std::string& what);
    /// Requests still running keep the shared state alive; call shutdown() (net thread) first.
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    /// Net thread only. `done` runs on the net thread, exactly once, never inline, unless
    /// shutdown() came first.
    void start(http::request req, done_fn done);
    /// Net thread only. Stops every request (their callbacks never run) and closes every
    /// connection; later start() calls are ignored.
    void shutdown();

    /// TCP connections opened so far (keep-alive reuse shows as fewer connections than requests).
    std::uint64_t connections_opened() const noexcept;
    /// HTTP requests sent so far (every attempt, redirect hop and stat probe counts).
    std::uint64_t requests_sent() const noexcept;
    /// Both of the above, for a metrics snapshot (any thread).
    http_client_stats stats() const noexcept { return {connections_opened(), requests_sent()}; }

    struct state;  // pools, TLS context, live exchanges (http_client.cpp)

private:
    std::shared_ptr<state> s_;
};

}  // namespace blobd
