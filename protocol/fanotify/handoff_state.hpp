// What the fanotify frontend writes down for the next daemon (docs/fanotify.md, "Restarts"): its
// cache files and its mounts, as JSON in <cache_dir>/fanotify/state.json. A successor reads it to
// take the files over (from the service manager's fd store, or by opening them again) and to find
// which mounts of its predecessor are still up.
//
// Pure: encode and decode only; decode checks every field (the file may be damaged or hand
// edited) and fails with one line naming the first bad one. Nothing thrown. Any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace blobd::proto::fan {

struct saved_blob {
    std::string domain, tag;
    std::string path;     ///< the sparse cache file
    std::string fdname;   ///< its fd's name in the service manager's store
    std::uint64_t size = 0;
    std::uint64_t dev = 0, ino = 0;  ///< the file's identity, checked before it is taken over
    bool operator==(const saved_blob&) const = default;
};

struct saved_mount {
    std::string mountpoint, domain, fsid;
    std::string boot;               ///< the bootstrap file (the mount's source in mountinfo)
    std::vector<std::string> tags;  ///< its blobs, in device-table order
    /// false: written just before mount(2), which may or may not have happened (mountinfo tells).
    bool mounted = false;
    bool operator==(const saved_mount&) const = default;
};

struct saved_state {
    std::uint64_t next_boot = 1;  ///< the counter of bootstrap file names
    std::vector<saved_blob> blobs;
    std::vector<saved_mount> mounts;
    bool operator==(const saved_state&) const = default;
};

inline constexpr int state_version = 1;

std::string encode_state(const saved_state& s);
result<saved_state, std::string> decode_state(std::string_view text);

}  // namespace blobd::proto::fan
