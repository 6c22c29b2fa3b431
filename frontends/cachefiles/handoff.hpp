// handoff: keeps the bound /dev/cachefiles fd alive across daemon restarts, through the service
// manager's file descriptor store (systemd: FDSTORE=1 now, LISTEN_FDS on the next start).
//
// Why: closing the device fd unbinds the cache, and every erofs mount it served fails further
// reads until it is remounted. With the fd kept by the service manager, a restarted (or crashed
// and restarted) daemon takes the same binding over, sends `restore` so the kernel hands out again
// the requests the old process had read but not answered, and the mounts never notice.
//
// The stored fd is named after the binding (device, cache dir, tag): a daemon started with another
// binding removes the old fd from the store and binds afresh instead of serving the wrong cache.
// Any supervisor speaking the same protocol (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES in, FDSTORE=1
// messages with SCM_RIGHTS on $NOTIFY_SOCKET out) works; tests/e2e/fdstore.py is one.
//
// Threading: startup only, on the main thread, before the loop runs.
#pragma once

#include <string>

#include "base/unique_fd.hpp"

namespace blobd::handoff {

/// "cachefiles-<16 hex digits>": a stable (FNV-1a) fingerprint of the binding.
std::string fd_name(const std::string& device, const std::string& cache_dir, const std::string& tag);

/// The fds passed by the service manager (LISTEN_FDS, consumed from the environment): returns the
/// one stored as `name`, with FD_CLOEXEC set, or an empty unique_fd. Other cachefiles-* fds
/// (another binding) are closed and dropped from the store; the rest stay in fd_store::passed()
/// for the caller (main.cpp closes them once the frontend is chosen).
unique_fd take_stored(const std::string& name);

/// Hands the device fd to the service manager's store under `name` when $NOTIFY_SOCKET is set.
/// Returns 1 if sent, 0 if there is no service manager to send to, or -errno.
int store(int fd, const std::string& name);

/// Drops `name` from the store (FDSTOREREMOVE=1), e.g. after the stored fd proved unusable.
void forget(const std::string& name);

}  // namespace blobd::handoff
