// The daemon's capability drop: which capabilities it still needs once its frontend is set up
// (a pure decision, unit-tested), and the drop itself (libcap). Owned by daemon/main.cpp, which
// calls drop_capabilities once, on the main thread, before any other thread exists: capability
// sets are per thread, so threads started earlier would keep theirs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace blobd::caps {

enum class frontend { cachefiles, fanotify };
// Where the frontend's setup stands when the drop happens.
enum class stage {
    bound,    // cachefiles: /dev/cachefiles opened and `bind` done by this process
    adopted,  // cachefiles: the bound fd taken over from the service manager's fd store
    probed,   // fanotify: the kernel support probed; mounts and fanotify groups are still to come
};

// The capabilities (CAP_* numbers) the daemon keeps for the rest of its life. Pure; any thread.
//   cachefiles: none. Only the open of /dev/cachefiles checks a capability (CAP_SYS_ADMIN, in
//   cachefiles_daemon_open); `bind` copies the daemon's credentials (prepare_kernel_cred) and
//   cachefiles does every later cache-file operation (create, open of its mode-0000 files, which
//   needs the copy's CAP_DAC_OVERRIDE, xattrs, cull, inuse) with that copy; copen/cull/inuse and
//   READ_COMPLETE are writes and ioctls on fds already open. The daemon's own
//   file work is in directories it owns (root, the cache dir's owner) and needs no DAC override.
//   fanotify: CAP_SYS_ADMIN, for fanotify_init(FAN_CLASS_PRE_CONTENT), mount(2) and umount2.
//   socket_group (control_socket_group set): also CAP_CHOWN, to give the control socket and its
//   directory to that group.
std::vector<int> kept(frontend f, stage s, bool socket_group = false);

// "none", or the names joined by ", " (libcap's names: "cap_sys_admin"). Any thread.
std::string names(const std::vector<int>& caps);

// Drops every capability not in keep from the bounding set (needs CAP_SETPCAP, itself dropped
// afterwards; without it the bounding set is left as it is and a warning logged), and sets the
// permitted and effective sets to keep (those of keep the process has), the inheritable and
// ambient sets empty. Returns the permitted set now in force. Main thread, before any other
// thread starts. An error when the sets cannot be changed (then the process should not go on).
result<std::vector<int>, std::string> drop_capabilities(const std::vector<int>& keep);

// kept(f, s), dropped to, and logged once (info: which are kept; err: why the drop failed).
// false: the drop failed and the daemon should exit. Main thread, before any other thread starts.
bool drop_after_setup(frontend f, stage s, bool socket_group = false);

}  // namespace blobd::caps
