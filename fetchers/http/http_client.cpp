// The HTTP client: one `exchange` per request walks through connection pool, resolve, connect, TLS
// handshake, request, response header and body, with retries and redirects, in the callback style
// of Beast's async client example (each step sets its timeout first and checks its error code).
// All of it runs on the net thread; the fetchers carry the `response`s to their loop.
#include "fetchers/http/http_client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "base/file.hpp"
#include "base/log.hpp"

namespace blobd {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;

const log::logger lg{"http"};
log::rate_limit warn_limit;

// Bodies of answers we do not use (errors, redirects) are read and dropped up to this size so the
// connection can be reused; a larger one closes the connection instead.
constexpr std::uint64_t drain_limit = 64 * 1024;
constexpr std::size_t header_limit = 16 * 1024;
constexpr std::size_t scratch_size = 64 * 1024;
// Idle keep-alive connections older than this are closed rather than reused: servers drop them
// (nginx after 75 s by default) and a reuse would only fail.
constexpr auto idle_max = std::chrono::seconds(30);
constexpr std::size_t max_known_sizes = 4096;

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

template <class Fields>
std::optional<std::string_view> field(const Fields& f, bhttp::field name) {
    auto it = f.find(name);
    if (it == f.end()) return std::nullopt;
    return sv(it->value());
}

// A transport error as the fetcher reports it, and whether another attempt may help.
struct transport_error {
    int err;
    bool retryable;
};

transport_error classify(const error_code& ec) {
    if (ec == beast::error::timeout) return {-ETIMEDOUT, true};
    if (ec == asio::error::connection_refused) return {-ECONNREFUSED, true};
    if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again) {
        return {-EHOSTUNREACH, ec == asio::error::host_not_found_try_again};
    }
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == ssl::error::stream_truncated) {
        return {-EIO, true};  // the peer closed early: a transient failure
    }
    if (ec.category() == asio::error::get_ssl_category()) return {-EIO, false};  // certificate, protocol
    if (ec.category() == bhttp::make_error_code(bhttp::error::end_of_stream).category()) {
        return {-EIO, false};  // malformed HTTP: the server will say the same again
    }
    // Resets, aborts, unreachable networks, broken pipes: worth another try.
    return {-EIO, true};
}

std::string describe_error(const error_code& ec) {
    if (ec == beast::error::timeout) return "timed out";
    return ec.message();
}

}  // namespace

namespace http_net {

struct connection {
    // Beast reads at most the read buffer's free capacity (512 bytes at least) per recv. Bodies
    // pass through it into the scratch buffer, so it never grows by itself: without this reserve
    // every body was read 512 bytes per recvmsg (measured: 82 MiB/s from nginx on loopback).
    explicit connection(std::shared_ptr<http::fault_counter> f) : faults(std::move(f)) {
        buf.reserve(scratch_size);
        if (faults) faults->connection_born();
    }
    ~connection() {
        if (faults) faults->connection_died();
    }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    std::shared_ptr<http::fault_counter> faults;  // tests only (http_options::faults)
    std::string origin;
    std::unique_ptr<beast::tcp_stream> tcp;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
    beast::flat_buffer buf;
    bool connected = false;
    unsigned uses = 0;  // requests completed on it
    std::chrono::steady_clock::time_point idle_since{};

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *tcp; }
    /// Bytes arrived while the connection sat idle, after a complete answer: a server sending
    /// more than it announced, or (TLS) a close_notify. Its next answer cannot be trusted.
    bool has_unread_bytes() {
        error_code ec;
        const std::size_t n = lowest().socket().available(ec);
        return ec || n > 0;
    }
    void close() {
        if (!tcp && !tls) return;
        error_code ec;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
        lowest().close();
        connected = false;
    }
};

// Every operation on a connection holds it (`keep = conn_` in its handler) until it completes: the
// deadline may end a request while one is in flight, and hand the connection back to the pool,
// which drops it when closed; the operation still completes (operation_aborted) afterwards, and
// Beast's read ops commit into the connection's buffer then. (Found by the fault matrix, kind
// `deadline`: a heap-use-after-free under ASan.)
template <class F>
void with_stream(connection& c, F&& f) {
    if (c.tls) {
        f(*c.tls);
    } else {
        f(*c.tcp);
    }
}

class exchange;

/// The CONNECT request and the proxy's answer (header only), alive until both complete.
struct tunnel_io {
    bhttp::request<bhttp::empty_body> req;
    bhttp::response_parser<bhttp::empty_body> parser;
    beast::flat_buffer buf;
};

}  // namespace http_net

using http_net::connection;
using http_net::exchange;

ssl::context make_tls_context(const http_options& o, const std::string& what);

struct http_client::state : std::enable_shared_from_this<http_client::state> {
    state(asio::io_context& io, http_options o, std::optional<ssl::context> ctx, std::string w)
        : ioc(io), opts(std::move(o)), what(std::move(w)), tls_ctx_(std::move(ctx)) {}

    asio::io_context& ioc;
    const http_options opts;
    const std::string what;  // the source, for logs
    std::optional<http::proxy> proxy;  // opts.proxy parsed (the constructor), or direct
    /// The TLS context, made on first use when the constructor did not make it (a plain-http
    /// source without ca_file: TLS only after a redirect to https, maybe never). Net thread.
    ssl::context& tls_ctx() {
        if (!tls_ctx_) tls_ctx_.emplace(make_tls_context(opts, what));
        return *tls_ctx_;
    }
    std::optional<ssl::context> tls_ctx_;
    bool closed = false;  // shutdown() ran: no more callbacks, no more work
    std::atomic<std::uint64_t> connections_opened{0}, requests_sent{0};

    using waiter = std::function<void(std::shared_ptr<connection>)>;
    struct pool {
        std::vector<std::shared_ptr<connection>> idle;
        std::size_t out = 0;  // handed out (connected or being connected)
        std::deque<waiter> waiters;
    };
    std::map<std::string, pool> pools;
    std::unordered_map<exchange*, std::weak_ptr<exchange>> live;

    void start(std::shared_ptr<exchange> ex);
    /// Hands a connection for `origin` to `w` (asynchronously): an idle one, a new one while fewer
    /// than max_connections are out, or the next one released.
    void acquire(const std::string& origin, waiter w) {
        auto& p = pools[origin];
        while (!p.idle.empty()) {
            auto c = std::move(p.idle.back());
            p.idle.pop_back();
            if (c->connected && std::chrono::steady_clock::now() - c->idle_since < idle_max && !c->has_unread_bytes()) {
                ++p.out;
                asio::post(ioc, [w = std::move(w), c = std::move(c)]() mutable { w(std::move(c)); });
                return;
            }
            c->close();
        }
        if (p.out < opts.max_connections) {
            ++p.out;
            auto c = std::make_shared<connection>(opts.faults);
            c->origin = origin;
            asio::post(ioc, [w = std::move(w), c = std::move(c)]() mutable { w(std::move(c)); });
            return;
        }
        p.waiters.push_back(std::move(w));
    }
    /// Returns a connection to its pool: kept for reuse when `reusable`, else closed; either way
    /// the next waiter gets a connection.
    void release(std::shared_ptr<connection> c, bool reusable) {
        if (closed) {
            c->close();
            return;
        }
        auto it = pools.find(c->origin);
        if (it == pools.end()) {  // cannot happen: every connection came from its pool
            c->close();
            return;
        }
        auto& p = it->second;
        --p.out;
        if (!reusable || !c->connected) {
            c->close();
            c = std::make_shared<connection>(opts.faults);
            c->origin = it->first;
        } else {
            c->lowest().expires_never();
            c->idle_since = std::chrono::steady_clock::now();
        }
        if (!p.waiters.empty()) {
            auto w = std::move(p.waiters.front());
            p.waiters.pop_front();
            ++p.out;
            asio::post(ioc, [w = std::move(w), c = std::move(c)]() mutable { w(std::move(c)); });
        } else if (c->connected) {
            p.idle.push_back(std::move(c));
        } else if (p.out == 0 && p.idle.empty()) {
            pools.erase(it);
        }
    }
    /// Closes the idle connections of an origin (after one of them turned out to be stale).
    void drop_idle(const std::string& origin) {
        auto it = pools.find(origin);
        if (it == pools.end()) return;
        for (auto& c : it->second.idle) c->close();
        it->second.idle.clear();
    }
    void shutdown();
};

namespace http_net {

using client = http_client::state;
using outcome = http::response;

class exchange : public std::enable_shared_from_this<exchange> {
public:
    using kind = http::request::kind;
    using done_fn = std::function<void(outcome)>;

    exchange(std::shared_ptr<client> c, http::request req, done_fn done)
        : client_(std::move(c)), kind_(req.what), first_url_(req.target), url_(req.target), off_(req.off),
          len_(req.len), known_size_(req.known_size), body_limit_(req.body_limit),
          authorization_(std::move(req.authorization)), report_unauthorized_(req.report_unauthorized),
          done_(std::move(done)), deadline_(req.deadline), timer_(client_->ioc), deadline_timer_(client_->ioc),
          resolver_(client_->ioc) {
        if (client_->opts.faults) client_->opts.faults->exchange_born();
    }
    ~exchange() {
        if (client_->opts.faults) client_->opts.faults->exchange_died();
    }
    exchange(const exchange&) = delete;
    exchange& operator=(const exchange&) = delete;

    void start() {
        if (deadline_ != std::chrono::steady_clock::time_point::max()) {
            if (deadline_ <= std::chrono::steady_clock::now()) return deliver(error_outcome(-ETIMEDOUT));
            // One timer for the whole request, whatever step it is in: waiting for a pooled
            // connection, resolving, connecting, a slow body or a backoff. Closing the connection
            // ends the step's operation; its handler then finds the exchange gone.
            arm_deadline();
        }
        if (kind_ == kind::fetch) {
            out_ = try_make_fetch_buffer(len_);
            if (!out_) return deliver(error_outcome(-ENOMEM));
        }
        method_ = kind_ == kind::stat ? method::head : kind_ == kind::fetch ? method::range_get : method::get;
        next_hop();
    }

    void arm_deadline() {
        deadline_timer_.expires_at(deadline_);
        deadline_timer_.async_wait([self = shared_from_this()](error_code ec) {
            if (ec || self->gone()) return;
            self->resolver_.cancel();
            self->fail({-ETIMEDOUT, fmt::format("deadline reached after {} attempt(s)", self->attempt_ + 1)});
        });
    }

    /// Client shutdown: stop everything; no callback will be delivered.
    void abort() {
        aborted_ = true;
        body_then_ = nullptr;  // it holds a reference to us
        timer_.cancel();
        deadline_timer_.cancel();
        resolver_.cancel();
        if (conn_) conn_->close();
    }

private:
    enum class method { head, probe, range_get, get };

    bool gone() const { return aborted_ || client_->closed || delivered_; }

    using fault_op = http::fault_counter::op;
    // Tests only (http_options::faults): the error to post instead of starting operation `what`,
    // or none. `eof` is what the peer closing looks like at this step on plain TCP; for a `read`
    // through TLS it is stream_truncated (no close_notify). In production: one null pointer check.
    template <class Eof>
    error_code injected(fault_op what, Eof eof, bool read = false) {
        if (!client_->opts.faults) [[likely]] return {};
        return inject(what, error_code(eof), read);
    }
    error_code inject(fault_op what, error_code eof, bool read) {
        auto& f = *client_->opts.faults;
        if (!f.fail(what, reused_)) return {};
        switch (f.kind()) {
        case http::fault_counter::error::aborted: return asio::error::operation_aborted;
        case http::fault_counter::error::reset: return asio::error::connection_reset;
        case http::fault_counter::error::timeout: return beast::error::timeout;
        case http::fault_counter::error::eof: break;
        case http::fault_counter::error::deadline:
            // The operation starts; the request's deadline passes now, while it is in flight.
            if (const auto now = std::chrono::steady_clock::now();
                deadline_ != std::chrono::steady_clock::time_point::max() && deadline_ > now) {
                deadline_ = now;
                arm_deadline();  // cancels the wait armed in start() (its handler sees the error)
            }
            return {};
        }
        return read && conn_ && conn_->tls ? error_code(ssl::error::stream_truncated) : eof;
    }

    std::string what_request() const {
        const char* m = method_ == method::head ? "HEAD" : "GET";
        if (method_ == method::range_get) return fmt::format("{} {} [{}, +{})", m, url_.redacted(), off_, len_);
        if (method_ == method::probe) return fmt::format("{} {} [0, +1)", m, url_.redacted());
        return fmt::format("{} {}", m, url_.redacted());
    }

    // ---- connection --------------------------------------------------------------------------

    void next_hop() {
        parser_.reset();
        received_ = 0;
        client_->acquire(url_.origin(), [self = shared_from_this()](std::shared_ptr<connection> c) {
            self->on_connection(std::move(c));
        });
    }

    void on_connection(std::shared_ptr<connection> c) {
        if (gone()) {
            client_->release(std::move(c), false);  // gives the slot back (or just closes, once closed)
            return;
        }
        conn_ = std::move(c);
        reused_ = conn_->connected;
        if (conn_->connected) return send();
        resolve();
    }

    void resolve() {
        if (auto ec = injected(fault_op::resolve, asio::error::eof)) {
            return asio::post(client_->ioc, [self = shared_from_this(), ec] { self->on_resolved(ec, {}); });
        }
        timer_.expires_after(client_->opts.timeout);
        resolve_timed_out_ = false;
        timer_.async_wait([self = shared_from_this()](error_code ec) {
            if (ec) return;
            self->resolve_timed_out_ = true;
            self->resolver_.cancel();
        });
        const auto& px = client_->proxy;
        resolver_.async_resolve(px ? px->host : url_.host, std::to_string(px ? px->port : url_.port),
                                tcp::resolver::numeric_service,
                                [self = shared_from_this()](error_code ec, tcp::resolver::results_type results) {
                                    self->timer_.cancel();
                                    self->on_resolved(self->resolve_timed_out_ ? beast::error::timeout : ec,
                                                      std::move(results));
                                });
    }

    void on_resolved(error_code ec, tcp::resolver::results_type results) {
        if (gone()) return;
        if (ec) return transport_failed(ec, step_name("resolve"));
        auto& c = *conn_;
        if (url_.tls()) {
            c.tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(client_->ioc, client_->tls_ctx());
            if (!client_->opts.insecure) {
                // Host name (or IP address) checks inside OpenSSL's own chain verification: the
                // same X509_check_host/_ip as asio's ssl::host_name_verification, but a mismatch
                // is reported as such ("hostname mismatch") instead of a bare verify failure.
                c.tls->set_verify_mode(ssl::verify_peer);
                X509_VERIFY_PARAM* param = SSL_get0_param(c.tls->native_handle());
                X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                const int ok = url_.host_is_ip() ? X509_VERIFY_PARAM_set1_ip_asc(param, url_.host.c_str())
                                                 : X509_VERIFY_PARAM_set1_host(param, url_.host.c_str(), 0);
                if (ok != 1) {
                    return transport_failed(
                        error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()), "TLS setup");
                }
            }
            // SNI carries host names only (RFC 6066 section 3: never an IP literal).
            if (!url_.host_is_ip() && !SSL_set_tlsext_host_name(c.tls->native_handle(), url_.host.c_str())) {
                return transport_failed(error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()),
                                        "TLS setup");
            }
        } else {
            c.tcp = std::make_unique<beast::tcp_stream>(client_->ioc);
        }
        ++client_->connections_opened;
        if (auto f = injected(fault_op::connect, asio::error::eof)) {
            return asio::post(client_->ioc, [self = shared_from_this(), f] { self->on_connected(f); });
        }
        c.lowest().expires_after(client_->opts.timeout);
        c.lowest().async_connect(results,
                                 [self = shared_from_this(), keep = conn_](error_code e, const tcp::endpoint&) {
                                     self->on_connected(e);
                                 });
    }

    void on_connected(error_code ec) {
        if (gone()) return;
        if (ec) return transport_failed(ec, step_name("connect"));
        if (!conn_->tls) {
            conn_->connected = true;
            return send();
        }
        if (client_->proxy) return tunnel();
        handshake();
    }

    // "connect" or "connect to proxy http://user:***@host:port": proxy problems name the proxy.
    std::string step_name(std::string_view step) const {
        if (!client_->proxy) return std::string(step);
        return fmt::format("{} to proxy {}", step, client_->proxy->shown);
    }

    // CONNECT host:port through the proxy (RFC 9110 section 9.3.6), then TLS with the origin over
    // the tunnel. The request carries the proxy's credentials only: the origin's Authorization
    // travels inside the TLS session. Its own buffer and parser: the proxy's answer is a header
    // (a 2xx to CONNECT has no body, which Beast cannot know, hence skip()), and nothing may follow
    // it before the origin speaks TLS.
    void tunnel() {
        auto ctx = std::make_shared<tunnel_io>();
        ctx->req.method(bhttp::verb::connect);
        ctx->req.target(url_.host.find(':') != std::string::npos
                            ? "[" + url_.host + "]:" + std::to_string(url_.port)
                            : url_.host + ":" + std::to_string(url_.port));
        ctx->req.version(11);
        ctx->req.set(bhttp::field::host, ctx->req.target());
        ctx->req.set(bhttp::field::user_agent, "erofs-blobd/" BLOBD_VERSION);
        if (!client_->proxy->authorization.empty()) {
            ctx->req.set(bhttp::field::proxy_authorization, client_->proxy->authorization);
        }
        ctx->parser.skip(true);
        ++client_->requests_sent;
        auto& tcp_s = conn_->lowest();
        tcp_s.expires_after(client_->opts.timeout);
        bhttp::async_write(tcp_s, ctx->req, [self = shared_from_this(), keep = conn_, ctx](error_code ec, std::size_t) {
            if (self->gone()) return;
            if (ec) return self->transport_failed(ec, self->step_name("CONNECT"));
            self->conn_->lowest().expires_after(self->client_->opts.timeout);
            bhttp::async_read_header(self->conn_->lowest(), ctx->buf, ctx->parser,
                                     [self, keep, ctx](error_code e, std::size_t) { self->on_tunnel(e, *ctx); });
        });
    }

    void on_tunnel(error_code ec, const tunnel_io& t) {
        if (gone()) return;
        if (ec) return transport_failed(ec, step_name("CONNECT"));
        const unsigned status = t.parser.get().result_int();
        if (status / 100 != 2 || t.buf.size() != 0) {
            const auto& px = client_->proxy->shown;
            status_ = status;
            if (status == 407) {
                return retry_or_fail({-EACCES, fmt::format("proxy {} refused CONNECT {}: 407 (proxy authentication {})",
                                                           px, url_.authority(),
                                                           client_->proxy->authorization.empty() ? "required" : "failed")},
                                     false);
            }
            if (status / 100 == 2) return retry_or_fail({-EIO, fmt::format("proxy {}: bytes after the CONNECT answer", px)}, false);
            // 502/503/504: the proxy could not reach the origin (or is overloaded): retried as a 5xx.
            return retry_or_fail({status >= 500 ? -EIO : http::status_errno(status),
                                  fmt::format("proxy {} refused CONNECT {}: HTTP status {}", px, url_.authority(), status)},
                                 status >= 500);
        }
        handshake();
    }

    void handshake() {
        if (auto f = injected(fault_op::handshake, ssl::error::stream_truncated)) {
            return asio::post(client_->ioc, [self = shared_from_this(), f] { self->on_handshake(f); });
        }
        conn_->lowest().expires_after(client_->opts.timeout);
        conn_->tls->async_handshake(ssl::stream_base::client,
                                    [self = shared_from_this(), keep = conn_](error_code e) { self->on_handshake(e); });
    }

    void on_handshake(error_code e) {
        if (gone()) return;
        if (e) {
            const long v = SSL_get_verify_result(conn_->tls->native_handle());
            if (v != X509_V_OK) {
                return transport_failed(e, fmt::format("TLS handshake ({})", X509_verify_cert_error_string(v)));
            }
            return transport_failed(e, "TLS handshake");
        }
        conn_->connected = true;
        send();
    }

    // ---- request and response header ---------------------------------------------------------

    void send() {
        req_ = {};
        req_.method(method_ == method::head ? bhttp::verb::head : bhttp::verb::get);
        // Through a proxy, a plain-http request names its origin (absolute-form, RFC 9112 section
        // 3.2.2), which is what lets a caching proxy (Dragonfly's dfdaemon, squid) serve it.
        const bool forward = client_->proxy && !url_.tls();
        req_.target(forward ? url_.origin() + url_.target() : url_.target());
        req_.version(11);
        if (forward && !client_->proxy->authorization.empty()) {
            req_.set(bhttp::field::proxy_authorization, client_->proxy->authorization);
        }
        req_.set(bhttp::field::host, url_.authority());
        req_.set(bhttp::field::user_agent, "erofs-blobd/" BLOBD_VERSION);
        req_.set(bhttp::field::accept_encoding, "identity");
        if (method_ == method::range_get) req_.set(bhttp::field::range, http::range_header(off_, len_));
        if (method_ == method::probe) req_.set(bhttp::field::range, http::range_header(0, 1));
        // Credentials belong to the origin they were issued for: a redirect elsewhere (blob
        // storage, a CDN) gets none.
        if (!authorization_.empty() && url_.origin() == first_url_.origin()) {
            req_.set(bhttp::field::authorization, authorization_);
        }
        req_.keep_alive(true);
        ++client_->requests_sent;
        if (auto ec = injected(fault_op::write, asio::error::broken_pipe)) {
            return asio::post(client_->ioc, [self = shared_from_this(), ec] { self->on_sent(ec); });
        }
        conn_->lowest().expires_after(client_->opts.timeout);
        with_stream(*conn_, [&](auto& s) {
            bhttp::async_write(s, req_, [self = shared_from_this(), keep = conn_](error_code ec, std::size_t) {
                self->on_sent(ec);
            });
        });
    }

    void on_sent(error_code ec) {
        if (gone()) return;
        if (ec) return transport_failed(ec, "write");
        parser_.emplace();
        parser_->header_limit(header_limit);
        // The limit is ours to enforce, per answer (see read_body). Not boost::none: Boost 1.74's
        // parser compares Content-Length against the optional itself, and every length > none.
        parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
        if (method_ == method::head) parser_->skip(true);
        if (auto f = injected(fault_op::read_header, bhttp::error::end_of_stream, true)) {
            return asio::post(client_->ioc, [self = shared_from_this(), f] { self->on_header(f); });
        }
        conn_->lowest().expires_after(client_->opts.timeout);
        with_stream(*conn_, [&](auto& s) {
            bhttp::async_read_header(s, conn_->buf, *parser_,
                                     [self = shared_from_this(), keep = conn_](error_code e, std::size_t) {
                                         self->on_header(e);
                                     });
        });
    }

    void on_header(error_code ec) {
        if (gone()) return;
        if (ec) return transport_failed(ec, "read header");
        const auto& res = parser_->get();
        const unsigned status = res.result_int();
        status_ = status;
        lg.debug("{}: {}", what_request(), status);

        if (status == 407 && client_->proxy && !url_.tls()) {  // from the proxy, not the origin
            return drain_then([self = shared_from_this()] {
                const auto& px = *self->client_->proxy;
                self->fail({-EACCES, fmt::format("proxy {}: 407 (proxy authentication {})", px.shown,
                                                 px.authorization.empty() ? "required" : "failed")});
            });
        }
        if (http::is_redirect(status)) return redirect(field(res, bhttp::field::location));
        if (status == 401 && report_unauthorized_) {
            outcome o = error_outcome(-EACCES);
            for (auto it = res.find(bhttp::field::www_authenticate);
                 it != res.end() && it->name() == bhttp::field::www_authenticate; ++it) {
                o.challenges.emplace_back(sv(it->value()));
            }
            lg.debug("{}: 401, {} challenge(s)", what_request(), o.challenges.size());
            return drain_then([self = shared_from_this(), o = std::move(o)]() mutable { self->deliver(std::move(o)); });
        }
        if (http::is_retryable_status(status)) {
            return drain_then([self = shared_from_this(), status] {
                self->retry_or_fail({-EIO, fmt::format("HTTP status {}", status)}, true);
            });
        }
        switch (method_) {
        case method::head: return on_head(status);
        case method::probe: return on_probe(status);
        case method::range_get: return on_range(status);
        case method::get: return on_get(status);
        }
    }

    // A small document (a token answer): 200 with at most body_limit_ bytes.
    void on_get(unsigned status) {
        if (status != 200) {
            return drain_then([self = shared_from_this(), status] {
                self->fail({http::status_errno(status), fmt::format("HTTP status {}", status)});
            });
        }
        const auto& res = parser_->get();
        if (auto enc = field(res, bhttp::field::content_encoding); enc && !http::is_identity_encoding(*enc)) {
            close_connection();
            return fail({-EIO, "compressed answer (Content-Encoding) refused"});
        }
        const auto length = field(res, bhttp::field::content_length);
        const auto cl = length ? http::parse_content_length(*length) : std::nullopt;
        if ((length && !cl) || (cl && *cl > body_limit_)) {
            close_connection();
            return fail({-EIO, fmt::format("answer larger than {} bytes (or a bad Content-Length)", body_limit_)});
        }
        collect_ = true;
        read_body(false, [self = shared_from_this()] {
            self->release_connection();
            outcome o;
            o.status = self->status_;
            o.body = std::move(self->collected_);
            self->deliver(std::move(o));
        });
    }

    void on_head(unsigned status) {
        const auto& res = parser_->get();
        if (auto size = http::size_from_head(status, field(res, bhttp::field::content_length))) {
            return drain_then([self = shared_from_this(), n = *size] { self->deliver(self->size_outcome(n)); });
        }
        if (status == 200 || status == 403 || status == 405 || status == 501) {
            // HEAD refused (or no length): ask for the first byte instead; its Content-Range has the size.
            lg.debug("{}: status {}, probing with a range GET", what_request(), status);
            return drain_then([self = shared_from_this()] {
                self->method_ = method::probe;
                self->next_hop();
            });
        }
        drain_then([self = shared_from_this(), status] {
            self->fail({http::status_errno(status), fmt::format("HTTP status {}", status)});
        });
    }

    void on_probe(unsigned status) {
        const auto& res = parser_->get();
        auto size = http::size_from_probe(status, field(res, bhttp::field::content_range),
                                          field(res, bhttp::field::content_length));
        if (!size) {
            return drain_then([self = shared_from_this(), f = size.error()] { self->fail(f); });
        }
        // A 200 here carries the whole blob: drain_then() reads it only if small, else closes.
        drain_then([self = shared_from_this(), n = *size] { self->deliver(self->size_outcome(n)); });
    }

    void on_range(unsigned status) {
        const auto& res = parser_->get();
        auto plan = http::plan_range_body(status, field(res, bhttp::field::content_range),
                                          field(res, bhttp::field::content_length),
                                          field(res, bhttp::field::content_encoding), off_, len_, known_size_,
                                          client_->opts.body_limit);
        if (!plan) {
            if (status != 200 && status != 206) {  // an error status: its body is harmless to drain
                return drain_then([self = shared_from_this(), f = plan.error()] { self->fail(f); });
            }
            close_connection();
            return fail(plan.error());
        }
        plan_ = *plan;
        if (status == 200) lg.debug("{}: server ignores Range, taking the slice of a whole-body answer", what_request());
        // The common case, a 206 for exactly the range asked: the body *is* the slice, so the parser
        // writes it straight into out_ (no scratch copy), given at most the plan's limit, so it
        // cannot overflow; past that, read_body_some() falls back to the scratch path.
        direct_ = status == 206 && plan_.skip == 0 && plan_.take == len_ && plan_.limit == len_;
        read_body(false, [self = shared_from_this()] { self->on_range_body(); });
    }

    void on_range_body() {
        if (auto ok = http::check_body_end(plan_, received_); !ok) {
            close_connection();
            return fail(ok.error());
        }
        out_->filled = len_;
        release_connection();
        outcome o;
        o.status = status_;
        o.data = std::move(out_);
        deliver(std::move(o));
    }

    // ---- bodies ------------------------------------------------------------------------------

    // Reads the body: for a direct fetch (see on_range), straight into out_; otherwise through a
    // scratch buffer, for a fetch copying the planned slice into out_, for `discard` dropping it
    // (and giving up beyond drain_limit). Then runs `then`. The whole body must arrive within one
    // timeout.
    void read_body(bool discard, std::function<void()> then) {
        discard_ = discard;
        if (discard_ || collect_) direct_ = false;
        body_then_ = std::move(then);
        received_ = 0;
        raw_complete_ = false;
        if (!direct_ && scratch_.empty()) scratch_.resize(scratch_size);
        conn_->lowest().expires_after(client_->opts.timeout);
        if (parser_->is_done()) return body_done();
        if (direct_ && length_delimited_to_limit()) return start_raw_body();
        read_body_some();
    }

    // A direct body with a Content-Length of exactly the plan's limit, not chunked: the body is
    // the next plan_.limit bytes on the connection. Those are read from the stream straight into
    // out_, past the parser, which would read them into the connection's buffer first and copy
    // them from there (a memmove of every body byte: 4.6 % of all CPU in bench_http_throughput
    // --daemon-only).
    bool length_delimited_to_limit() const {
        if (parser_->chunked()) return false;
        const auto length = field(parser_->get(), bhttp::field::content_length);
        const auto cl = length ? http::parse_content_length(*length) : std::nullopt;
        return cl && *cl == plan_.limit;
    }

    void start_raw_body() {
        // What the header read already pulled in of the body.
        auto& b = conn_->buf;
        const std::size_t have = std::min<std::size_t>(b.size(), plan_.limit);
        if (have > 0) std::memcpy(out_->data(), b.data().data(), have);
        b.consume(have);
        received_ = have;
        read_raw_some();
    }

    void read_raw_some() {
        if (received_ >= plan_.limit) {
            raw_complete_ = true;
            return body_done();
        }
        if (auto ec = injected(fault_op::read_body, asio::error::eof, true)) {
            return asio::post(client_->ioc, [self = shared_from_this(), ec] { self->on_raw_some(ec, 0); });
        }
        with_stream(*conn_, [&](auto& s) {
            s.async_read_some(asio::buffer(out_->data() + received_, plan_.limit - received_),
                              [self = shared_from_this(), keep = conn_](error_code ec, std::size_t n) {
                                  self->on_raw_some(ec, n);
                              });
        });
    }

    void on_raw_some(error_code ec, std::size_t n) {
        if (gone()) return;
        received_ += n;
        if (ec) {
            // The end of the stream before the whole body: a short answer, as the parser's
            // partial_message would say. At the very end, the connection is done for.
            if (received_ < plan_.limit) return transport_failed(ec, "read body");
            conn_->connected = false;
        }
        read_raw_some();
    }

    void read_body_some() {
        auto& body = parser_->get().body();
        if (direct_ && received_ >= plan_.limit) {
            // Full, yet the parser is not done: a close-delimited body may still end right here
            // (EOF), anything more is too long; the scratch path tells the two apart.
            direct_ = false;
            if (scratch_.empty()) scratch_.resize(scratch_size);
        }
        if (direct_) {
            body.data = out_->data() + received_;
            body.size = plan_.limit - received_;
        } else {
            body.data = scratch_.data();
            body.size = scratch_.size();
        }
        body_capacity_ = body.size;
        if (auto ec = injected(discard_ ? fault_op::drain_body : fault_op::read_body, bhttp::error::partial_message,
                               true)) {
            return asio::post(client_->ioc, [self = shared_from_this(), ec] { self->on_body_some(ec); });
        }
        with_stream(*conn_, [&](auto& s) {
            bhttp::async_read(s, conn_->buf, *parser_,
                              [self = shared_from_this(), keep = conn_](error_code ec, std::size_t) {
                                  self->on_body_some(ec);
                              });
        });
    }

    void on_body_some(error_code ec) {
        if (gone()) return;
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec) {
            if (discard_) {  // only keep-alive was at stake
                close_connection();
                return run_body_then();
            }
            return transport_failed(ec, "read body");
        }
        const std::size_t n = body_capacity_ - parser_->get().body().size;
        if (direct_) {
            received_ += n;  // already in place: read_body_some() bounded it by plan_.limit
        } else if (discard_) {
            received_ += n;
            if (received_ > drain_limit) {
                close_connection();
                return run_body_then();
            }
        } else if (collect_) {
            if (collected_.size() + n > body_limit_) {
                close_connection();
                return fail({-EIO, fmt::format("answer larger than {} bytes", body_limit_)});
            }
            collected_.append(scratch_.data(), n);
            received_ += n;
        } else {
            if (received_ + n > plan_.limit) {
                close_connection();
                return fail({-EIO, fmt::format("body longer than the {} bytes expected", plan_.limit)});
            }
            // Copy the part of [received_, received_+n) that falls in [skip, skip+take).
            const std::uint64_t lo = std::max(received_, plan_.skip);
            const std::uint64_t hi = std::min(received_ + n, plan_.skip + plan_.take);
            if (lo < hi) {
                std::memcpy(out_->data() + (lo - plan_.skip), scratch_.data() + (lo - received_), hi - lo);
            }
            received_ += n;
        }
        if (parser_->is_done()) return body_done();
        read_body_some();
    }

    void body_done() {
        if (discard_) release_connection();
        run_body_then();
    }

    void run_body_then() {
        auto then = std::move(body_then_);
        body_then_ = nullptr;
        then();
    }

    // Drops the body of an answer we do not use, keeping the connection when that is cheap.
    void drain_then(std::function<void()> then) {
        if (parser_->is_done()) {  // HEAD, or no body
            release_connection();
            return then();
        }
        // From the header rather than parser_->content_length(): GCC 12 at -O2 with ASan warns
        // (falsely) about the boost::optional that one returns.
        const auto length = field(parser_->get(), bhttp::field::content_length);
        const auto cl = length ? http::parse_content_length(*length) : std::nullopt;
        if (cl && *cl > drain_limit) {
            close_connection();
            return then();
        }
        read_body(true, std::move(then));
    }

    // ---- outcomes ----------------------------------------------------------------------------

    bool reusable() const {
        // After a raw body (start_raw_body) the parser never saw the body, so it is not done;
        // raw_complete_ says the whole body was read all the same.
        return conn_ && conn_->connected && parser_ && (parser_->is_done() || raw_complete_) &&
               parser_->keep_alive() && conn_->buf.size() == 0;
    }

    void release_connection() {
        if (!conn_) return;
        const bool keep = reusable();
        ++conn_->uses;
        client_->release(std::move(conn_), keep);
        conn_.reset();
    }

    void close_connection() {
        if (!conn_) return;
        conn_->close();
        client_->release(std::move(conn_), false);
        conn_.reset();
    }

    void redirect(std::optional<std::string_view> location) {
        if (!location) {
            return drain_then([self = shared_from_this()] { self->fail({-EIO, "redirect without a Location"}); });
        }
        auto next = http::resolve_location(url_, *location);
        if (!next) {
            return drain_then([self = shared_from_this(), why = next.error()] {
                self->fail({-EIO, "bad redirect Location: " + why});
            });
        }
        if (redirects_ >= client_->opts.max_redirects) {
            return drain_then([self = shared_from_this()] {
                self->fail({-EIO, fmt::format("more than {} redirects", self->client_->opts.max_redirects)});
            });
        }
        if (url_.tls() && !next->tls()) {
            return drain_then([self = shared_from_this(), to = next->redacted()] {
                self->fail({-EIO, "redirect from https to plain http refused: " + to});
            });
        }
        ++redirects_;
        lg.debug("{}: redirected to {}", what_request(), next->redacted());
        drain_then([self = shared_from_this(), u = std::move(*next)]() mutable {
            self->url_ = std::move(u);
            self->next_hop();
        });
    }

    void transport_failed(error_code ec, std::string_view step) {
        if (gone()) return;
        const bool response_started = parser_ && parser_->got_some();
        const bool was_reused = reused_;
        if (conn_) {
            const std::string origin = conn_->origin;
            close_connection();
            // A kept-alive connection the server had already closed fails before any answer: that
            // says nothing about the server. Retry at once on a fresh connection, once.
            if (was_reused && !response_started && !stale_retry_used_ && ec != beast::error::timeout) {
                stale_retry_used_ = true;
                client_->drop_idle(origin);
                lg.debug("{}: reused connection failed ({}: {}); retrying on a new one", what_request(), step,
                         describe_error(ec));
                return next_hop();
            }
        }
        const auto t = classify(ec);
        retry_or_fail({t.err, fmt::format("{}: {}", step, describe_error(ec))}, t.retryable);
    }

    void retry_or_fail(http::failure f, bool retryable) {
        if (gone()) return;
        close_connection();
        if (!retryable || attempt_ >= client_->opts.retries) {
            if (retryable && attempt_ > 0) f.what += fmt::format(" (after {} attempts)", attempt_ + 1);
            return fail(std::move(f));
        }
        const auto delay = std::chrono::milliseconds(
            http::backoff_ms(static_cast<std::uint64_t>(client_->opts.backoff.count()), attempt_ + 1));
        if (std::chrono::steady_clock::now() + delay >= deadline_) {
            // A retry that cannot finish in time only adds load to a server in trouble.
            f.what += fmt::format(" (no retry: the deadline comes first, after {} attempt(s))", attempt_ + 1);
            return fail(std::move(f));
        }
        ++attempt_;
        unsigned suppressed = 0;
        if (warn_limit.allow(suppressed)) {
            lg.warn("{}: {}; retry {}/{} in {} ms{}", what_request(), f.what, attempt_, client_->opts.retries,
                    delay.count(), log::suppressed_note(suppressed));
        }
        timer_.expires_after(delay);
        timer_.async_wait([self = shared_from_this()](error_code ec) {
            if (ec || self->gone()) return;
            // Start over from the blob URL: a redirect target (a signed URL, say) may have expired.
            self->url_ = self->first_url_;
            self->redirects_ = 0;
            self->next_hop();
        });
    }

    void fail(http::failure f) {
        if (gone()) return;
        close_connection();
        if (f.err != -ENOENT) {
            unsigned suppressed = 0;
            if (warn_limit.allow(suppressed)) {
                lg.err("{}: {}{}", what_request(), f.what,
                       log::suppressed_note(suppressed));
            }
        } else {
            lg.debug("{}: not found", what_request());
        }
        deliver(error_outcome(f.err));
    }

    outcome error_outcome(int err) const {
        outcome o;
        o.err = err;
        o.status = status_;
        return o;
    }

    outcome size_outcome(std::uint64_t n) const {
        outcome o;
        o.status = status_;
        o.size = n;
        return o;
    }

    void deliver(outcome o) {
        if (delivered_) return;
        if (o.err == 0 && redirects_ > 0) o.redirected_to = url_;
        delivered_ = true;
        timer_.cancel();
        deadline_timer_.cancel();
        body_then_ = nullptr;  // a continuation left by a failed body read holds a reference to us
        client_->live.erase(this);
        if (client_->closed || aborted_) return;
        auto done = std::move(done_);
        done_ = nullptr;
        done(std::move(o));
    }

    std::shared_ptr<client> client_;
    kind kind_;
    method method_ = method::head;
    http::url first_url_, url_;
    std::uint64_t off_, len_;
    std::optional<std::uint64_t> known_size_;
    std::uint64_t body_limit_;
    std::string authorization_;
    bool report_unauthorized_;
    done_fn done_;
    std::chrono::steady_clock::time_point deadline_;
    asio::steady_timer timer_;           // resolve timeout, retry backoff
    asio::steady_timer deadline_timer_;  // the request's deadline, if it has one
    tcp::resolver resolver_;
    std::shared_ptr<connection> conn_;
    bhttp::request<bhttp::empty_body> req_;
    std::optional<bhttp::response_parser<bhttp::buffer_body>> parser_;
    std::vector<char> scratch_;
    std::shared_ptr<aligned_buffer> out_;
    bool direct_ = false;             // the body is read straight into out_ (exact 206)
    bool raw_complete_ = false;       // ... from the stream past the parser, and all of it arrived
    std::size_t body_capacity_ = 0;   // the parser's body buffer size at the last read
    http::body_plan plan_;
    std::uint64_t received_ = 0;
    bool discard_ = false;
    bool collect_ = false;       // kind::body: the body goes to collected_
    std::string collected_;
    unsigned status_ = 0;
    std::function<void()> body_then_;
    unsigned attempt_ = 0, redirects_ = 0;
    bool reused_ = false, stale_retry_used_ = false, resolve_timed_out_ = false;
    bool aborted_ = false, delivered_ = false;
};

}  // namespace http_net

void http_client::state::start(std::shared_ptr<exchange> ex) {
    if (closed) return;
    live[ex.get()] = ex;
    ex->start();
}

void http_client::state::shutdown() {
    closed = true;
    for (auto& [ptr, weak] : live) {
        if (auto ex = weak.lock()) ex->abort();
    }
    live.clear();
    for (auto& [origin, p] : pools) {
        for (auto& c : p.idle) c->close();
    }
    pools.clear();
}

// Not in the anonymous namespace: http_client::state declares it. Throws std::system_error
// (EINVAL) when ca_file cannot be loaded.
ssl::context make_tls_context(const http_options& o, const std::string& what) {
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (o.insecure) {
        ctx.set_verify_mode(ssl::verify_none);
        return ctx;
    }
    ctx.set_verify_mode(ssl::verify_peer);
    error_code ec;
    ctx.set_default_verify_paths(ec);
    if (ec) lg.warn("{}: cannot load the system CA store: {}", what, ec.message());
    if (!o.ca_file.empty()) {
        ctx.load_verify_file(o.ca_file, ec);
        if (ec) {
            throw std::system_error(EINVAL, std::generic_category(),
                                    fmt::format("{}: ca_file {}: {}", what, o.ca_file, ec.message()));
        }
    }
    return ctx;
}

// The same load_verify_file as make_tls_context, on a context without the system store (that is
// what costs the 44 ms): a file that passes here is one the client loads. read_small_file first,
// because OpenSSL would block on a FIFO and read a device forever.
std::optional<std::string> http::ca_file_error(const std::string& path) {
    constexpr std::size_t max_ca_file = 16 << 20;  // a full system bundle is about 200 KiB
    if (auto text = read_small_file(path, max_ca_file); !text) return text.error();
    ssl::context ctx(ssl::context::tls_client);
    error_code ec;
    ctx.load_verify_file(path, ec);
    if (ec) return fmt::format("{}: not a PEM file of CA certificates ({})", path, ec.message());
    return std::nullopt;
}

bool http::fault_counter::fail(op what, bool reused) {
    std::uint64_t n;
    bool now;
    {
        std::lock_guard lk(mu_);
        n = trace_.size() + 1;
        now = fail_at_ != 0 && (n == fail_at_ || (sticky_ && n > fail_at_));
        trace_.push_back({what, reused, now});
    }
    if (observer_) observer_(n, what);
    return now;
}

std::uint64_t http::fault_counter::count() const {
    std::lock_guard lk(mu_);
    return trace_.size();
}

bool http::fault_counter::fired() const {
    std::lock_guard lk(mu_);
    return std::any_of(trace_.begin(), trace_.end(), [](const record& r) { return r.failed; });
}

std::vector<http::fault_counter::record> http::fault_counter::trace() const {
    std::lock_guard lk(mu_);
    return trace_;
}

http_client::http_client(asio::io_context& io, http_options opts, const std::string& what) {
    opts.max_connections = std::max(1u, opts.max_connections);
    if (opts.insecure) {
        lg.warn("{}: TLS certificate and host name verification are DISABLED (insecure: true)", what);
    }
    // An OpenSSL context with the system CA store costs about 4 MiB and 44 ms (measured on Debian
    // 12). A plain-http source without ca_file needs it only if a server redirects it to https:
    // made then. Every other source makes it now, so that a bad ca_file stops the daemon at start.
    std::optional<ssl::context> ctx;
    const auto base = http::parse_url(opts.url);
    if (!base || base->tls() || !opts.ca_file.empty()) ctx.emplace(make_tls_context(opts, what));
    std::optional<http::proxy> proxy;
    if (!opts.proxy.empty()) {
        auto p = http::parse_proxy(opts.proxy);
        if (!p) throw std::system_error(EINVAL, std::generic_category(), what + ": proxy: " + p.error());
        proxy = std::move(*p);
    }
    lg.info("source {}: timeout {} ms, {} retries, {} connections per host{}", what, opts.timeout.count(), opts.retries,
            opts.max_connections, proxy ? ", through proxy " + proxy->shown : "");
    s_ = std::make_shared<state>(io, std::move(opts), std::move(ctx), what);
    s_->proxy = std::move(proxy);
}

http_client::~http_client() = default;

void http_client::start(http::request req, done_fn done) {
    // Posted, so that no callback ever runs inline from start() (not even an allocation failure).
    asio::post(s_->ioc, [s = s_, ex = std::make_shared<exchange>(s_, std::move(req), std::move(done))]() mutable {
        s->start(std::move(ex));
    });
}

void http_client::shutdown() { s_->shutdown(); }

std::uint64_t http_client::connections_opened() const noexcept { return s_->connections_opened.load(); }
std::uint64_t http_client::requests_sent() const noexcept { return s_->requests_sent.load(); }

}  // namespace blobd
