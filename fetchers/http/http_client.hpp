// http_client: the network side of the HTTP(S) fetchers (http_fetcher, oci_fetcher). One request
// at a time per `exchange` walks through connection pool, resolve, connect, TLS handshake, request,
// response header and body, with timeouts, retries (5xx, resets, timeouts; exponential backoff) and
// redirects, all within the request's deadline; keep-alive connections are pooled per origin (at most max_connections each; more
// requests queue). TLS is verified against the system store (plus ca_file) with host name checks
// unless `insecure`. With http_options::proxy every connection goes through that forward proxy
// (one client is either all proxied or all direct, so pooled connections never mix).
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

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
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

namespace http {
class fault_counter;
}

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
    /// A forward proxy for every request ("http://[user:pass@]host:port", http::parse_proxy), or
    /// "" for direct connections: https origins through a CONNECT tunnel (TLS and its checks with
    /// the origin), http origins with absolute-form targets. Proxy-Authorization goes to the proxy
    /// only, Authorization only inside the tunnel or the proxied request, never in a CONNECT.
    std::string proxy;
    /// Tests only (never set by the config): counts the client's network operations and fails the
    /// chosen one; see http::fault_counter. Null in production, where it costs one pointer check
    /// per operation.
    std::shared_ptr<http::fault_counter> faults;
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

/// Fault injection for tests, in the manner of Beast's test::fail_count (docs/http.md, "Fault
/// matrix"; tests/integration/http_faults_test.cpp). A client whose http_options::faults is set
/// counts every network operation it starts: resolve, connect, TLS handshake, request write,
/// response header read, and each read of a body (the parser's reads, the raw reads of a direct
/// 206 body, and the reads that drain an unused body). The n-th operation (1-based), and with
/// `sticky` every later one too (Beast's semantics), is not started: its completion handler is
/// posted with the error of `kind` instead, as the real operation would have reported it (kind
/// `deadline`: it is started, and the request's deadline is moved to now). The
/// counter also counts the client's live exchanges and connections, so a test can see that a
/// request left nothing behind. fail_at 0: nothing fails, operations are only counted.
///
/// Threading: the client calls it on the net thread; count(), fired(), trace() and the live
/// counts may be read on any thread.
class fault_counter {
public:
    enum class op : std::uint8_t { resolve, connect, handshake, write, read_header, read_body, drain_body };
    enum class error : std::uint8_t {
        aborted,  ///< operation_aborted: the operation was cancelled
        reset,    ///< connection_reset
        /// the peer closed: a header read sees end_of_stream, a parser body read partial_message, a
        /// raw body read eof, any read through TLS stream_truncated, a write broken_pipe (and
        /// resolve, connect, where no peer is there yet, plain eof)
        eof,
        timeout,  ///< beast::error::timeout, as a tcp_stream's expiry reports it
        /// not an error of the operation: it starts, and the request's deadline (it must have
        /// one) passes while it is in flight, so the deadline timer cuts it off
        deadline,
    };
    /// One operation counted: what it was, and whether it ran on a kept-alive connection that had
    /// served an answer before (a write or header read there may be retried at once, see docs).
    struct record {
        op what;
        bool reused;
        bool failed;
    };

    explicit fault_counter(std::uint64_t fail_at, error kind = error::reset, bool sticky = false)
        : fail_at_(fail_at), kind_(kind), sticky_(sticky) {}

    /// Called with the 1-based number and kind of every operation counted, before it starts (or
    /// fails), outside any lock: a test can post something (a shutdown) to run while it is in
    /// flight. Set before the client starts.
    using observer = std::function<void(std::uint64_t n, op what)>;
    void observe(observer o) { observer_ = std::move(o); }

    /// Counts one operation; true when it is to fail (then the caller posts the error instead).
    bool fail(op what, bool reused);
    error kind() const { return kind_; }

    std::uint64_t count() const;        ///< operations counted so far
    bool fired() const;                 ///< some operation was failed
    std::vector<record> trace() const;  ///< every operation counted, in order
    long live_exchanges() const { return exchanges_.load(); }
    long live_connections() const { return connections_.load(); }

    // Called by the client (its exchange and connection constructors and destructors).
    void exchange_born() { ++exchanges_; }
    void exchange_died() { --exchanges_; }
    void connection_born() { ++connections_; }
    void connection_died() { --connections_; }

private:
    const std::uint64_t fail_at_;
    const error kind_;
    const bool sticky_;
    mutable std::mutex mu_;
    std::vector<record> trace_;  // guarded by mu_
    observer observer_;
    std::atomic<long> exchanges_{0}, connections_{0};
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

    /// Throws std::system_error (EINVAL) when ca_file cannot be loaded or the proxy URL is bad; `what` names the source in
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
