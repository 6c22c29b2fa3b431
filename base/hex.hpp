// Lowercase hex encoding of bytes (digests, short ids in file names). Header-only; any thread.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace blobd {

/// "0a1b..." for the bytes: two lowercase hex digits per byte, in order.
inline std::string to_hex(std::span<const unsigned char> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
    return out;
}

}  // namespace blobd
