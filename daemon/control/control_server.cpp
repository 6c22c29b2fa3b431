#include "daemon/control/control_server.hpp"

#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "base/log.hpp"
#include "daemon/control/control_access.hpp"

namespace blobd {

namespace {
const log::logger lg{"control"};
constexpr std::size_t max_request = 4096;
}

result<std::unique_ptr<control_server>, std::string> control_server::listen(event_loop& loop, const std::string& path,
                                                                             handler h) {
    return listen(loop, path, [h = std::move(h)](std::string_view req, reply_fn reply) { reply(h(req)); });
}

result<std::unique_ptr<control_server>, std::string> control_server::listen(event_loop& loop, const std::string& path,
                                                                             async_handler h) {
    return listen(loop, path, std::move(h), options{});
}

result<std::unique_ptr<control_server>, std::string> control_server::listen(event_loop& loop, const std::string& path,
                                                                             async_handler h, options opts) {
    sockaddr_un addr{};
    gid_t gid = 0;
    if (!opts.group.empty()) {
        // Looked up before the socket exists, so a typo leaves no socket behind. getgrnam_r: the
        // loop thread is not the only one in the process.
        group gr{}, *found = nullptr;
        std::vector<char> buf(16384);
        const int rc = ::getgrnam_r(opts.group.c_str(), &gr, buf.data(), buf.size(), &found);
        if (!found) {
            return unexpected{fmt::format("control_socket_group: no group named '{}'{}", opts.group,
                                          rc ? fmt::format(" ({})", std::strerror(rc)) : std::string())};
        }
        gid = gr.gr_gid;
    }
    if (opts.trusted.empty()) opts.trusted = {0, ::geteuid()};
    if (path.size() >= sizeof addr.sun_path) return unexpected{fmt::format("control socket path too long: {}", path)};
    std::error_code ec;
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return unexpected{fmt::format("control socket: {}", std::strerror(errno))};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    // A socket file left by a crashed daemon would make bind fail; only one daemon can hold the
    // device anyway, so it is ours to replace.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        return unexpected{fmt::format("control socket {}: bind: {}", path, std::strerror(errno))};
    }
    if (opts.group.empty()) {
        ::chmod(path.c_str(), 0600);
    } else {
        if (::chown(path.c_str(), static_cast<uid_t>(-1), gid) < 0) {
            const int e = errno;
            ::unlink(path.c_str());
            return unexpected{fmt::format("control socket {}: chown to group {}: {}", path, opts.group, std::strerror(e))};
        }
        ::chmod(path.c_str(), 0660);
        // The group must reach the socket too. A private parent of ours (systemd's
        // RuntimeDirectory is 0750 root:root) is handed to the group, search only; a directory
        // others may enter (/run, /tmp) or someone else's is left alone.
        struct stat dst {};
        const std::string dir = parent.empty() ? std::string(".") : parent.string();
        if (::stat(dir.c_str(), &dst) == 0 && !(dst.st_mode & S_IXOTH)) {
            if (dst.st_uid == ::geteuid() && ::chown(dir.c_str(), static_cast<uid_t>(-1), gid) == 0) {
                ::chmod(dir.c_str(), (dst.st_mode & 07777) | S_IXGRP);
            } else if (dst.st_gid != gid || !(dst.st_mode & S_IXGRP)) {
                lg.warn("control socket {}: group {} cannot enter {} (mode {:o}); its members cannot connect", path,
                        opts.group, dir, dst.st_mode & 07777);
            }
        }
    }
    if (::listen(fd.get(), 16) < 0) {
        return unexpected{fmt::format("control socket {}: listen: {}", path, std::strerror(errno))};
    }
    std::unique_ptr<control_server> s(new control_server(loop, path, std::move(fd), std::move(h), std::move(opts.trusted)));
    s->arm_accept();
    return s;
}

control_server::control_server(event_loop& loop, std::string path, unique_fd fd, async_handler h, std::vector<uid_t> trusted)
    : loop_(loop),
      path_(std::move(path)),
      fd_(std::move(fd)),
      handler_(std::move(h)),
      trusted_(std::move(trusted)),
      alive_(std::make_shared<bool>(true)) {}

control_server::~control_server() { stop(); }

void control_server::stop() {
    if (!*alive_) return;
    *alive_ = false;
    ::unlink(path_.c_str());
    // The pending accept poll completes when the fd closes... it does not: poll on a closed fd
    // keeps waiting on the file. shutdown() wakes it with POLLHUP first.
    ::shutdown(fd_.get(), SHUT_RDWR);
}

void control_server::arm_accept() {
    loop_.poll(fd_.get(), POLLIN, [this, alive = alive_](int res) {
        if (!*alive) return;
        if (res < 0) {
            lg.err("accept poll: {}", std::strerror(-res));
            return;
        }
        for (;;) {
            int c = ::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0) break;
            auto conn = std::make_shared<unique_fd>(c);
            // The credentials of the process that connected, fixed at connect(2): what a later
            // fd-passing trick cannot change. Unknown credentials count as nobody's.
            ucred cred{};
            socklen_t len = sizeof cred;
            uid_t peer = static_cast<uid_t>(-1);
            if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) peer = cred.uid;
            serve(std::move(conn), peer, std::make_shared<std::string>(), 0);
        }
        arm_accept();
    });
}

void control_server::serve(std::shared_ptr<unique_fd> conn, uid_t peer, std::shared_ptr<std::string> buf, int polls) {
    char tmp[1024];
    for (;;) {
        ssize_t n = ::recv(conn->get(), tmp, sizeof tmp, 0);
        if (n > 0) {
            buf->append(tmp, static_cast<std::size_t>(n));
            if (buf->size() > max_request) return;  // drop the connection
            if (buf->find('\n') != std::string::npos) break;
            continue;
        }
        if (n == 0) break;  // peer finished writing: answer what we have
        if (errno == EINTR) continue;
        if (errno == EAGAIN && polls < 50) {
            loop_.poll(conn->get(), POLLIN, [this, conn, peer, buf, polls, alive = alive_](int) {
                if (*alive) serve(conn, peer, buf, polls + 1);
            });
        }
        return;
    }
    std::string line = buf->substr(0, buf->find('\n'));
    auto reply = [conn](std::string text) {
        text += "\n";
        // Replies are small; a client that does not read them loses them.
        [[maybe_unused]] auto w = ::send(conn->get(), text.data(), text.size(), MSG_NOSIGNAL);
    };
    const std::string cmd = control_command(line);
    if (auto refused = control_refusal(cmd, peer, trusted_)) {
        static log::rate_limit limit;
        if (unsigned n = 0; limit.allow(n)) lg.warn("refused {} from uid {}{}", cmd, peer, log::suppressed_note(n));
        return reply(nlohmann::json{{"ok", false}, {"denied", true}, {"error", *refused}}.dump());
    }
    handler_(line, std::move(reply));
}

}  // namespace blobd
