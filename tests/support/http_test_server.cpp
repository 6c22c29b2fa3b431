#include "tests/support/http_test_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <random>
#include <stdexcept>
#include <system_error>

namespace blobd::test {

namespace {

constexpr std::size_t max_request_head = 64 * 1024;

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    return s.substr(i);
}

const char* reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 416: return "Range Not Satisfiable";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

}  // namespace

std::optional<std::string> http_request::header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    if (it == headers.end()) return std::nullopt;
    return it->second;
}

bool http_conn::send(std::string_view bytes) {
    while (!bytes.empty()) {
        if (fd_ < 0 || server_.stopping()) return false;
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

void http_conn::close_fd(bool rst) {
    if (fd_ < 0) return;
    if (rst) {
        linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    // Unregister before closing, so that stop() never shuts down a reused descriptor number.
    server_.forget_fd(fd_);
    ::close(fd_);
    fd_ = -1;
}

void http_conn::close() { close_fd(false); }
void http_conn::reset() { close_fd(true); }

bool http_conn::stall(std::chrono::milliseconds d) {
    std::unique_lock lk(server_.mu_);
    return !server_.cv_.wait_for(lk, d, [this] { return server_.stopping(); });
}

http_server::http_server(handler h) : handler_(std::move(h)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket");
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || ::listen(listen_fd_, 64) < 0) {
        int e = errno;
        ::close(listen_fd_);
        throw std::system_error(e, std::generic_category(), "bind/listen on 127.0.0.1");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

http_server::~http_server() { stop(); }

std::string http_server::url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

void http_server::stop() {
    {
        std::lock_guard lk(mu_);
        if (stop_.exchange(true)) return;
        for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    cv_.notify_all();
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> threads;
    {
        std::lock_guard lk(mu_);
        threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    ::close(listen_fd_);
}

void http_server::forget_fd(int fd) {
    std::lock_guard lk(mu_);
    fds_.erase(std::remove(fds_.begin(), fds_.end(), fd), fds_.end());
}

void http_server::accept_loop() {
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard lk(mu_);
        if (stop_) {
            ::close(fd);
            break;
        }
        const int no = ++connections_;
        fds_.push_back(fd);
        threads_.emplace_back([this, fd, no] { serve(fd, no); });
    }
}

void http_server::serve(int fd, int conn_no) {
    http_conn conn(*this, fd);
    std::string buf;
    while (!stop_ && !conn.closed()) {
        // Read one request head.
        std::size_t end;
        while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
            if (stop_ || buf.size() > max_request_head) return conn.close();
            pollfd p{fd, POLLIN, 0};
            int r = ::poll(&p, 1, 50);
            if (r == 0) continue;
            char tmp[4096];
            ssize_t n = r > 0 ? ::recv(fd, tmp, sizeof tmp, 0) : -1;
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return conn.close();  // peer closed (or shut down by stop())
            buf.append(tmp, static_cast<std::size_t>(n));
        }
        std::string head = buf.substr(0, end);
        buf.erase(0, end + 4);
        http_request req;
        req.connection = conn_no;
        req.index = ++requests_;
        std::size_t line_end = head.find("\r\n");
        std::string line = head.substr(0, line_end);
        auto sp1 = line.find(' '), sp2 = line.rfind(' ');
        if (sp1 == std::string::npos || sp2 == sp1) return conn.close();
        req.method = line.substr(0, sp1);
        req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
        std::size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
        while (pos < head.size()) {
            std::size_t e = head.find("\r\n", pos);
            if (e == std::string::npos) e = head.size();
            std::string h = head.substr(pos, e - pos);
            if (auto colon = h.find(':'); colon != std::string::npos) {
                req.headers[lower(h.substr(0, colon))] = trim(h.substr(colon + 1));
            }
            pos = e + 2;
        }
        handler_(req, conn);
    }
    conn.close();
}

std::string response_head(int status, const std::vector<std::pair<std::string, std::string>>& headers) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
    for (const auto& [k, v] : headers) out += k + ": " + v + "\r\n";
    return out + "\r\n";
}

void serve_blob(const http_request& r, http_conn& c, const std::string& data, bool honour_range) {
    const bool head = r.method == "HEAD";
    auto range = r.header("range");
    if (range && honour_range && range->starts_with("bytes=")) {
        const std::string spec = range->substr(6);
        const auto dash = spec.find('-');
        std::uint64_t first = 0, last = 0;
        bool ok = dash != std::string::npos && dash > 0 && dash + 1 < spec.size();
        if (ok) {
            try {
                first = std::stoull(spec.substr(0, dash));
                last = std::stoull(spec.substr(dash + 1));
            } catch (const std::exception&) {
                ok = false;
            }
        }
        if (!ok || first > last || first >= data.size()) {
            c.send(response_head(416, {{"Content-Range", "bytes */" + std::to_string(data.size())},
                                       {"Content-Length", "0"}}));
            return;
        }
        last = std::min<std::uint64_t>(last, data.size() - 1);
        const std::string body = data.substr(first, last - first + 1);
        c.send(response_head(206, {{"Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) +
                                                         "/" + std::to_string(data.size())},
                                   {"Content-Length", std::to_string(body.size())}}) +
               (head ? "" : body));
        return;
    }
    c.send(response_head(200, {{"Content-Length", std::to_string(data.size())}, {"Accept-Ranges", "bytes"}}) +
           (head ? "" : data));
}

}  // namespace blobd::test
