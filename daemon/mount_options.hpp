// mount_options: the command line of mount.erofs-blobd, the helper mount(8) runs for
// `mount -t erofs-blobd` (fstab lines, systemd mount units), parsed into what to ask the daemon.
//
// util-linux's calling convention (mount(8), "EXTERNAL HELPERS"):
//   mount.erofs-blobd SPEC DIR [-sfnv] [-N namespace] [-o options] [-t type]
// SPEC is the fsid (the bootstrap's name in the domain's sources), DIR the mount point. mount(8)
// strips noauto, x-*, comment and the propagation flags before it runs a helper, passes the rest,
// and adds "rw" when the line has neither ro nor rw (so rw cannot be refused: it is what a plain
// `mount -t erofs-blobd FSID DIR` sends; the mount is read-only in any case).
//
// Pure (no I/O); any thread.
#pragma once

#include <string>
#include <vector>

#include "base/result.hpp"

namespace blobd::mount_helper {

inline constexpr const char* default_socket = "/run/erofs-blobd/control.sock";

struct invocation {
    bool help = false, version = false;  ///< -h/--help, -V/--version: nothing else is set
    std::string fsid;                    ///< SPEC
    std::string mountpoint;              ///< DIR, as given
    std::string domain;                  ///< domain_id=; "" = the fsid (as a cachefiles mount without domain_id)
    std::string socket = default_socket; ///< socket=: the daemon's control socket
    bool sloppy = false;                 ///< -s: unknown options are warned about and ignored, not refused
    bool fake = false;                   ///< -f: check everything, mount nothing
    bool verbose = false;                ///< -v
    std::vector<std::string> ignored;    ///< unknown options -s let through, for the warning
};

/// Parses argv[1..] (not the program name). The error is one line naming what is wrong (every
/// unknown option, in order); mount(8)'s exit code for it is 1 (incorrect invocation).
result<invocation, std::string> parse(const std::vector<std::string>& args);

}  // namespace blobd::mount_helper
