#include "daemon/mount_options.hpp"

#include <array>
#include <string_view>

namespace blobd::mount_helper {

namespace {

// Options that change nothing for this mount, accepted so that ordinary fstab lines work:
//  - ro, rw: mount(8) sends rw unless the line says ro; erofs is read-only, the daemon mounts
//    MS_RDONLY either way. nosuid, nodev: the daemon always mounts with them.
//  - defaults, auto, noauto, user, users, nouser, owner, group, _netdev, nofail: read by mount(8)
//    and systemd (fstab), not by the filesystem; mount(8) passes some of them on.
// Everything else a kernel mount could take (noexec, sync, noatime, ...) is refused: the daemon
// would not apply it, and a noexec silently dropped is worse than an error.
constexpr std::array<std::string_view, 14> no_effect = {
    "ro", "rw", "nosuid", "nodev", "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group",
    "_netdev", "nofail",
};

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool accepted_without_effect(std::string_view opt) {
    for (auto o : no_effect) {
        if (opt == o) return true;
    }
    // x-* and X-* (systemd's x-systemd.*, mount(8)'s X-mount.*), comment=, user=NAME (what mount(8)
    // records for a user mount): userspace options.
    return starts_with(opt, "x-") || starts_with(opt, "X-") || starts_with(opt, "comment=") || starts_with(opt, "user=");
}

// One -o list, comma-separated; later options win (as with mount(8)).
std::string apply_options(std::string_view list, invocation& inv) {
    std::vector<std::string> unknown;
    std::size_t pos = 0;
    while (pos <= list.size()) {
        const std::size_t comma = std::min(list.find(',', pos), list.size());
        const std::string_view opt = list.substr(pos, comma - pos);
        pos = comma + 1;
        if (opt.empty()) continue;
        if (starts_with(opt, "domain_id=")) {
            inv.domain = std::string(opt.substr(10));
            if (inv.domain.empty()) return "domain_id= needs a domain name";
        } else if (starts_with(opt, "socket=")) {
            inv.socket = std::string(opt.substr(7));
            if (inv.socket.empty()) return "socket= needs the path of the daemon's control socket";
        } else if (!accepted_without_effect(opt)) {
            unknown.emplace_back(opt);
        }
    }
    if (unknown.empty()) return {};
    if (inv.sloppy) {
        for (auto& u : unknown) inv.ignored.push_back(std::move(u));
        return {};
    }
    std::string names;
    for (const auto& u : unknown) names += (names.empty() ? "'" : ", '") + u + "'";
    std::string hint;
    for (const auto& u : unknown) {
        if (starts_with(u, "fsid=")) hint = "; the fsid is the source (mount -t erofs-blobd [-o domain_id=D] FSID DIR)";
    }
    return "unknown mount option" + std::string(unknown.size() > 1 ? "s " : " ") + names +
           " (known: domain_id=D, socket=PATH; ro, rw, nosuid, nodev and fstab's defaults, noauto, _netdev, nofail, "
           "x-*: accepted, the mount is always ro,nosuid,nodev)" + hint;
}

}  // namespace

result<invocation, std::string> parse(const std::vector<std::string>& args) {
    invocation inv;
    std::vector<std::string> positional;
    std::vector<std::string_view> option_lists;  // applied after all flags (-s may follow -o)
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "-h" || a == "--help" || a == "-V" || a == "--version") {
            invocation only;
            (a == "-h" || a == "--help" ? only.help : only.version) = true;
            return only;
        }
        if (a.size() < 2 || a[0] != '-') {
            positional.push_back(a);
            continue;
        }
        // Short options, bundled or not (-sfnv), the last of a bundle may take a value (-oro or -o ro).
        for (std::size_t c = 1; c < a.size(); ++c) {
            const char f = a[c];
            if (f == 's') {
                inv.sloppy = true;
            } else if (f == 'f') {
                inv.fake = true;
            } else if (f == 'n') {
                // No /etc/mtab to write: the helper never writes one, mount(8) keeps its own utab.
            } else if (f == 'v') {
                inv.verbose = true;
            } else if (f == 'o' || f == 'N' || f == 't') {
                std::string_view value;
                if (c + 1 < a.size()) {
                    value = std::string_view(a).substr(c + 1);
                } else if (i + 1 < args.size()) {
                    value = args[++i];
                } else {
                    return unexpected{std::string("-") + f + " needs a value"};
                }
                if (f == 'o') {
                    option_lists.push_back(value);
                } else if (f == 'N') {
                    return unexpected{std::string(
                        "-N (another mount namespace) is not supported: erofs-blobd mounts in its own mount namespace")};
                } else if (value != "erofs-blobd") {
                    return unexpected{"unsupported type '" + std::string(value) + "': this helper mounts type erofs-blobd"};
                }
                break;
            } else {
                return unexpected{"unknown argument '" + a + "'"};
            }
        }
    }
    if (positional.size() != 2) {
        return unexpected{std::string(positional.size() < 2 ? "missing" : "too many") +
                          " arguments: mount.erofs-blobd FSID DIR [-sfnv] [-o options]"};
    }
    inv.fsid = positional[0];
    inv.mountpoint = positional[1];
    if (inv.fsid.empty()) return unexpected{std::string("the source (FSID) is empty")};
    if (inv.mountpoint.empty()) return unexpected{std::string("the mount point is empty")};
    for (auto list : option_lists) {
        if (auto e = apply_options(list, inv); !e.empty()) return unexpected{std::move(e)};
    }
    return inv;
}

}  // namespace blobd::mount_helper
