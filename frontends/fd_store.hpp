// fd_store: the service manager's file descriptor store (systemd's FDSTORE=1 / LISTEN_FDS
// protocol), shared by both frontends: what they keep alive across a restart of the daemon.
//
// A frontend stores an fd under a name (FDSTORE=1, FDNAME=, SCM_RIGHTS over $NOTIFY_SOCKET); the
// manager passes every stored fd to the next start of the daemon (fds 3.., LISTEN_FDS,
// LISTEN_FDNAMES, LISTEN_PID) until it is dropped (FDSTOREREMOVE=1) or the service stops for good.
// The passed fds are read once per process (take()), then each frontend claims the ones named
// for it. tests/e2e/fdstore.py is a stand-in manager speaking the same protocol.
//
// Threading: take() at startup on the main thread; store()/forget() from any one thread at a time
// (sd_notify is a datagram send).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.hpp"

namespace blobd::fd_store {

/// The fds passed by the service manager, by name (several may share one), FD_CLOEXEC set.
/// The first call consumes LISTEN_FDS from the environment; later calls return what the earlier
/// ones left (claim() takes fds out). A passing error is logged and yields nothing.
std::multimap<std::string, unique_fd>& passed();

/// Takes the first passed fd named `name` out of passed(), or an empty unique_fd.
unique_fd claim(std::string_view name);

/// Closes every passed fd whose name starts with `prefix` that nobody claimed, and drops those
/// names from the store too (they belong to a frontend or a binding not in use now). Returns how many.
std::size_t drop_unclaimed(std::string_view prefix);

/// True when a service manager listens ($NOTIFY_SOCKET is set).
bool available();

/// Hands `fd` to the service manager under `name`. Returns 1 if sent, 0 without a manager, or -errno.
/// `name`: at most 255 printable ASCII characters, no ':' (systemd's rule).
int store(int fd, const std::string& name);

/// Drops every fd named `name` from the store (FDSTOREREMOVE=1).
void forget(const std::string& name);

/// FNV-1a over the parts (with a separator, so ("ab","c") and ("a","bc") differ), as 16 hex
/// digits: names that must stay the same across builds and versions (std::hash need not).
std::string fingerprint(const std::vector<std::string_view>& parts);

}  // namespace blobd::fd_store
