#include "frontends/fanotify/probe.hpp"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/unique_fd.hpp"
#include "protocol/fanotify/events.hpp"

namespace blobd::fanotify {

std::string fs_type_name(long f_type) {
    // The common ones a cache dir lands on by mistake, and the three that work.
    switch (static_cast<unsigned long>(f_type)) {
        case 0xEF53: return "ext4";
        case 0x58465342: return "xfs";
        case 0x9123683E: return "btrfs";
        case 0x01021994: return "tmpfs";
        case 0x794C7630: return "overlayfs";
        case 0x6969: return "nfs";
        case 0xFF534D42: return "cifs";
        case 0x65735546: return "fuse";
        case 0x2FC12FC1: return "zfs";
        case 0x858458F6: return "ramfs";
        default: return fmt::format("filesystem type {:#x}", static_cast<unsigned long>(f_type));
    }
}

result<bool, std::string> probe(const std::string& cache_dir) {
    unique_fd group(::fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, O_RDWR | O_LARGEFILE));
    if (!group) {
        const int err = errno;
        if (err == EPERM) return unexpected{std::string("fanotify pre-content events need CAP_SYS_ADMIN: run as root")};
        if (err == EINVAL || err == ENOSYS) {
            return unexpected{std::string(
                "this kernel has no fanotify permission events (CONFIG_FANOTIFY_ACCESS_PERMISSIONS): "
                "use the cachefiles frontend, or a kernel built with it (6.14 or later)")};
        }
        return unexpected{fmt::format("fanotify_init: {}", std::strerror(err))};
    }
    // An unnamed file in the cache dir: its filesystem is the one that matters, and nothing is left.
    unique_fd probe_file(::open(cache_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!probe_file) {
        const int err = errno;
        if (err == ENOENT || err == ENOTDIR) {
            return unexpected{fmt::format("cache dir {}: {}", cache_dir, std::strerror(err))};
        }
        // Some filesystems have no O_TMPFILE; the mark check below needs a file on this one.
        if (err != EOPNOTSUPP && err != EISDIR) {
            return unexpected{fmt::format("cache dir {}: cannot create a file: {}", cache_dir, std::strerror(err))};
        }
    }
    struct statfs sf {};
    const int where = probe_file ? probe_file.get() : -1;
    if ((probe_file ? ::fstatfs(where, &sf) : ::statfs(cache_dir.c_str(), &sf)) < 0) {
        return unexpected{fmt::format("cache dir {}: statfs: {}", cache_dir, std::strerror(errno))};
    }
    const std::string fs = fs_type_name(static_cast<long>(sf.f_type));
    if (!probe_file) {
        return unexpected{fmt::format("cache dir {} is on {}, which cannot hold fanotify-marked cache files; "
                                      "pre-content events need ext4, xfs or btrfs",
                                      cache_dir, fs)};
    }
    if (::fanotify_mark(group.get(), FAN_MARK_ADD, proto::fan::pre_access, where, nullptr) < 0) {
        const int err = errno;
        if (err == EOPNOTSUPP) {
            return unexpected{fmt::format("cache dir {} is on {}; fanotify pre-content events need ext4, xfs or "
                                          "btrfs: put cache.dir there",
                                          cache_dir, fs)};
        }
        if (err == EINVAL) {
            return unexpected{std::string(
                "this kernel has no FAN_PRE_ACCESS (fanotify pre-content events came in Linux 6.14): "
                "use the cachefiles frontend on this kernel")};
        }
        return unexpected{fmt::format("fanotify_mark on a file in {}: {}", cache_dir, std::strerror(err))};
    }
    return true;
}

}  // namespace blobd::fanotify
