// What a fanotify daemon leaves its successor (frontends/fanotify/handoff.hpp): the mountinfo
// parser that finds the mounts still up, the state file's encoding, and the shared-memory table of
// unanswered events. The kernel side (SIGKILL under readers, a successor from the fd store) runs
// on the host kernel: tests/fanotify/handoff.sh.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include <catch2/catch.hpp>

#include "frontends/fanotify/handoff.hpp"
#include "protocol/mountinfo.hpp"

using namespace blobd;

TEST_CASE("mountinfo: fields, escapes, optional fields, malformed lines", "[fanotify]") {
    const std::string text =
        "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n"
        "95 29 0:52 / /tmp/a\\040b rw,relatime - erofs /var/cache/x/boot/img1.3 ro,device=/c/blob1\n"
        "96 29 0:53 / /mnt/c rw master:1 propagate_from:2 - erofs /with\\134backslash\\011tab ro\n"
        "garbage\n"
        "97 29 0:54 / /mnt/nosep rw erofs /x ro\n"
        "98 29 0:55 / /mnt/short rw -\n"
        "99 29 0:56 / /bad\\9 rw - ext4 /dev/vda rw";  // no final newline; \9 is no escape
    auto t = proto::parse_mountinfo(text);
    REQUIRE(t.size() == 4);
    CHECK(t[0] == proto::mount_entry{"/proc", "proc", "proc"});
    CHECK(t[1] == proto::mount_entry{"/tmp/a b", "erofs", "/var/cache/x/boot/img1.3"});
    CHECK(t[2] == proto::mount_entry{"/mnt/c", "erofs", "/with\\backslash\ttab"});
    CHECK(t[3] == proto::mount_entry{"/bad\\9", "ext4", "/dev/vda"});
    CHECK(proto::parse_mountinfo("").empty());
    CHECK(proto::unescape_mount_field("a\\04") == "a\\04");
    CHECK(proto::unescape_mount_field("\\400") == "\\400");  // beyond a byte: left as is
}

TEST_CASE("handoff state: round trip and every bad field named", "[fanotify]") {
    proto::fan::saved_state s;
    s.next_boot = 7;
    s.blobs.push_back({"d1", "blob1", "/c/fanotify/d1/blobs/blob1", "fanotify-blob-0123456789abcdef", 71270400, 2049, 1234});
    s.mounts.push_back({"/mnt/a", "d1", "img1", "/c/fanotify/d1/boot/img1.6", {"blob1"}, true});
    s.mounts.push_back({"/mnt/b", "d1", "img2", "/c/fanotify/d1/boot/img2.7", {"blob1", "blob2"}, false});
    auto back = proto::fan::decode_state(proto::fan::encode_state(s));
    REQUIRE(back);
    CHECK(*back == s);

    auto err = [](std::string_view text) {
        auto r = proto::fan::decode_state(text);
        REQUIRE_FALSE(r);
        return r.error();
    };
    CHECK(err("{") == "not valid JSON");
    CHECK(err("[]") == "not a JSON object");
    CHECK(err(R"({"version":2})") == "version: not 1");
    CHECK(err(R"({"version":1,"next_boot":-1,"blobs":[],"mounts":[]})") == "state.next_boot: missing or not an unsigned integer");
    CHECK(err(R"({"version":1,"next_boot":1,"mounts":[]})") == "state.blobs: missing or not an array");
    CHECK(err(R"({"version":1,"next_boot":1,"blobs":[{"domain":"d"}],"mounts":[]})") == "blobs[0].tag: missing or not a string");
    CHECK(err(R"({"version":1,"next_boot":1,"blobs":[],"mounts":[{"mountpoint":"/m","domain":"d","fsid":"f","boot":"/b","tags":[1],"mounted":true}]})") ==
          "mounts[0].tags: not all strings");
    CHECK(err(R"({"version":1,"next_boot":1,"blobs":[],"mounts":[{"mountpoint":"/m","domain":"d","fsid":"f","boot":"/b","tags":[]}]})") ==
          "mounts[0].mounted: missing or not a boolean");
}

TEST_CASE("inflight table: entries survive in the memfd for a successor", "[fanotify]") {
    auto t = fanotify::inflight_table::create();
    REQUIRE(t);
    CHECK(t->in_use() == 0);
    const int a = t->record(57, 4096, 262144);
    const int b = t->record(58, 0, 4096);
    const int c = t->record(59, 1, 2);
    REQUIRE(a >= 0);
    REQUIRE(b >= 0);
    REQUIRE(c >= 0);
    CHECK(t->record(-1, 0, 0) == -1);  // no fd, nothing to answer later
    t->resolve(a, 2049, 77);
    t->clear(c);
    CHECK(t->in_use() == 2);

    // What a successor sees through the same memfd (as the fd store passes it).
    auto next = fanotify::inflight_table::adopt(unique_fd(::fcntl(t->fd(), F_DUPFD_CLOEXEC, 0)));
    REQUIRE(next);
    auto used = next->used();
    REQUIRE(used.size() == 2);
    std::sort(used.begin(), used.end(), [](const auto& x, const auto& y) { return x.second.fd < y.second.fd; });
    CHECK(used[0].second.fd == 57);
    CHECK(used[0].second.resolved);
    CHECK(used[0].second.dev == 2049);
    CHECK(used[0].second.ino == 77);
    CHECK(used[0].second.off == 4096);
    CHECK(used[0].second.count == 262144);
    CHECK(used[1].second.fd == 58);
    CHECK_FALSE(used[1].second.resolved);
    CHECK(next->in_use() == 2);
    // The successor answers them and takes new ones without reusing a slot in use.
    next->clear(used[0].first);
    const int d = next->record(60, 0, 1);
    CHECK(d != used[1].first);
    CHECK(next->in_use() == 2);

    // Anything else is refused, not misread.
    CHECK_FALSE(fanotify::inflight_table::adopt(unique_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC))));
}

TEST_CASE("handoff state file: written atomically, read back, absence is not an error", "[fanotify]") {
    char dir[] = "/tmp/blobd-state-XXXXXX";
    REQUIRE(::mkdtemp(dir));
    const std::string path = std::string(dir) + "/state.json";
    auto none = fanotify::read_state(path);
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
    proto::fan::saved_state s;
    s.next_boot = 3;
    REQUIRE(fanotify::write_state(path, s));
    auto back = fanotify::read_state(path);
    REQUIRE(back);
    REQUIRE(back->has_value());
    CHECK(**back == s);
    CHECK(::access((path + ".tmp").c_str(), F_OK) != 0);
    REQUIRE(::truncate(path.c_str(), 5) == 0);
    auto bad = fanotify::read_state(path);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().find("not valid JSON") != std::string::npos);
    ::unlink(path.c_str());
    ::rmdir(dir);
}
