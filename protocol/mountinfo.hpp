// The kernel's mount table as /proc/<pid>/mountinfo prints it, parsed into owned values: which
// filesystem of which type is mounted from where. The fanotify frontend reads it to see mounts of
// its own go (an unmount by umount(8), a systemd mount unit stopping) and, after a restart, which
// of the mounts it made are still up.
//
// Line format (proc(5)): "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE
// SUPEROPTIONS". Space, tab, newline and backslash in the path fields are written as \ooo octal
// escapes, undone here. Pure: no syscalls, nothing thrown; a malformed line is skipped. Any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace blobd::proto {

struct mount_entry {
    std::string mount_point;  ///< unescaped
    std::string fstype;       ///< "erofs", "ext4", ...
    std::string source;       ///< unescaped: for a file-backed erofs mount, the image file's path
    bool operator==(const mount_entry&) const = default;
};

/// Every well-formed line of `text`, in order.
std::vector<mount_entry> parse_mountinfo(std::string_view text);

/// Undoes the kernel's \ooo escapes (seq_file's mangle: space, tab, newline, backslash); an escape
/// that is not three octal digits stays as it is.
std::string unescape_mount_field(std::string_view field);

}  // namespace blobd::proto
