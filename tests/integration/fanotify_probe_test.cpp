// The fanotify frontend's support probe on the host kernel (6.18 here): an ext4 cache dir passes;
// tmpfs, a missing dir and (without root) the missing capability each get a message naming the fix.
#include <catch2/catch.hpp>

#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>

#include "frontends/fanotify/probe.hpp"
#include "tests/support/test_util.hpp"

using blobd::fanotify::probe;

namespace {
bool on_fs(const std::string& dir, unsigned long type) {
    struct statfs sf {};
    return ::statfs(dir.c_str(), &sf) == 0 && static_cast<unsigned long>(sf.f_type) == type;
}
}  // namespace

// Description: what the probe says for each kind of cache dir, and that it leaves no file behind.
TEST_CASE("fanotify probe: ext4 passes, tmpfs and missing dirs name the fix", "[integration][fanotify]") {
    blobd::test::temp_dir dir("fanprobe");
    const std::string d = dir.path.string();
    if (::geteuid() != 0) {
        auto r = probe(d);
        REQUIRE_FALSE(r);
        CHECK_THAT(r.error(), Catch::Contains("CAP_SYS_ADMIN"));
        return;
    }
    if (on_fs(d, 0xEF53) || on_fs(d, 0x58465342) || on_fs(d, 0x9123683E)) {
        auto r = probe(d);
        INFO((r ? std::string("ok") : r.error()));
        CHECK(r);
        CHECK(std::filesystem::is_empty(dir.path));  // the probe file was unnamed
    } else {
        WARN("the test dir " << d << " is not on ext4/xfs/btrfs: the positive case is not checked");
    }
    if (on_fs("/dev/shm", 0x01021994)) {
        auto r = probe("/dev/shm");
        REQUIRE_FALSE(r);
        CHECK_THAT(r.error(), Catch::Contains("/dev/shm is on tmpfs") && Catch::Contains("ext4, xfs or btrfs"));
    }
    auto missing = probe(d + "/nope");
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.error(), Catch::Contains("nope") && Catch::Contains("No such file"));
}
