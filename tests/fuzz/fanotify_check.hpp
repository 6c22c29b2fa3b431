// Fuzz check for fanotify event runs (proto::fan::parse_events, the fanotify frontend's input).
//
// Input: the bytes of one read() of a group fd, raw. What must hold: the parser returns exactly the
// fds the kernel header's own walk (FAN_EVENT_OK / FAN_EVENT_NEXT) finds, in order, plus at most
// the one whose bad event length ended that walk (its header was read: its fd is real and must be
// answered); an overflow event is reported; every fd returned is >= 0; ranges never pass 2^64; a
// response's first 4 bytes read back as the event's fd. Test code; any thread.
#pragma once

#include <linux/fanotify.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "protocol/fanotify/events.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace blobd::fuzz {

inline void check_fanotify(std::span<const std::uint8_t> in) {
    namespace fan = blobd::proto::fan;
    const auto got = fan::parse_events(std::as_bytes(in));
    // The oracle: the kernel header's FAN_EVENT_OK / FAN_EVENT_NEXT walk, each header copied out
    // first (an odd event_len leaves the next header unaligned).
    long len = static_cast<long>(in.size());
    std::size_t at = 0;
    fanotify_event_metadata m{};
    const auto load = [&] {
        if (len >= static_cast<long>(sizeof m)) std::memcpy(&m, in.data() + at, sizeof m);
    };
    load();
    std::vector<int> expect;
    bool overflow = false;
    while (FAN_EVENT_OK(&m, len)) {
        if (m.fd >= 0) expect.push_back(m.fd);
        if (m.fd == FAN_NOFD) overflow = true;
        at += m.event_len;
        len -= m.event_len;
        load();
    }
    const auto* meta = &m;
    FUZZ_REQUIRE(got.events.size() >= expect.size() && got.events.size() <= expect.size() + 1);
    for (std::size_t i = 0; i < expect.size(); ++i) FUZZ_REQUIRE(got.events[i].fd == expect[i]);
    if (got.events.size() == expect.size() + 1) {
        FUZZ_REQUIRE(len >= static_cast<long>(fan::metadata_len) && meta->fd == got.events.back().fd);
        FUZZ_REQUIRE(!got.trailing.empty());
    }
    if (overflow) FUZZ_REQUIRE(got.overflow);
    for (const auto& e : got.events) {
        FUZZ_REQUIRE(e.fd >= 0);
        if (e.where) FUZZ_REQUIRE(e.where->count <= UINT64_MAX - e.where->offset);
        const auto r = fan::encode_response(e.fd, fan::deny_errno(5));
        std::int32_t fd;
        std::memcpy(&fd, r.data(), 4);
        FUZZ_REQUIRE(fd == e.fd);
    }
}

}  // namespace blobd::fuzz
