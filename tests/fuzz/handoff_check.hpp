// Fuzz check for what a restarting fanotify daemon reads: /proc/self/mountinfo
// (proto::parse_mountinfo) and its predecessor's state.json (proto::fan::decode_state).
//
// Input: text, given to both parsers. What must hold: no crash; every mount entry has a mount
// point, a type and a source, none holding a newline (lines are split first); unescaping never
// makes a field longer; a state that decodes encodes and decodes again to the same value, and a
// failed decode says why. Test code; any thread.
#pragma once

#include <string_view>

#include "protocol/fanotify/handoff_state.hpp"
#include "protocol/mountinfo.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace blobd::fuzz {

inline void check_handoff(std::span<const std::uint8_t> in) {
    const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
    for (const auto& e : proto::parse_mountinfo(text)) {
        FUZZ_REQUIRE(!e.mount_point.empty() && !e.fstype.empty() && !e.source.empty());
        FUZZ_REQUIRE(e.mount_point.size() <= text.size() && e.source.size() <= text.size());
    }
    const auto s = proto::fan::decode_state(text);
    if (!s) {
        FUZZ_REQUIRE(!s.error().empty());
        return;
    }
    const auto again = proto::fan::decode_state(proto::fan::encode_state(*s));
    // Decoded strings are valid UTF-8 (the JSON parser checks), so the round trip is exact.
    FUZZ_REQUIRE(again && *again == *s);
}

}  // namespace blobd::fuzz
