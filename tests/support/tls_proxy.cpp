#include "tests/support/tls_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace blobd::test {

namespace {

[[noreturn]] void fail(const std::string& what) {
    char buf[256] = "";
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    throw std::runtime_error("tls_proxy: " + what + ": " + buf);
}

struct free_key {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct free_cert {
    void operator()(X509* x) const { X509_free(x); }
};

void add_ext(X509* x, int nid, const char* value) {
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    if (!e) fail("extension");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

bool send_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

}  // namespace

tls_proxy::tls_proxy(std::uint16_t backend_port) : backend_(backend_port) {
    ::signal(SIGPIPE, SIG_IGN);
    std::unique_ptr<EVP_PKEY, free_key> key(EVP_EC_gen("P-256"));
    if (!key) fail("key");
    std::unique_ptr<X509, free_cert> cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("blobd-test"), -1,
                               -1, 0);
    X509_set_issuer_name(cert.get(), name);
    // As `openssl req -x509` makes it (tests/integration/nginx_test.cpp): its own CA.
    add_ext(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert.get(), NID_subject_key_identifier, "hash");
    add_ext(cert.get(), NID_subject_alt_name, "IP:127.0.0.1");
    if (!X509_sign(cert.get(), key.get(), EVP_sha256())) fail("sign");

    char path[] = "/tmp/blobd-tls-proxy-XXXXXX";
    const int pem = ::mkstemp(path);
    if (pem < 0) throw std::system_error(errno, std::generic_category(), "mkstemp");
    ca_file_ = path;
    FILE* f = ::fdopen(pem, "w");
    if (!f || !PEM_write_X509(f, cert.get())) fail("write " + ca_file_);
    std::fclose(f);

    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) fail("SSL_CTX_new");
    ctx_ = ctx;
    if (SSL_CTX_use_certificate(ctx, cert.get()) != 1 || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) fail("use");

    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket");
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || ::listen(listen_fd_, 64) < 0) {
        throw std::system_error(errno, std::generic_category(), "bind/listen on 127.0.0.1");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

tls_proxy::~tls_proxy() {
    stop();
    SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
    ::unlink(ca_file_.c_str());
}

std::string tls_proxy::url(std::string_view path) const {
    return "https://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

void tls_proxy::stop() {
    {
        std::lock_guard lk(mu_);
        if (stop_.exchange(true)) return;
        for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> threads;
    {
        std::lock_guard lk(mu_);
        threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

void tls_proxy::forget_fd(int fd) {
    std::lock_guard lk(mu_);
    fds_.erase(std::remove(fds_.begin(), fds_.end(), fd), fds_.end());
}

void tls_proxy::accept_loop() {
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard lk(mu_);
        if (stop_) {
            ::close(fd);
            break;
        }
        ++connections_;
        fds_.push_back(fd);
        threads_.emplace_back([this, fd] { serve(fd); });
    }
}

void tls_proxy::serve(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // each record at once, as nginx sends them
    SSL* s = SSL_new(static_cast<SSL_CTX*>(ctx_));
    SSL_set_fd(s, fd);
    int backend = -1;
    bool rst = false;
    if (SSL_accept(s) == 1 && !stop_) {
        backend = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(backend_);
        ::setsockopt(backend, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        {
            std::lock_guard lk(mu_);
            fds_.push_back(backend);
        }
        if (::connect(backend, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
            char buf[16384];
            while (!stop_) {
                bool from_client = SSL_pending(s) > 0, from_backend = false;
                if (!from_client) {
                    pollfd p[2] = {{fd, POLLIN, 0}, {backend, POLLIN, 0}};
                    if (::poll(p, 2, 50) <= 0) continue;
                    from_client = p[0].revents != 0;
                    from_backend = p[1].revents != 0;
                }
                if (from_client) {
                    const int n = SSL_read(s, buf, sizeof buf);
                    if (n <= 0 || !send_all(backend, buf, static_cast<std::size_t>(n))) break;
                }
                if (from_backend) {
                    const ssize_t n = ::recv(backend, buf, sizeof buf, 0);
                    if (n < 0 && errno == EINTR) continue;
                    if (n == 0) {  // the server closed: so do we, cleanly
                        SSL_shutdown(s);
                        break;
                    }
                    if (n < 0) {  // the server reset the connection: so do we
                        rst = true;
                        break;
                    }
                    if (SSL_write(s, buf, static_cast<int>(n)) <= 0) break;
                }
            }
        }
    }
    SSL_free(s);
    if (backend >= 0) {
        forget_fd(backend);
        ::close(backend);
    }
    if (rst) {
        linger l{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    forget_fd(fd);
    ::close(fd);
}

}  // namespace blobd::test
