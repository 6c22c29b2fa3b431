// erofs-blobctl: talks to a running erofs-blobd over its control socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>
#include <cstdlib>
#include <climits>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "sources/kinds.hpp"
#include "base/unique_fd.hpp"

namespace {

constexpr const char* usage = R"(Usage: erofs-blobctl [--socket PATH | --config FILE] [--raw] COMMAND [ARGS]

Commands:
  stats   the daemon's counters (opens, reads, bytes fetched and written, per-source figures)
  metrics the same counters in the Prometheus text format (for node_exporter's textfile
          collector: erofs-blobctl metrics > F.tmp && mv F.tmp DIR/erofs-blobd.prom)
  ping    check that the daemon answers
  reload  make the daemon re-read its config file (as SIGHUP does): prints the keys that changed,
          or the error (a key that needs a restart, a bad config with its JSON path) and exits 1;
          on an error the daemon keeps running with the config it had
  mount [--domain D] FSID MOUNTPOINT
          ("frontend": "fanotify" only) fetch bootstrap FSID from domain D's sources (default
          domain: FSID itself), mark its blobs' cache files and mount it read-only at MOUNTPOINT;
          waits until mounted (up to --timeout), prints the error and exits 1 if it failed
  umount MOUNTPOINT
          unmount what the daemon mounted at MOUNTPOINT
  cull --domain D [--blob NAME]
          ("frontend": "cachefiles") delete domain D's cache files, or only blob NAME's, to free
          their space (what a snapshotter does when it deletes an image); files the kernel holds
          (mounted images) are kept: prints what was culled and exits 1 if any was in use
  usage --domain D
          ("frontend": "cachefiles") disk space of domain D's cache files, per blob (files of
          mounted images appear once unmounted: the kernel links them into the cache then)

Options:
  --socket PATH   the control socket (default /run/erofs-blobd/control.sock)
  --config FILE   take the control socket path from the daemon's config
  --raw           print the JSON reply on one line instead of indented
  --get KEY       print only the field KEY of the reply (for scripts); "store.hits" reaches
                  into objects
  --timeout SECS  how long to wait for the reply (default 5; mount: 120)
  --version       the version

Exit codes: 0 done; 1 the daemon answered with an error (or bad arguments); 2 no answer: no
such socket, permission denied on it, connection refused (no daemon listens), no reply within
--timeout, or an unreadable reply.
)";

}  // namespace

int main(int argc, char** argv) {
    std::string socket_path = "/run/erofs-blobd/control.sock", command;
    bool raw = false;
    std::string get, domain, blob;
    std::vector<std::string> args;
    int timeout = 0;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            std::fputs(usage, stdout);
            return 0;
        } else if (a == "--version") {
            std::printf("erofs-blobctl %s\n", BLOBD_VERSION);
            return 0;
        } else if ((a == "--socket" || a == "--config") && i + 1 < argc) {
            if (a == "--socket") {
                socket_path = argv[++i];
            } else {
                // The daemon's own parse (same table of kinds), without checking the files the
                // sources name: an auth_file is usually readable by root only, and the socket path
                // does not depend on it.
                auto c = blobd::cfg::load_file(argv[++i], blobd::sources::config_kinds());
                if (!c) {
                    std::fprintf(stderr, "erofs-blobctl: %s\n", c.error().what().c_str());
                    return 1;
                }
                socket_path = c->control_socket;
            }
        } else if (a == "--get" && i + 1 < argc) {
            get = argv[++i];
        } else if (a == "--raw") {
            raw = true;
        } else if (a == "--domain" && i + 1 < argc) {
            domain = argv[++i];
        } else if (a == "--blob" && i + 1 < argc) {
            blob = argv[++i];
        } else if (a == "--timeout" && i + 1 < argc) {
            timeout = std::atoi(argv[++i]);
            if (timeout <= 0) {
                std::fprintf(stderr, "erofs-blobctl: --timeout needs a positive number of seconds\n");
                return 1;
            }
        } else if (command.empty() && !a.empty() && a[0] != '-') {
            command = a;
        } else if ((command == "mount" || command == "umount") && !a.empty() && a[0] != '-') {
            args.emplace_back(a);
        } else {
            std::fprintf(stderr, "erofs-blobctl: unexpected argument '%s'\n%s", argv[i], usage);
            return 1;
        }
    }
    if (command.empty()) {
        std::fputs(usage, stderr);
        return 1;
    }
    nlohmann::json request{{"cmd", command}};
    if (command == "mount") {
        if (args.size() != 2) {
            std::fprintf(stderr, "erofs-blobctl: mount needs FSID and MOUNTPOINT\n%s", usage);
            return 1;
        }
        request["fsid"] = args[0];
        request["domain"] = domain;
        // The daemon needs the path as the kernel will see it.
        char* abs = ::realpath(args[1].c_str(), nullptr);
        request["mountpoint"] = abs ? std::string(abs) : args[1];
        std::free(abs);
    } else if (command == "umount") {
        if (args.size() != 1) {
            std::fprintf(stderr, "erofs-blobctl: umount needs MOUNTPOINT\n%s", usage);
            return 1;
        }
        char* abs = ::realpath(args[0].c_str(), nullptr);
        request["mountpoint"] = abs ? std::string(abs) : args[0];
        std::free(abs);
    } else if (command == "usage") {
        if (domain.empty()) {
            std::fprintf(stderr, "erofs-blobctl: usage needs --domain D\n%s", usage);
            return 1;
        }
        request["domain"] = domain;
    } else if (command == "cull") {
        if (domain.empty()) {
            std::fprintf(stderr, "erofs-blobctl: cull needs --domain D (and --blob NAME for one blob)\n%s", usage);
            return 1;
        }
        request["domain"] = domain;
        request["blob"] = blob;
    } else if (!domain.empty()) {
        std::fprintf(stderr, "erofs-blobctl: --domain is for mount, cull and usage\n");
        return 1;
    }
    if (!blob.empty() && command != "cull") {
        std::fprintf(stderr, "erofs-blobctl: --blob is for cull\n");
        return 1;
    }
    if (timeout == 0) timeout = command == "mount" || command == "umount" || command == "cull" || command == "usage" ? 120 : 5;
    sockaddr_un addr{};
    if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path) {
        std::fprintf(stderr, "erofs-blobctl: bad control socket path '%s'\n", socket_path.c_str());
        return 1;
    }
    blobd::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        // Say which of the usual causes it is: each has a different fix.
        const int e = errno;
        const char* hint = e == ENOENT         ? " (no such socket: is erofs-blobd running, with this control_socket?)"
                           : e == ECONNREFUSED ? " (nothing listens there: is erofs-blobd running?)"
                           : e == EACCES || e == EPERM
                               ? " (the control socket is for the daemon's user only: run as root)"
                               : "";
        std::fprintf(stderr, "erofs-blobctl: cannot connect to %s: %s%s\n", socket_path.c_str(), std::strerror(e), hint);
        return 2;
    }
    timeval tv{timeout, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req = request.dump() + "\n";
    if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) < 0) {
        std::fprintf(stderr, "erofs-blobctl: send: %s\n", std::strerror(errno));
        return 2;
    }
    std::string reply;
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n > 0) {
            reply.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            std::fprintf(stderr, "erofs-blobctl: no reply within %d s (--timeout)\n", timeout);
            return 2;
        }
        if (n < 0) {
            std::fprintf(stderr, "erofs-blobctl: no reply: %s\n", std::strerror(errno));
            return 2;
        }
        break;
    }
    auto j = nlohmann::json::parse(reply, nullptr, false);
    if (j.is_discarded()) {
        std::fprintf(stderr, "erofs-blobctl: unreadable reply: %s\n", reply.c_str());
        return 2;
    }
    if (!get.empty()) {
        const nlohmann::json* at = &j;
        for (std::size_t pos = 0; at && pos <= get.size();) {
            const std::size_t dot = std::min(get.find('.', pos), get.size());
            const std::string key = get.substr(pos, dot - pos);
            at = at->is_object() && at->contains(key) ? &(*at)[key] : nullptr;
            pos = dot + 1;
        }
        if (!at) {
            std::fprintf(stderr, "erofs-blobctl: the reply has no field '%s'\n", get.c_str());
            return 1;
        }
        const auto& v = *at;
        std::printf("%s\n", v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
        return 0;
    }
    if ((command == "mount" || command == "umount") && !raw) {
        if (j.value("ok", false)) return 0;
        std::fprintf(stderr, "erofs-blobctl: %s failed: %s\n", command.c_str(), j.value("error", std::string("?")).c_str());
        return 1;
    }
    if (command == "reload" && !raw) {
        if (j.value("ok", false)) {
            std::string keys;
            for (const auto& k : j.value("changed", nlohmann::json::array())) {
                keys += (keys.empty() ? "" : ", ") + (k.is_string() ? k.get<std::string>() : k.dump());
            }
            std::printf("reloaded: %s\n", keys.empty() ? "nothing changed" : ("changed " + keys).c_str());
            return 0;
        }
        std::fprintf(stderr, "erofs-blobctl: reload refused: %s\n", j.value("error", std::string("?")).c_str());
        return 1;
    }
    if (command == "cull" && !raw) {
        if (j.contains("culled")) {
            std::printf("culled %s cache files (%s bytes)\n", j.value("culled", nlohmann::json()).dump().c_str(),
                        j.value("culled_bytes", nlohmann::json()).dump().c_str());
        }
        if (j.value("ok", false)) return 0;
        std::fprintf(stderr, "erofs-blobctl: cull: %s\n", j.value("error", std::string("?")).c_str());
        return 1;
    }
    if (command == "metrics" && !raw) {
        if (!j.value("ok", false) || !j.contains("text") || !j["text"].is_string()) {
            std::fprintf(stderr, "erofs-blobctl: metrics: %s\n", j.value("error", std::string("no metrics in the reply")).c_str());
            return 1;
        }
        std::fputs(j["text"].get_ref<const std::string&>().c_str(), stdout);
        return 0;
    }
    std::printf("%s\n", raw ? j.dump().c_str() : j.dump(2).c_str());
    return j.value("ok", false) ? 0 : 1;
}
