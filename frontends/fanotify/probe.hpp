// Whether the fanotify frontend can run here: the kernel's pre-content events and a cache
// directory on a filesystem that supports them. What `frontend: "auto"` and the fanotify
// frontend's start ask first, so that a missing feature is one line that names the fix instead of
// a failure at the first mount (see docs/fanotify.md).
//
// Threading: any thread; blocking (a few syscalls). Leaves nothing behind (the probe file is an
// O_TMPFILE, the group is closed).
#pragma once

#include <string>

#include "base/result.hpp"

namespace blobd::fanotify {

/// Checks, in order: a FAN_CLASS_PRE_CONTENT group can be made (root, and
/// CONFIG_FANOTIFY_ACCESS_PERMISSIONS); a FAN_PRE_ACCESS mark (Linux >= 6.14) can be put on a file
/// in `cache_dir` (ext4, xfs or btrfs). The error says what is missing and how to fix it.
result<bool, std::string> probe(const std::string& cache_dir);

/// The name of the filesystem type `f_type` (statfs), for messages: "tmpfs", "overlayfs", ...,
/// or its number in hex.
std::string fs_type_name(long f_type);

}  // namespace blobd::fanotify
