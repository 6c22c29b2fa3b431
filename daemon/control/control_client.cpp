#include "daemon/control/control_client.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/unique_fd.hpp"

namespace blobd::control {

namespace {
unexpected<call_error> fail(call_error::kind k, std::string message) { return unexpected{call_error{k, std::move(message)}}; }
}  // namespace

result<reply, call_error> call(const std::string& socket_path, const nlohmann::json& request, int timeout_s,
                               const std::string& timeout_hint) {
    using k = call_error::kind;
    sockaddr_un addr{};
    if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path) {
        return fail(k::bad_path, fmt::format("bad control socket path '{}'", socket_path));
    }
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fail(k::unreachable, fmt::format("socket: {}", std::strerror(errno)));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        // The first thing a new user sees when the daemon is not there: say which of the usual causes it is.
        const int e = errno;
        const std::string& p = socket_path;
        struct stat st {};
        if (e == EACCES || e == EPERM) {
            return fail(k::denied, fmt::format("permission denied on {}: run as root or as a member of control_socket_group", p));
        }
        if (e == ENOENT) return fail(k::unreachable, fmt::format("no daemon socket at {}: is erofs-blobd running?", p));
        if (::stat(p.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
            return fail(k::unreachable, fmt::format("{} is not a socket: is --socket (or control_socket) right?", p));
        }
        if (e == ECONNREFUSED) {
            return fail(k::unreachable, fmt::format("nobody listens on {}: a stale socket; erofs-blobd is not running", p));
        }
        return fail(k::unreachable, fmt::format("cannot connect to {}: {}", p, std::strerror(e)));
    }
    timeval tv{timeout_s, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const std::string req = request.dump() + "\n";
    if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return fail(k::no_answer, fmt::format("no answer within {} s (the daemon does not read its socket)", timeout_s));
        }
        return fail(k::unreachable, fmt::format("send: {}", std::strerror(errno)));
    }
    std::string text;
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n > 0) {
            text.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return fail(k::no_answer, fmt::format("no answer within {} s{}", timeout_s, timeout_hint.empty() ? "" : " " + timeout_hint));
        }
        if (n < 0) return fail(k::no_answer, fmt::format("no reply: {}", std::strerror(errno)));
        break;
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        if (text.empty()) return fail(k::no_answer, "the daemon closed the connection without an answer");
        return fail(k::no_answer, fmt::format("unreadable reply: {}", text));
    }
    if (j.value("denied", false)) {
        // Refused for who we are, before the command ran (SO_PEERCRED on the daemon's side).
        return fail(k::denied, "permission denied: " + j.value("error", std::string("?")));
    }
    return reply{std::move(j), std::move(text)};
}

}  // namespace blobd::control
