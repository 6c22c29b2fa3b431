#include "frontends/fanotify/bdi.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/log.hpp"
#include "base/unique_fd.hpp"

namespace blobd::fanotify {

namespace {
const log::logger lg{"fanotify"};

// include/uapi/linux/fs.h of Linux 6.10; older userspace headers lack it.
struct fs_sysfs_path_abi {
    unsigned char len;
    unsigned char name[128];
};
constexpr unsigned long ioc_getfssysfspath = _IOR(0x15, 1, fs_sysfs_path_abi);
}  // namespace

std::optional<std::string> bdi_name_of_sysfs_path(std::string_view p) {
    constexpr std::string_view prefix = "erofs/";
    if (!p.starts_with(prefix)) return std::nullopt;
    p.remove_prefix(prefix.size());
    if (p.empty() || p == "." || p == ".." || p.find('/') != std::string_view::npos ||
        p.find('\0') != std::string_view::npos) {
        return std::nullopt;
    }
    return std::string(p);
}

result<std::string, std::string> erofs_bdi_dir(const std::string& mountpoint, const std::string& bdi_root) {
    // The root directory: opening it reads no file data (no event), and a directory fd is enough
    // for the ioctl.
    unique_fd fd(::open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return unexpected{fmt::format("open {}: {}", mountpoint, std::strerror(errno))};
    fs_sysfs_path_abi answer{};
    if (::ioctl(fd.get(), ioc_getfssysfspath, &answer) < 0) {
        return unexpected{fmt::format("FS_IOC_GETFSSYSFSPATH on {}: {} (Linux >= 6.10 answers it)", mountpoint,
                                      std::strerror(errno))};
    }
    const std::string_view path(reinterpret_cast<const char*>(answer.name),
                                std::min<std::size_t>(answer.len, sizeof answer.name));
    auto name = bdi_name_of_sysfs_path(path);
    if (!name) return unexpected{fmt::format("{} is not a file-backed erofs mount (sysfs path \"{}\")", mountpoint, path)};
    std::string dir = bdi_root + "/" + *name;
    struct stat st {};
    if (::stat((dir + "/read_ahead_kb").c_str(), &st) < 0) {
        return unexpected{fmt::format("{}/read_ahead_kb: {}", dir, std::strerror(errno))};
    }
    return dir;
}

result<std::string, std::string> set_erofs_read_ahead_kb(const std::string& mountpoint, std::uint32_t kb,
                                                         const std::string& bdi_root) {
    auto dir = erofs_bdi_dir(mountpoint, bdi_root);
    if (!dir) return dir;
    const std::string file = *dir + "/read_ahead_kb";
    unique_fd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return unexpected{fmt::format("open {}: {}", file, std::strerror(errno))};
    const std::string text = fmt::format("{}\n", kb);
    const ssize_t n = ::write(fd.get(), text.data(), text.size());
    if (n != static_cast<ssize_t>(text.size())) {
        return unexpected{fmt::format("write {} to {}: {}", kb, file, n < 0 ? std::strerror(errno) : "short write")};
    }
    return dir;
}

void raise_read_ahead(const std::string& mountpoint, std::uint32_t kb) noexcept {
    if (kb == 0) return;
    try {
        auto r = set_erofs_read_ahead_kb(mountpoint, kb);
        if (r) {
            lg.debug("{}: {}/read_ahead_kb = {}", mountpoint, *r, kb);
        } else {
            lg.warn("{}: readahead left at the kernel's default (more pre-content events per read): {}", mountpoint,
                    r.error());
        }
    } catch (const std::exception& e) {
        lg.warn("{}: setting readahead: {}", mountpoint, e.what());
    }
}

}  // namespace blobd::fanotify
