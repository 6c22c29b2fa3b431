// Fuzz check for fanotify event runs (proto::fan::parse_events, the fanotify frontend's input).
//
// Input: the bytes of one read() of a group fd, raw. What must hold: the parser returns exactly the
// fds the kernel header's own walk (FAN_EVENT_OK / FAN_EVENT_NEXT) finds, in order, plus at most
// the one whose bad event length ended that walk (its header was read: its fd is real and must be
// answered); an overflow event is reported; ranges never pass 2^64; a response encodes to 8 bytes
// that decode back. Test code; any thread.
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
    // The oracle walks an aligned copy (a read() of a group fd is at most a few pages anyway).
    const std::size_t n = std::min<std::size_t>(in.size(), 1 << 20);
    std::vector<std::uint64_t> aligned(n / 8 + 2);
    std::memcpy(aligned.data(), in.data(), n);
    const auto* meta = reinterpret_cast<const fanotify_event_metadata*>(aligned.data());
    long len = static_cast<long>(n);
    if (n < in.size()) return;  // not a read() of a group fd
    std::vector<int> expect;
    bool overflow = false;
    while (FAN_EVENT_OK(meta, len)) {
        if (meta->fd >= 0) expect.push_back(meta->fd);
        if (meta->fd == FAN_NOFD) overflow = true;
        meta = FAN_EVENT_NEXT(meta, len);
    }
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
