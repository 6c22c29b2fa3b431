#include "frontends/cachefiles/handoff.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "base/log.hpp"
#include "frontends/fd_store.hpp"

namespace blobd::handoff {

namespace {
const log::logger lg{"handoff"};
constexpr std::string_view prefix = "cachefiles-";
}  // namespace

std::string fd_name(const std::string& device, const std::string& cache_dir, const std::string& tag) {
    // A fingerprint that stays the same across builds and versions, or an upgrade would throw the
    // old binding (and every mount on it) away.
    return std::string(prefix) + fd_store::fingerprint({device, cache_dir, tag});
}

unique_fd take_stored(const std::string& name) {
    unique_fd found = fd_store::claim(name);
    if (found) ::fcntl(found.get(), F_SETFD, FD_CLOEXEC);
    // A device bound with another cache dir or tag: do not serve it, and let the store drop its
    // copy too, or the device stays busy and the fresh bind fails with EBUSY. The fanotify
    // frontend's fds stay passed: with "frontend": "auto" the daemon may still choose it (main.cpp
    // drops them once cachefiles is chosen).
    if (std::size_t n = fd_store::drop_unclaimed(prefix)) {
        lg.notice("dropped {} kept device fd(s) bound for another cache dir or tag", n);
    }
    return found;
}

int store(int fd, const std::string& name) { return fd_store::store(fd, name); }

void forget(const std::string& name) { fd_store::forget(name); }

}  // namespace blobd::handoff
