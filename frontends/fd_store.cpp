#include "frontends/fd_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <systemd/sd-daemon.h>

#include "base/log.hpp"

namespace blobd::fd_store {

namespace {
const log::logger lg{"fdstore"};
}  // namespace

std::multimap<std::string, unique_fd>& passed() {
    static std::multimap<std::string, unique_fd> fds;
    static bool taken = false;
    if (taken) return fds;
    taken = true;
    char** names = nullptr;
    const int n = sd_listen_fds_with_names(1, &names);
    if (n < 0) {
        lg.warn("ignoring passed file descriptors: {}", std::strerror(-n));
        return fds;
    }
    for (int i = 0; i < n; ++i) {
        const int fd = SD_LISTEN_FDS_START + i;
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        fds.emplace(names && names[i] ? names[i] : "", unique_fd(fd));
    }
    if (names) {
        for (int i = 0; i < n; ++i) std::free(names[i]);
        std::free(names);
    }
    return fds;
}

unique_fd claim(std::string_view name) {
    auto& fds = passed();
    auto it = fds.find(std::string(name));
    if (it == fds.end()) return {};
    unique_fd fd = std::move(it->second);
    fds.erase(it);
    return fd;
}

std::size_t drop_unclaimed(std::string_view prefix) {
    auto& fds = passed();
    std::size_t n = 0;
    for (auto it = fds.begin(); it != fds.end();) {
        if (it->first.compare(0, prefix.size(), prefix) != 0) {
            ++it;
            continue;
        }
        forget(it->first);
        ++n;
        it = fds.erase(it);  // closes it
    }
    return n;
}

bool available() { return std::getenv("NOTIFY_SOCKET") != nullptr; }

int store(int fd, const std::string& name) {
    if (!available()) return 0;
    const std::string msg = "FDSTORE=1\nFDNAME=" + name;
    const int r = sd_pid_notify_with_fds(0, 0, msg.c_str(), &fd, 1);
    return r < 0 ? r : (r > 0 ? 1 : 0);
}

void forget(const std::string& name) {
    if (!available()) return;
    const std::string msg = "FDSTOREREMOVE=1\nFDNAME=" + name;
    sd_notify(0, msg.c_str());
}

std::string fingerprint(const std::vector<std::string_view>& parts) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::string_view s : parts) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 0x100000001b3ull;
        }
        h ^= 0xff;
        h *= 0x100000001b3ull;
    }
    return fmt::format("{:016x}", h);
}

}  // namespace blobd::fd_store
