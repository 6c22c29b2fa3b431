#include "daemon/metrics_listener.hpp"

#include <chrono>
#include <set>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "base/log.hpp"
#include "config/config.hpp"
#include "io/event_loop.hpp"
#include "io/net_thread.hpp"

namespace blobd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
const log::logger lg{"metrics"};
constexpr auto io_timeout = std::chrono::seconds(5);
constexpr std::uint32_t max_header_bytes = 8192;
constexpr std::size_t max_connections = 16;

// What the loop thread needs to answer a render request. It holds no Asio object, so a render
// still queued on the loop after stop() may outlive the net thread safely: `alive` says not to
// touch the context any more.
struct loop_side {
    bool alive = true;
    std::function<std::string()> render;
    asio::io_context* ioc = nullptr;
    event_loop* loop = nullptr;
};

struct session;

// Net-thread state: the acceptor and the open connections (so that stop() can close them).
struct net_side {
    explicit net_side(asio::io_context& ioc) : acceptor(ioc) {}
    tcp::acceptor acceptor;
    std::set<std::shared_ptr<session>> sessions;
    std::shared_ptr<loop_side> loop;  // read only for its pointers; `alive` is the loop's
};

struct session : std::enable_shared_from_this<session> {
    session(tcp::socket s, std::shared_ptr<net_side> n) : stream(std::move(s)), net(std::move(n)) {}

    void start() {
        parser.emplace();
        parser->header_limit(max_header_bytes);
        parser->body_limit(0);
        stream.expires_after(io_timeout);
        http::async_read(stream, buffer, *parser, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->on_read(ec);
        });
    }

    void on_read(beast::error_code ec) {
        if (ec) return finish();  // timeout, oversized header, bad syntax or the peer went away
        const auto& req = parser->get();
        if (req.method() != http::verb::get) {
            res.result(http::status::method_not_allowed);
            res.set(http::field::allow, "GET");
            return reply("only GET is served\n", "text/plain; charset=utf-8");
        }
        if (req.target() != "/metrics") {
            res.result(http::status::not_found);
            return reply("not found; the metrics are at /metrics\n", "text/plain; charset=utf-8");
        }
        // Render on the loop thread (the counters live there), then come back here to write.
        auto ls = net->loop;
        std::weak_ptr<session> weak = shared_from_this();
        ls->loop->post([ls, weak] {
            if (!ls->alive) return;
            std::string text = ls->render();
            asio::post(*ls->ioc, [weak, text = std::move(text)]() mutable {
                if (auto self = weak.lock()) {
                    self->res.result(http::status::ok);
                    self->reply(std::move(text), "text/plain; version=0.0.4; charset=utf-8");
                }
            });
        });
    }

    void reply(std::string body, const char* type) {
        res.version(11);
        res.set(http::field::server, "erofs-blobd");
        res.set(http::field::content_type, type);
        res.keep_alive(false);
        res.body() = std::move(body);
        res.prepare_payload();
        stream.expires_after(io_timeout);
        http::async_write(stream, res, [self = shared_from_this()](beast::error_code, std::size_t) { self->finish(); });
    }

    void finish() {
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream.close();
        net->sessions.erase(shared_from_this());
    }

    beast::tcp_stream stream;
    std::shared_ptr<net_side> net;
    beast::flat_buffer buffer{max_header_bytes};
    std::optional<http::request_parser<http::empty_body>> parser;
    http::response<http::string_body> res;
};

void accept_next(const std::shared_ptr<net_side>& n) {
    n->acceptor.async_accept([n](beast::error_code ec, tcp::socket s) {
        if (ec == asio::error::operation_aborted || !n->acceptor.is_open()) return;
        if (!ec) {
            if (n->sessions.size() >= max_connections) {
                beast::error_code ignored;
                s.close(ignored);  // a scraper needs one; more is a misbehaving client
            } else {
                auto sess = std::make_shared<session>(std::move(s), n);
                n->sessions.insert(sess);
                sess->start();
            }
        }
        // An accept error (EMFILE, ...) must not stop the listener for good.
        accept_next(n);
    });
}
}  // namespace

struct metrics_listener::impl {
    std::unique_ptr<net_thread> net;
    std::shared_ptr<net_side> ns;
    std::shared_ptr<loop_side> ls;
    std::uint16_t port = 0;
    bool stopped = false;
};

metrics_listener::metrics_listener(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

metrics_listener::~metrics_listener() { stop(); }

result<std::unique_ptr<metrics_listener>, std::string> metrics_listener::listen(event_loop& loop, const std::string& listen,
                                                                               std::function<std::string()> render) {
    auto addr = cfg::parse_loopback_listen(listen);
    if (!addr) return unexpected{"metrics.listen: " + addr.error()};
    auto i = std::make_unique<impl>();
    try {
        i->net = std::make_unique<net_thread>();
    } catch (const std::exception& e) {
        return unexpected{std::string("metrics.listen: cannot start the network thread: ") + e.what()};
    }
    i->ls = std::make_shared<loop_side>();
    i->ls->render = std::move(render);
    i->ls->ioc = &i->net->context();
    i->ls->loop = &loop;
    i->ns = std::make_shared<net_side>(i->net->context());
    i->ns->loop = i->ls;
    std::string error;
    i->net->run_sync([&] {
        beast::error_code ec;
        const tcp::endpoint ep(asio::ip::make_address(addr->host, ec), addr->port);
        auto& a = i->ns->acceptor;
        if (!ec) a.open(ep.protocol(), ec);
        if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) a.bind(ep, ec);
        if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            error = "metrics.listen: cannot listen on " + listen + ": " + ec.message();
            beast::error_code ignored;
            a.close(ignored);
            return;
        }
        i->port = a.local_endpoint(ec).port();
        accept_next(i->ns);
    });
    if (!error.empty()) {
        i->ns.reset();
        i->net->stop();
        return unexpected{error};
    }
    lg.info("serving Prometheus metrics on http://{}{}{}:{}/metrics", addr->host.find(':') != std::string::npos ? "[" : "",
            addr->host, addr->host.find(':') != std::string::npos ? "]" : "", i->port);
    return std::unique_ptr<metrics_listener>(new metrics_listener(std::move(i)));
}

std::uint16_t metrics_listener::port() const noexcept { return impl_->port; }

void metrics_listener::stop() {
    if (!impl_ || impl_->stopped) return;
    impl_->stopped = true;
    impl_->ls->alive = false;  // renders still queued on the loop do nothing now
    auto ns = impl_->ns;
    impl_->net->run_sync([ns] {
        beast::error_code ignored;
        ns->acceptor.close(ignored);
        auto open = std::move(ns->sessions);
        for (const auto& s : open) s->stream.close();
    });
    impl_->net->stop();
    // Handlers still queued hold the last references to sessions and to the acceptor's state;
    // they go with the context, before its services (net_thread's destructor).
    impl_->ns.reset();
    impl_->net.reset();
}

}  // namespace blobd
