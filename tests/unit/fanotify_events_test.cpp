// Tests of the fanotify event parser (protocol/fanotify/events.hpp): well-formed runs, every kind of
// malformed one, and a seeded mutation run checking that every fd in a readable header comes out
// exactly once (each must be answered and closed).
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "protocol/fanotify/events.hpp"
#include "tests/fuzz/fanotify_check.hpp"

using namespace blobd::proto::fan;

namespace {

struct builder {
    std::vector<std::byte> bytes;
    template <class T>
    void put(T v) {
        const auto at = bytes.size();
        bytes.resize(at + sizeof v);
        std::memcpy(bytes.data() + at, &v, sizeof v);
    }
    /// One event: header + optional range record + `extra` raw record bytes.
    builder& ev(int fd, std::uint64_t mask, std::optional<range> r, std::vector<std::byte> extra = {},
                std::uint8_t vers = metadata_version) {
        const std::uint32_t len = static_cast<std::uint32_t>(metadata_len + (r ? range_record_len : 0) + extra.size());
        put(len);
        put(vers);
        put(std::uint8_t{0});
        put(static_cast<std::uint16_t>(metadata_len));
        put(mask);
        put(static_cast<std::int32_t>(fd));
        put(std::int32_t{1234});
        if (r) {
            put(info_type_range);
            put(std::uint8_t{0});
            put(static_cast<std::uint16_t>(range_record_len));
            put(std::uint32_t{0});
            put(r->offset);
            put(r->count);
        }
        bytes.insert(bytes.end(), extra.begin(), extra.end());
        return *this;
    }
    std::span<const std::byte> span() const { return bytes; }
};

std::vector<std::byte> record(std::uint8_t type, std::uint16_t len) {
    std::vector<std::byte> r(len < 4 ? 4 : len, std::byte{0});
    r[0] = std::byte{type};
    std::memcpy(r.data() + 2, &len, 2);
    return r;
}

}  // namespace

// Description: a run of pre-access events, each with its fd, pid and range; an unknown info record
// is skipped; the response is {fd, code} in 8 bytes, FAN_DENY_ERRNO puts the errno in the top byte.
TEST_CASE("fanotify: well-formed events", "[fanotify]") {
    builder b;
    b.ev(7, pre_access, range{4096, 8192}).ev(8, pre_access, range{0, 262144}, record(4, 8));
    const batch got = parse_events(b.span());
    CHECK(got.trailing.empty());
    CHECK_FALSE(got.overflow);
    REQUIRE(got.events.size() == 2);
    CHECK(got.events[0].fd == 7);
    CHECK(got.events[0].pid == 1234);
    CHECK(got.events[0].mask == pre_access);
    CHECK(got.events[0].where == range{4096, 8192});
    CHECK(got.events[0].problem.empty());
    CHECK(got.events[1].where == range{0, 262144});
    CHECK(got.events[1].problem.empty());

    const auto r = encode_response(7, deny_errno(5));
    std::int32_t fd;
    std::uint32_t code;
    std::memcpy(&fd, r.data(), 4);
    std::memcpy(&code, r.data() + 4, 4);
    CHECK(fd == 7);
    CHECK(code == (deny | (5u << 24)));
    CHECK(parse_events({}).events.empty());
}

// Description: malformed events still come out with their fd (to be denied and closed), with the
// reason; a run that cannot be walked further stops there, saying why; an fd-less event is the
// queue overflow.
TEST_CASE("fanotify: malformed events keep their fd", "[fanotify]") {
    SECTION("no range record") {
        builder b;
        b.ev(5, pre_access, std::nullopt);
        const auto got = parse_events(b.span());
        REQUIRE(got.events.size() == 1);
        CHECK(got.events[0].fd == 5);
        CHECK_FALSE(got.events[0].where);
        CHECK(got.events[0].problem.empty());  // well formed; the frontend decides what no range means
    }
    SECTION("bad version") {
        builder b;
        b.ev(5, pre_access, range{0, 1}, {}, 2).ev(6, pre_access, range{0, 1});
        const auto got = parse_events(b.span());
        REQUIRE(got.events.size() == 2);
        CHECK(got.events[0].problem == "metadata version 2");
        CHECK(got.events[1].problem.empty());
    }
    SECTION("range record of the wrong size, truncated records, two ranges, a range past 2^64") {
        builder b;
        b.ev(5, pre_access, std::nullopt, record(info_type_range, 16));
        b.ev(6, pre_access, std::nullopt, std::vector<std::byte>(3, std::byte{0}));
        b.ev(7, pre_access, range{0, 1}, [] {
            builder r;
            r.ev(0, 0, range{0, 1});
            return std::vector<std::byte>(r.bytes.begin() + metadata_len, r.bytes.end());
        }());
        b.ev(8, pre_access, range{UINT64_MAX, 2});
        b.ev(9, pre_access, std::nullopt, record(1, 2));  // length below the header
        const auto got = parse_events(b.span());
        REQUIRE(got.events.size() == 5);
        CHECK(got.events[0].problem == "range record of 16 bytes");
        CHECK(got.events[1].problem == "truncated info record header");
        CHECK(got.events[2].problem == "two range records");
        CHECK(got.events[3].problem == "range past 2^64");
        CHECK(got.events[4].problem == "info record of 2 bytes with 4 left");
        CHECK(got.trailing.empty());
    }
    SECTION("event length past the buffer, or below the header") {
        builder b;
        b.ev(5, pre_access, range{0, 1});
        b.bytes.resize(b.bytes.size() - 1);  // a short read cut the last record
        auto got = parse_events(b.span());
        REQUIRE(got.events.size() == 1);
        CHECK(got.events[0].fd == 5);
        CHECK_FALSE(got.events[0].problem.empty());
        CHECK_FALSE(got.trailing.empty());

        builder c;
        c.ev(5, pre_access, range{0, 1});
        const std::uint32_t tiny = 8;
        std::memcpy(c.bytes.data(), &tiny, 4);
        c.ev(6, pre_access, range{0, 1});  // unreachable: the walk cannot find it
        got = parse_events(c.span());
        REQUIRE(got.events.size() == 1);
        CHECK(got.events[0].fd == 5);
        CHECK(got.events[0].problem == "event length 8 with 96 bytes left");
    }
    SECTION("a header cut short reports no fd") {
        builder b;
        b.ev(5, pre_access, range{0, 1});
        b.bytes.resize(20);
        const auto got = parse_events(b.span());
        CHECK(got.events.empty());
        CHECK(got.trailing == "20 bytes after the last event");
    }
    SECTION("queue overflow") {
        builder b;
        b.ev(no_fd, q_overflow, std::nullopt).ev(5, pre_access, range{0, 1});
        const auto got = parse_events(b.span());
        CHECK(got.overflow);
        REQUIRE(got.events.size() == 1);
        CHECK(got.events[0].fd == 5);
    }
}

// Description: seeded mutations of valid runs (bytes flipped, cut, lengths rewritten): the parser
// never reads out of bounds (ASan in CI), and it returns exactly the fds the kernel header's own
// walk (FAN_EVENT_OK / FAN_EVENT_NEXT) finds, in order, plus at most the one event whose bad length
// ended that walk (its header was read, so its fd is real and must be answered). The oracle is the
// fuzz target's (tests/fuzz/fanotify_check.hpp); a broken rule aborts, naming the seed.
TEST_CASE("fanotify: mutated runs never lose or invent an fd", "[fanotify]") {
    for (unsigned seed = 1; seed <= 3000; ++seed) {
        INFO("seed " << seed);
        std::mt19937 rng(seed);
        builder b;
        const int n = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < n; ++i) {
            b.ev(100 + i, pre_access, rng() % 4 ? std::optional<range>(range{rng(), rng() % 65536}) : std::nullopt,
                 rng() % 3 ? std::vector<std::byte>{} : record(static_cast<std::uint8_t>(rng() % 8), 4 + rng() % 20));
        }
        const int flips = static_cast<int>(rng() % 6);
        for (int i = 0; i < flips; ++i) b.bytes[rng() % b.bytes.size()] = static_cast<std::byte>(rng());
        if (rng() % 3 == 0) b.bytes.resize(rng() % (b.bytes.size() + 1));
        blobd::fuzz::input_name() = "fanotify mutation seed " + std::to_string(seed);
        blobd::fuzz::check_fanotify({reinterpret_cast<const std::uint8_t*>(b.bytes.data()), b.bytes.size()});
    }
    blobd::fuzz::input_name().clear();
}
