// The backing_dev_info (bdi) of a file-backed erofs mount, and its readahead.
//
// erofs gives each file-backed mount a bdi of its own, /sys/class/bdi/erofs-N (N: the kernel's
// global bdi counter, unrelated to st_dev), with the default read_ahead_kb of 128. Its readahead
// sets how large the reads erofs sends to the cache file are, i.e. how many pre-content events a
// sequential reader raises: 258 per 64 MiB at 128 KiB, 39 at 1024 (docs/fanotify.md). The mount
// is found by asking the kernel, not by guessing from the order of /sys/class/bdi entries:
// FS_IOC_GETFSSYSFSPATH (Linux >= 6.10) on the mount's root answers "erofs/<name>", and erofs
// names a file-backed mount's sysfs directory after its bdi (fs/erofs/super.c,
// erofs_set_sysfs_name: bdi_dev_name(sb->s_bdi)), so <name> is the bdi's name.
//
// Threading: any thread; blocking (open, ioctl, a sysfs write). Owns nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace blobd::fanotify {

/// The bdi name in an FS_IOC_GETFSSYSFSPATH answer for an erofs mount: "erofs/erofs-3" ->
/// "erofs-3". Nothing for another filesystem, or a name that is not one plain path component (a
/// fscache-mode mount's "<domain>,<fsid>" passes: it is checked against /sys/class/bdi later). Pure.
std::optional<std::string> bdi_name_of_sysfs_path(std::string_view sysfs_path);

/// The bdi directory (`bdi_root`/<name>) of the erofs mount whose root is `mountpoint`. The error
/// is one line (no such ioctl, not erofs, no such bdi).
result<std::string, std::string> erofs_bdi_dir(const std::string& mountpoint,
                                               const std::string& bdi_root = "/sys/class/bdi");

/// Writes `kb` into the read_ahead_kb of that bdi; returns the bdi directory. The error is one line.
result<std::string, std::string> set_erofs_read_ahead_kb(const std::string& mountpoint, std::uint32_t kb,
                                                         const std::string& bdi_root = "/sys/class/bdi");

/// What the frontend calls after each mount: set_erofs_read_ahead_kb, a failure logged as a
/// warning (the mount works, with more events); `kb` 0 leaves the kernel's value. Never throws.
void raise_read_ahead(const std::string& mountpoint, std::uint32_t kb) noexcept;

}  // namespace blobd::fanotify
