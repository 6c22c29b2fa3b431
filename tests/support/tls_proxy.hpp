// tls_proxy: HTTPS in front of an in-process test server (tests/support/http_test_server) on
// 127.0.0.1:<ephemeral port>, so that the HTTP client's TLS path (handshake, reads and writes
// through an ssl_stream) can be tested without nginx. Each TLS connection it accepts gets one
// plain connection to the backend port, and bytes are pumped both ways; the backend closing its
// side (FIN) ends the TLS connection with a close_notify, a reset (RST) resets it.
//
// The certificate is made in process with OpenSSL (EC P-256, self-signed, subjectAltName
// IP:127.0.0.1, valid for a day) and written to ca_file(), for http_options::ca_file.
//
// Everything stops by itself: the threads poll every 50 ms for stop(), which the destructor calls;
// stop() shuts every socket down and joins every thread. SIGPIPE is ignored from construction on
// (OpenSSL writes to the socket with write(2)).
//
// Threading: construct, stop and destroy on one thread; the accessors from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace blobd::test {

class tls_proxy {
public:
    explicit tls_proxy(std::uint16_t backend_port);
    ~tls_proxy();
    tls_proxy(const tls_proxy&) = delete;
    tls_proxy& operator=(const tls_proxy&) = delete;

    std::uint16_t port() const { return port_; }
    /// "https://127.0.0.1:<port>" + path.
    std::string url(std::string_view path = "") const;
    /// The PEM file of the proxy's certificate (its own CA).
    const std::string& ca_file() const { return ca_file_; }
    /// TLS connections accepted so far (handshakes completed or not).
    int connections() const { return connections_.load(); }
    /// Stops accepting, cuts every connection and joins the threads. Idempotent.
    void stop();

private:
    void accept_loop();
    void serve(int fd);
    void forget_fd(int fd);

    std::uint16_t backend_;
    void* ctx_ = nullptr;  // SSL_CTX*
    std::string ca_file_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> connections_{0};
    std::thread acceptor_;
    std::mutex mu_;
    std::vector<std::thread> threads_;
    std::vector<int> fds_;  // open sockets, both sides (guarded by mu_)
};

}  // namespace blobd::test
