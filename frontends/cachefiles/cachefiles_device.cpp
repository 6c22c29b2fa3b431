#include "frontends/cachefiles/device.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "base/log.hpp"
#include "protocol/uapi/cachefiles.h"

namespace blobd {

namespace {

std::string errstr(int e) { return std::strerror(e); }

// Startup errors name the likely cause and the fix: this is the first thing a new user sees.
std::string open_error(const std::string& path, int e) {
    switch (e) {
        case ENOENT:
        case ENXIO:
        case ENODEV:
            return fmt::format("cannot open {}: {}: the cachefiles module is not loaded "
                               "(run 'modprobe cachefiles'; the kernel needs CONFIG_CACHEFILES)", path, errstr(e));
        case EBUSY:
            return fmt::format("cannot open {}: {}: another cachefiles daemon holds it "
                               "(stop it first, e.g. 'systemctl stop cachefilesd')", path, errstr(e));
        case EACCES:
        case EPERM:
            return fmt::format("cannot open {}: {}: run as root (CAP_SYS_ADMIN is required)", path, errstr(e));
        default:
            return fmt::format("cannot open {}: {}", path, errstr(e));
    }
}

std::string command_error(std::string_view cmd, const std::string& cache_dir, int e) {
    if (cmd == "bind ondemand") {
        switch (e) {
            case EINVAL:
            case EOPNOTSUPP:
                return fmt::format("'bind ondemand' failed: {}: the kernel lacks on-demand mode "
                                   "(build it with CONFIG_CACHEFILES_ONDEMAND=y; see docs/real-kernel-testing.md)",
                                   errstr(e));
            case ENOENT:
            case ENOTDIR:
                return fmt::format("'bind ondemand' failed: {}: the cache dir {} must exist (mkdir -p it)",
                                   errstr(e), cache_dir);
            default:
                return fmt::format("'bind ondemand' failed: {}: check that {} is on a filesystem with user "
                                   "xattrs (ext4, xfs, btrfs; not tmpfs) and not used by another cache",
                                   errstr(e), cache_dir);
        }
    }
    return fmt::format("'{}' failed: {}", cmd, errstr(e));
}

}  // namespace

result<std::unique_ptr<cachefiles_device>, std::string> cachefiles_device::open(const std::string& path,
                                                                                 const std::string& cache_dir,
                                                                                 const std::string& tag,
                                                                                 const proto::cull_limits& blocks,
                                                                                 const proto::cull_limits& files) {
    unique_fd fd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd) return unexpected{open_error(path, errno)};
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0 || !S_ISCHR(st.st_mode)) {
        // A regular file would accept the commands and then poll readable forever.
        return unexpected{fmt::format("{} is not a character device: point \"device\" at /dev/cachefiles", path)};
    }
    auto dev = std::make_unique<cachefiles_device>(std::move(fd));
    std::vector<std::string> cmds = {"dir " + cache_dir, "tag " + tag};
    // Before the bind, which checks the space against them: below bstop/fstop the kernel refuses
    // cache writes, so they must be ours, not its defaults (1 %).
    for (auto& c : proto::cull_limit_commands('b', blocks)) cmds.push_back(std::move(c));
    for (auto& c : proto::cull_limit_commands('f', files)) cmds.push_back(std::move(c));
    cmds.emplace_back("bind ondemand");
    for (const auto& c : cmds) {
        if (int r = dev->send(c); r < 0) return unexpected{command_error(c, cache_dir, -r)};
    }
    return dev;
}

result<std::unique_ptr<cachefiles_device>, std::string> cachefiles_device::adopt(unique_fd fd) {
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0 || !S_ISCHR(st.st_mode)) {
        return unexpected{std::string("the kept device fd is not a character device")};
    }
    // Reads must never block the loop; the previous owner opened it O_NONBLOCK, but make sure.
    if (int fl = ::fcntl(fd.get(), F_GETFL); fl >= 0 && !(fl & O_NONBLOCK)) ::fcntl(fd.get(), F_SETFL, fl | O_NONBLOCK);
    auto dev = std::make_unique<cachefiles_device>(std::move(fd));
    if (int r = dev->send("restore"); r < 0) {
        if (r == -EOPNOTSUPP) {
            return unexpected{std::string("the kept device fd is not bound in on-demand mode ('restore': ") +
                              errstr(-r) + ")"};
        }
        // EINVAL: a kernel older than the `restore` command (upstream 6.3, backported to Debian's
        // 6.1). The binding still works; only requests the old process had taken are lost.
        log::logger{"device"}.warn("'restore' failed: {}: requests the previous daemon had read but not "
                                      "answered will not be handed out again (their readers wait until killed)",
                                      errstr(-r));
    }
    return dev;
}

ssize_t cachefiles_device::read_message(std::span<std::byte> buf) {
    for (;;) {
        ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        return -errno;
    }
}

int cachefiles_device::send(std::string_view command) {
    for (;;) {
        ssize_t n = ::write(fd_.get(), command.data(), command.size());
        if (n >= 0) return 0;  // the kernel takes a command whole or not at all
        if (errno == EINTR) continue;
        return -errno;
    }
}

int cachefiles_device::complete_read(int anon_fd, std::uint32_t msg_id) {
    if (::ioctl(anon_fd, CACHEFILES_IOC_READ_COMPLETE, static_cast<unsigned long>(msg_id)) < 0) return -errno;
    return 0;
}

}  // namespace blobd
