// Digest names: blobs named by their content ("sha256:<hex>" or "<hex>"). Pure string checks,
// shared by the blob store (which verifies such blobs) and the OCI fetcher (which maps them to
// registry blobs). Header-only; any thread.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace blobd {

/// "sha256:<64 hex>" or "<64 hex>" (lowercase) -> the 64 lowercase hex digits; otherwise empty.
inline std::string sha256_of_name(std::string_view name) {
    constexpr std::string_view prefix = "sha256:";
    if (name.substr(0, prefix.size()) == prefix) name.remove_prefix(prefix.size());
    const bool hex64 = name.size() == 64 && std::all_of(name.begin(), name.end(), [](char c) {
                           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                       });
    return hex64 ? std::string(name) : std::string();
}

}  // namespace blobd
