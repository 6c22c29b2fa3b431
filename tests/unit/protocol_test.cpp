// Unit tests of protocol/: parsing kernel messages and encoding commands.
#include <catch2/catch.hpp>

#include <cstdio>

#include <cerrno>
#include <cstring>
#include <vector>

#include "protocol/message.hpp"

using namespace blobd;
using namespace blobd::proto;

namespace {

struct builder {
    std::vector<std::byte> bytes;
    void u32(std::uint32_t v) { raw(&v, 4); }
    void u64(std::uint64_t v) { raw(&v, 8); }
    void raw(const void* p, std::size_t n) {
        auto* b = static_cast<const std::byte*>(p);
        bytes.insert(bytes.end(), b, b + n);
    }
    void str(std::string_view s) { raw(s.data(), s.size()); }
    void fix_len() {
        auto n = static_cast<std::uint32_t>(bytes.size());
        std::memcpy(bytes.data() + 8, &n, 4);
    }
};

// OPEN exactly as observed from a 6.1 kernel: volume key "erofs,d1" (size 9 with its NUL),
// cookie key "img1" (size 4).
std::vector<std::byte> open_msg(std::uint32_t msg_id, std::uint32_t obj, std::uint32_t fd, std::string_view vol = "erofs,d1",
                                std::string_view cookie = "img1") {
    builder b;
    b.u32(msg_id);
    b.u32(CACHEFILES_OP_OPEN);
    b.u32(0);
    b.u32(obj);
    b.u32(static_cast<std::uint32_t>(vol.size() + 1));
    b.u32(static_cast<std::uint32_t>(cookie.size()));
    b.u32(fd);
    b.u32(0);
    b.str(vol);
    b.raw("", 1);
    b.str(cookie);
    b.fix_len();
    return b.bytes;
}

std::vector<std::byte> read_msg(std::uint32_t msg_id, std::uint32_t obj, std::uint64_t off, std::uint64_t len) {
    builder b;
    b.u32(msg_id);
    b.u32(CACHEFILES_OP_READ);
    b.u32(32);
    b.u32(obj);
    b.u64(off);
    b.u64(len);
    return b.bytes;
}

std::vector<std::byte> close_msg(std::uint32_t msg_id, std::uint32_t obj) {
    builder b;
    b.u32(msg_id);
    b.u32(CACHEFILES_OP_CLOSE);
    b.u32(16);
    b.u32(obj);
    return b.bytes;
}

void set_u32(std::vector<std::byte>& m, std::size_t at, std::uint32_t v) { std::memcpy(m.data() + at, &v, 4); }

}  // namespace

// Description: a well-formed OPEN as the kernel sends it parses into its fields.
TEST_CASE("OPEN golden vector", "[protocol]") {
    auto m = open_msg(7, 3, 42, "erofs,img1", "img1");
    REQUIRE(m.size() == 47);  // the size observed in the UML guest for fsid img1 without a domain
    auto r = parse(m);
    REQUIRE(r);
    auto& o = std::get<open_request>(*r);
    CHECK(o.msg_id == 7);
    CHECK(o.object_id == 3);
    CHECK(o.fd == 42);
    CHECK(o.flags == 0);
    CHECK(o.volume_key == "erofs,img1");
    CHECK(o.cookie_key == "img1");
}

// Description: READ and CLOSE golden vectors.
TEST_CASE("READ and CLOSE golden vectors", "[protocol]") {
    auto r = parse(read_msg(9, 3, 4096, 131072));
    REQUIRE(r);
    auto& rd = std::get<read_request>(*r);
    CHECK(rd.msg_id == 9);
    CHECK(rd.object_id == 3);
    CHECK(rd.off == 4096);
    CHECK(rd.len == 131072);
    auto c = parse(close_msg(10, 3));
    REQUIRE(c);
    CHECK(std::get<close_request>(*c).object_id == 3);
}

// Description: every truncation of every message kind is rejected, and an OPEN truncated after
// its fd field still hands the fd back.
TEST_CASE("every truncation is rejected", "[protocol]") {
    for (auto full : {open_msg(1, 2, 5), read_msg(1, 2, 0, 4096), close_msg(1, 2)}) {
        for (std::size_t n = 0; n < full.size(); ++n) {
            std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<long>(n));
            auto r = parse(cut);
            INFO("length " << n << " of " << full.size());
            REQUIRE_FALSE(r);
            if (n < 16) {
                CHECK(r.error().ec == errc::truncated_header);
                CHECK_FALSE(r.error().msg_id);
            } else {
                CHECK(r.error().msg_id == 1u);
                CHECK(r.error().ec == errc::length_mismatch);
            }
            if (full.size() == 47 && n >= 32) CHECK(r.error().stray_fd == 5);
            if (n < 32) CHECK(r.error().stray_fd == -1);
        }
    }
}

// Description: a header length that matches a truncated buffer is still caught by the payload checks.
TEST_CASE("consistent length but short payload", "[protocol]") {
    auto m = open_msg(1, 2, 5);
    m.resize(40);
    set_u32(m, 8, 40);
    auto r = parse(m);
    REQUIRE_FALSE(r);
    CHECK(r.error().ec == errc::key_overflow);
    CHECK(r.error().stray_fd == 5);

    auto rd = read_msg(1, 2, 0, 1);
    rd.resize(24);
    set_u32(rd, 8, 24);
    CHECK(parse(rd).error().ec == errc::truncated_payload);

    auto c = close_msg(1, 2);
    c.resize(20);
    set_u32(c, 8, 20);
    CHECK(parse(c).error().ec == errc::truncated_payload);
}

// Description: hostile key sizes (0xffffffff, sums that wrap in 32 bits, beyond the payload) are refused.
TEST_CASE("key size overflow", "[protocol]") {
    auto m = open_msg(1, 2, 5);
    SECTION("volume size 0xffffffff") {
        set_u32(m, 16, 0xffffffffu);
        CHECK(parse(m).error().ec == errc::key_overflow);
    }
    SECTION("sizes that wrap to a small sum in 32 bits") {
        set_u32(m, 16, 0xfffffff0u);
        set_u32(m, 20, 0x20u);
        CHECK(parse(m).error().ec == errc::key_overflow);
    }
    SECTION("cookie one byte beyond the payload") {
        set_u32(m, 20, 5);
        CHECK(parse(m).error().ec == errc::key_overflow);
    }
    SECTION("zero-length cookie") {
        set_u32(m, 20, 0);
        CHECK(parse(m).error().ec == errc::empty_key);
    }
    SECTION("zero-length volume key") {
        set_u32(m, 16, 0);
        CHECK(parse(m).error().ec == errc::empty_key);
    }
    SECTION("volume key not NUL-terminated") {
        set_u32(m, 16, 8);  // the NUL now belongs to the cookie
        set_u32(m, 20, 5);
        CHECK(parse(m).error().ec == errc::volume_key_not_terminated);
    }
    CHECK(parse(m).error().stray_fd == 5);
}

// Description: a NUL inside the volume key ends it (C string), and a cookie may contain any byte.
TEST_CASE("embedded NULs", "[protocol]") {
    auto m = open_msg(1, 2, 5, std::string_view("erofs,d1\0xx", 11), std::string_view("a\0b", 3));
    auto r = parse(m);
    REQUIRE(r);
    CHECK(std::get<open_request>(*r).volume_key == "erofs,d1");
    CHECK(std::get<open_request>(*r).cookie_key == std::string("a\0b", 3));
    CHECK(cookie_name_problem(std::get<open_request>(*r).cookie_key));
}

// Description: header lies (len too big, too small, message over the max), unknown opcodes, bad fds, READ wraparound.
TEST_CASE("header and field validation", "[protocol]") {
    auto m = read_msg(1, 2, 0, 1);
    set_u32(m, 8, 33);
    CHECK(parse(m).error().ec == errc::length_mismatch);
    set_u32(m, 8, 0);
    CHECK(parse(m).error().ec == errc::length_mismatch);

    std::vector<std::byte> big(1025);
    set_u32(big, 8, 1025);
    CHECK(parse(big).error().ec == errc::too_long);

    auto u = close_msg(1, 2);
    set_u32(u, 4, 3);
    CHECK(parse(u).error().ec == errc::unknown_opcode);
    CHECK(parse(u).error().opcode == 3u);

    auto o = open_msg(1, 2, 0x80000000u);
    auto r = parse(o);
    CHECK(r.error().ec == errc::bad_fd);
    CHECK(r.error().stray_fd == -1);

    auto w = read_msg(1, 2, ~0ull - 10, 11);
    CHECK(parse(w).error().ec == errc::read_overflow);
    CHECK(parse(read_msg(1, 2, ~0ull - 10, 10)));
}

// Description: a 255-byte cookie (fscache's limit) parses; 256 does not.
TEST_CASE("key length limits", "[protocol]") {
    std::string c255(255, 'a');
    CHECK(parse(open_msg(1, 2, 5, "erofs,d", c255)));
    std::string c256(256, 'a');
    CHECK(parse(open_msg(1, 2, 5, "erofs,d", c256)).error().ec == errc::key_overflow);
}

// Description: exact command strings the kernel parses.
TEST_CASE("copen encoding", "[protocol]") {
    CHECK(copen(7, 1048576) == "copen 7,1048576");
    CHECK(copen(0, 0) == "copen 0,0");
    CHECK(copen(4294967295u, -ENOENT) == "copen 4294967295,-2");
    CHECK(copen(3, 1ll << 40) == "copen 3,1099511627776");
}

// Description: cookie names that could escape a directory or confuse a URL are refused.
TEST_CASE("cookie name validation", "[protocol]") {
    CHECK_FALSE(cookie_name_problem("img1"));
    CHECK_FALSE(cookie_name_problem("sha256:abcdef"));
    CHECK_FALSE(cookie_name_problem("blob.with.dots"));
    CHECK_FALSE(cookie_name_problem("..."));
    CHECK_FALSE(cookie_name_problem(std::string(255, 'x')));
    CHECK(cookie_name_problem(""));
    CHECK(cookie_name_problem("."));
    CHECK(cookie_name_problem(".."));
    CHECK(cookie_name_problem("../x"));
    CHECK(cookie_name_problem("a/b"));
    CHECK(cookie_name_problem("/etc/passwd"));
    CHECK(cookie_name_problem(std::string("a\0b", 3)));
    CHECK(cookie_name_problem("a\nb"));
    CHECK(cookie_name_problem("\x7f"));
    CHECK(cookie_name_problem(std::string(256, 'x')));
}

// Description: domain extraction and printable keys.
TEST_CASE("domain_of and printable", "[protocol]") {
    CHECK(domain_of("erofs,d1") == "d1");
    CHECK(domain_of("erofs,img1") == "img1");
    CHECK(domain_of("nfs,x") == "nfs,x");
    CHECK(printable("ab\x01\\") == "ab\\x01\\x5c");
    CHECK(printable(std::string(200, 'a')).size() == 99);
}

// Description: error codes carry readable messages in their own category.
TEST_CASE("error category", "[protocol]") {
    std::error_code ec = errc::key_overflow;
    CHECK(ec.category().name() == std::string("cachefiles-protocol"));
    CHECK(ec.message().find("key") != std::string::npos);
}

// Description: the culling limit commands set any valid target from any valid current state, with
// every command accepted by the kernel's own checks (fs/cachefiles/daemon.c: run > cull, run < 100;
// cull > stop, cull < run; stop < cull), modelled here; invalid targets are named.
TEST_CASE("cull limit commands pass the kernel's checks from any state", "[protocol]") {
    using blobd::proto::cull_limits;
    struct kernel_model {
        unsigned run = 7, cull = 5, stop = 1;  // cachefiles' defaults at open
        bool apply(const std::string& cmd, char resource) {
            unsigned v = 0;
            char what[8] = {};
            char res = 0;
            if (std::sscanf(cmd.c_str(), "%c%7[a-z] %u%%", &res, what, &v) != 3 || res != resource) return false;
            const std::string w = what;
            if (w == "run") {
                if (v <= cull || v >= 100) return false;
                run = v;
            } else if (w == "cull") {
                if (v <= stop || v >= run) return false;
                cull = v;
            } else if (w == "stop") {
                if (v >= cull) return false;
                stop = v;
            } else {
                return false;
            }
            return true;
        }
    };
    std::vector<cull_limits> valid;
    for (unsigned run = 0; run < 100; run += 3) {
        for (unsigned cull = 0; cull < 100; cull += 2) {
            for (unsigned stop = 0; stop < 100; stop += 5) {
                const cull_limits l{run, cull, stop};
                CHECK(blobd::proto::cull_limits_problem(l).has_value() == !(stop < cull && cull < run && run < 100));
                if (!blobd::proto::cull_limits_problem(l)) valid.push_back(l);
            }
        }
    }
    REQUIRE(valid.size() > 100);
    std::size_t checked = 0;
    for (std::size_t i = 0; i < valid.size(); i += 7) {
        for (std::size_t j = 0; j < valid.size(); j += 5) {
            for (char res : {'b', 'f'}) {
                kernel_model k{valid[i].run, valid[i].cull, valid[i].stop};
                for (const auto& c : blobd::proto::cull_limit_commands(res, valid[j])) {
                    INFO(c);
                    REQUIRE(k.apply(c, res));
                }
                CHECK(cull_limits{k.run, k.cull, k.stop} == valid[j]);
                ++checked;
            }
        }
    }
    CHECK(checked > 1000);
    // From the kernel's defaults to cachefilesd's: exactly these lines.
    CHECK(blobd::proto::cull_limit_commands('b', cull_limits{}) ==
          std::vector<std::string>{"bstop 0%", "bcull 1%", "brun 10%", "bcull 7%", "bstop 3%"});
    CHECK_THAT(*blobd::proto::cull_limits_problem(cull_limits{5, 5, 1}), Catch::Contains("1 < 5 < 5"));
}
