// Fuzz check for erofs bootstraps (proto::erofs::parse_bootstrap, the fanotify frontend's reading
// of an image's device table).
//
// Input: the first bytes of an image, raw. What must hold: no crash or out-of-bounds read (ASan);
// a parse that succeeds found the magic at 1024, a block size of 2^9..2^16, and tags that are
// non-empty, at most 64 bytes and free of NUL; no more devices than 128-byte slots fit in the
// input. Test code; any thread.
#pragma once

#include <cstring>

#include "protocol/erofs/bootstrap.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace blobd::fuzz {

inline void check_erofs(std::span<const std::uint8_t> in) {
    namespace erofs = blobd::proto::erofs;
    const auto got = erofs::parse_bootstrap(std::as_bytes(in));
    if (!got) {
        FUZZ_REQUIRE(!got.error().empty());
        return;
    }
    FUZZ_REQUIRE(in.size() >= erofs::super_offset + 4);
    std::uint32_t magic;
    std::memcpy(&magic, in.data() + erofs::super_offset, 4);
    FUZZ_REQUIRE(magic == erofs::super_magic);
    FUZZ_REQUIRE(got->block_bits >= 9 && got->block_bits <= 16);
    FUZZ_REQUIRE(got->devices.size() * erofs::devt_slot_size <= in.size());
    for (const auto& d : got->devices) {
        FUZZ_REQUIRE(!d.tag.empty() && d.tag.size() <= erofs::tag_size);
        FUZZ_REQUIRE(d.tag.find('\0') == std::string::npos);
    }
}

}  // namespace blobd::fuzz
