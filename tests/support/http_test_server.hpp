// http_test_server: a deliberately simple HTTP/1.1 server on 127.0.0.1:<ephemeral port> for the
// HTTP fetcher's tests. Plain POSIX sockets, one thread per connection, keep-alive; the test's
// handler writes raw bytes, so it can misbehave in every way a real server might: wrong headers,
// short or long bodies, stalls, resets, redirects. serve_blob() is the well-behaved building block.
//
// Everything stops by itself: reads and stalls wake up every 50 ms to check for stop(), which the
// destructor calls; stop() shuts every socket down and joins every thread.
//
// Threading: the handler runs on the connection threads, possibly concurrently: whatever it
// shares with the test must be atomic or locked.
#pragma once

#include "tests/support/test_util.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace blobd::test {

struct http_request {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  ///< names lower-cased
    int connection = 0;  ///< 1-based number of the connection it came on
    int index = 0;       ///< 1-based number of the request, over the server's life
    std::optional<std::string> header(const std::string& lower_name) const;
};

class http_server;

/// The connection a request came on, for the handler to answer (or not) as it likes.
class http_conn {
public:
    /// Sends all of `bytes`; false once the peer is gone or the server stops.
    bool send(std::string_view bytes);
    /// Closes after what was sent (FIN); the server stops reading this connection.
    void close();
    /// Aborts the connection (RST: SO_LINGER 0, then close).
    void reset();
    /// Waits `d` (or until the server stops); false when cut short by stop().
    bool stall(std::chrono::milliseconds d);
    bool closed() const { return fd_ < 0; }

private:
    friend class http_server;
    http_conn(http_server& s, int fd) : server_(s), fd_(fd) {}
    void close_fd(bool rst);
    http_server& server_;
    int fd_;
};

class http_server {
public:
    using handler = std::function<void(const http_request&, http_conn&)>;
    explicit http_server(handler h);
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    std::uint16_t port() const { return port_; }
    /// "http://127.0.0.1:<port>" + path.
    std::string url(std::string_view path = "") const;
    int connections() const { return connections_.load(); }
    int requests() const { return requests_.load(); }
    /// Stops accepting, cuts every connection and joins the threads. Idempotent.
    void stop();
    bool stopping() const { return stop_.load(); }

private:
    friend class http_conn;
    void accept_loop();
    void serve(int fd, int conn_no);
    void forget_fd(int fd);

    handler handler_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> connections_{0}, requests_{0};
    std::thread acceptor_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::thread> threads_;
    std::vector<int> fds_;  // open connection sockets (guarded by mu_)
};

/// A status line plus headers plus the blank line: "HTTP/1.1 206 Partial Content\r\n...\r\n\r\n".
std::string response_head(int status, const std::vector<std::pair<std::string, std::string>>& headers);

/// A correct answer to GET or HEAD for `data`: 200, or 206 for one "bytes=a-b" Range (416 when it
/// cannot be satisfied), with Content-Length and keep-alive. `honour_range = false` answers every
/// GET with the whole body (as servers without Range support do).
void serve_blob(const http_request& r, http_conn& c, const std::string& data, bool honour_range = true);


}  // namespace blobd::test
