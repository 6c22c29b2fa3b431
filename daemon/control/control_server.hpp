// control_server: a Unix stream socket speaking one JSON object per line, for erofs-blobctl and
// monitoring. Each connection sends one request line ({"cmd":"stats"}) and gets one JSON line
// back, then the server closes it. Requests are answered by a handler running on the loop thread,
// so it may read loop-owned state (registry counters) without locks. A handler answers at once
// (`handler`), or later (`async_handler`: the reply goes out when it calls `reply`, from the loop
// thread, once; a mount waits for its bootstrap fetch and mount(2)).
// Every connection's peer credentials (SO_PEERCRED) are read at accept: a command that changes
// state (control_access.hpp) from a peer whose uid is not trusted is refused here, before the
// handler sees it, with {"ok":false,"denied":true,"error":"cull needs root: peer uid 65534"}.
// Threading: loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "io/event_loop.hpp"

namespace blobd {

class control_server {
public:
    /// Maps a request line to a response line (without the newline).
    using handler = std::function<std::string(std::string_view request)>;
    /// Answers a request line by calling `reply` once, now or later (loop thread). A reply never
    /// called leaves the client waiting until its own timeout; the connection closes with the server.
    using reply_fn = std::function<void(std::string reply)>;
    using async_handler = std::function<void(std::string_view request, reply_fn reply)>;

    struct options {
        /// "" keeps the socket root-only (0600); a group name makes it 0660 owned by that group.
        std::string group;
        /// Uids that may send state-changing commands; empty: 0 and the daemon's effective uid.
        std::vector<uid_t> trusted;
    };

    /// Binds `path` (replacing a stale socket file, creating the parent directory) and listens.
    static result<std::unique_ptr<control_server>, std::string> listen(event_loop& loop, const std::string& path,
                                                                        handler h);
    static result<std::unique_ptr<control_server>, std::string> listen(event_loop& loop, const std::string& path,
                                                                        async_handler h);
    static result<std::unique_ptr<control_server>, std::string> listen(event_loop& loop, const std::string& path,
                                                                        async_handler h, options opts);
    ~control_server();
    /// Stops accepting; connections being answered finish on their own.
    void stop();

private:
    control_server(event_loop& loop, std::string path, unique_fd fd, async_handler h, std::vector<uid_t> trusted);
    void arm_accept();
    void serve(std::shared_ptr<unique_fd> conn, uid_t peer, std::shared_ptr<std::string> buf, int polls);

    event_loop& loop_;
    std::string path_;
    unique_fd fd_;
    async_handler handler_;
    std::vector<uid_t> trusted_;
    std::shared_ptr<bool> alive_;
};

}  // namespace blobd
