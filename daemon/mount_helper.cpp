// mount.erofs-blobd: the helper mount(8) runs for `mount -t erofs-blobd [-o domain_id=D] FSID DIR`
// (and so for fstab lines and systemd mount units). It asks the running daemon ("frontend":
// "fanotify") to mount, exactly as `erofs-blobctl mount --domain D FSID DIR` does, and answers with
// mount(8)'s exit codes. A binary of its own rather than erofs-blobctl under another name: it lives
// in /sbin (where mount(8) looks), speaks mount(8)'s grammar and exit codes (1, 32) instead of
// blobctl's (1-4), and shares the socket client (daemon/control/control_client.cpp) only.
// Unmounting needs no helper: `umount DIR` is umount(2) on an erofs mount, which the daemon sees.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/control/control_client.hpp"
#include "daemon/mount_options.hpp"

namespace {

constexpr const char* usage = R"(Usage: mount.erofs-blobd FSID DIR [-sfnv] [-o OPTIONS] [-t erofs-blobd]
       mount -t erofs-blobd [-o domain_id=D[,socket=PATH]] FSID DIR
       mount.erofs-blobd --help | --version

mount(8)'s helper for erofs-blobd's fanotify frontend: asks the running daemon ("frontend":
"fanotify" or "auto" resolved to it) to fetch bootstrap FSID from domain D's sources and mount it
read-only at DIR, as `erofs-blobctl mount --domain D FSID DIR` does, and waits until it is mounted.
fstab: FSID DIR erofs-blobd domain_id=D,x-systemd.requires=erofs-blobd.service 0 0
Unmount with umount DIR or erofs-blobctl umount DIR.

Options (-o, comma-separated):
  domain_id=D   the domain (sources and sharing); default: the fsid
  socket=PATH   the daemon's control socket (default /run/erofs-blobd/control.sock)
  ro, rw, nosuid, nodev, defaults, auto, noauto, user, users, nouser, owner, group, _netdev,
  nofail, x-*, X-*, comment=: accepted; the mount is always read-only, nosuid, nodev (mount(8)
  passes rw when the line does not say ro). Any other option is refused (with -s: ignored, with
  a warning).
Flags: -s sloppy (see above), -f fake (check, mount nothing), -n (no mtab: ignored), -v verbose;
  -N (another mount namespace) is refused.

Exit status: 0 mounted; 1 wrong usage or options, or permission denied; 32 the mount failed
(the daemon's reason is printed), or the daemon is not running or did not answer within 120 s.
)";

constexpr int exit_usage = 1, exit_mount_failed = 32;
constexpr int timeout_s = 120;  // as erofs-blobctl mount: the bootstrap is fetched before mount(2)

int fail(int code, const std::string& msg) {
    std::fprintf(stderr, "mount.erofs-blobd: %s\n", msg.c_str());
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    auto parsed = blobd::mount_helper::parse(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc));
    if (!parsed) return fail(exit_usage, parsed.error() + " (see mount.erofs-blobd --help)");
    const auto& inv = *parsed;
    if (inv.help) {
        std::fputs(usage, stdout);
        return 0;
    }
    if (inv.version) {
        std::printf("mount.erofs-blobd %s\n", BLOBD_VERSION);
        return 0;
    }
    for (const auto& o : inv.ignored) std::fprintf(stderr, "mount.erofs-blobd: ignoring the unknown option '%s' (-s)\n", o.c_str());
    // The daemon needs the path as its mount(2) will see it; mount(8) canonicalises it already,
    // a direct call may not.
    char* abs = ::realpath(inv.mountpoint.c_str(), nullptr);
    if (!abs) return fail(exit_mount_failed, "mount point " + inv.mountpoint + ": " + std::strerror(errno));
    const std::string mountpoint(abs);
    std::free(abs);
    struct stat st {};
    if (::stat(mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return fail(exit_mount_failed, "mount point " + mountpoint + " is not a directory");
    }
    const std::string domain_text = inv.domain.empty() ? inv.fsid + " (the fsid)" : inv.domain;
    if (inv.fake) {
        if (inv.verbose) {
            std::printf("mount.erofs-blobd: would ask erofs-blobd at %s to mount %s of domain %s at %s (-f: not done)\n",
                        inv.socket.c_str(), inv.fsid.c_str(), domain_text.c_str(), mountpoint.c_str());
        }
        return 0;
    }
    const nlohmann::json request{{"cmd", "mount"}, {"fsid", inv.fsid}, {"domain", inv.domain}, {"mountpoint", mountpoint}};
    auto answer = blobd::control::call(inv.socket, request, timeout_s);
    if (!answer) {
        using k = blobd::control::call_error::kind;
        const auto& e = answer.error();
        return fail(e.what == k::bad_path || e.what == k::denied ? exit_usage : exit_mount_failed, e.message);
    }
    if (!answer->json.value("ok", false)) {
        return fail(exit_mount_failed, "mounting " + inv.fsid + " at " + mountpoint + " failed: " +
                                           answer->json.value("error", std::string("?")));
    }
    if (inv.verbose) {
        std::printf("mount.erofs-blobd: %s of domain %s mounted at %s by erofs-blobd (%s)\n", inv.fsid.c_str(),
                    domain_text.c_str(), mountpoint.c_str(), inv.socket.c_str());
    }
    return 0;
}
