#include "frontends/cachefiles/handoff.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <fmt/format.h>
#include <systemd/sd-daemon.h>

#include "base/log.hpp"

namespace blobd::handoff {

namespace {
const log::logger lg{"handoff"};
constexpr std::string_view prefix = "cachefiles-";
}  // namespace

std::string fd_name(const std::string& device, const std::string& cache_dir, const std::string& tag) {
    // FNV-1a, not std::hash: the name must stay the same across builds and versions, or an upgrade
    // would throw the old binding (and every mount on it) away.
    std::uint64_t h = 0xcbf29ce484222325ull;
    auto mix = [&](std::string_view s) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 0x100000001b3ull;
        }
        h ^= 0xff;  // separator: ("ab","c") and ("a","bc") differ
        h *= 0x100000001b3ull;
    };
    mix(device);
    mix(cache_dir);
    mix(tag);
    return fmt::format("{}{:016x}", prefix, h);
}

unique_fd take_stored(const std::string& name) {
    char** names = nullptr;
    int n = sd_listen_fds_with_names(1, &names);
    if (n < 0) {
        lg.warn("ignoring passed file descriptors: {}", std::strerror(-n));
        return {};
    }
    unique_fd found;
    for (int i = 0; i < n; ++i) {
        int fd = SD_LISTEN_FDS_START + i;
        std::string_view fdname = names && names[i] ? names[i] : "";
        if (fdname == name && !found) {
            ::fcntl(fd, F_SETFD, FD_CLOEXEC);
            found = unique_fd(fd);
            continue;
        }
        if (fdname.substr(0, prefix.size()) == prefix) {
            // A device bound with another cache dir or tag: do not serve it, and let the store
            // drop its copy too, or the device stays busy and the fresh bind fails with EBUSY.
            lg.notice("dropping the kept device fd {} (bound for another cache dir or tag)", fdname);
            forget(std::string(fdname));
        }
        ::close(fd);
    }
    if (names) {
        for (int i = 0; i < n; ++i) std::free(names[i]);
        std::free(names);
    }
    return found;
}

int store(int fd, const std::string& name) {
    if (!std::getenv("NOTIFY_SOCKET")) return 0;
    std::string msg = "FDSTORE=1\nFDNAME=" + name;
    int r = sd_pid_notify_with_fds(0, 0, msg.c_str(), &fd, 1);
    return r < 0 ? r : (r > 0 ? 1 : 0);
}

void forget(const std::string& name) {
    std::string msg = "FDSTOREREMOVE=1\nFDNAME=" + name;
    sd_notify(0, msg.c_str());
}

}  // namespace blobd::handoff
