// mount.erofs-blobd's command line (daemon/mount_options.hpp): what mount(8) passes (measured with
// util-linux 2.38: "-o rw" when the line has no ro, x-* and noauto stripped, _netdev and nofail
// passed on, -s -f -n -v flags), what is refused and how the error names it.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "daemon/mount_options.hpp"

using blobd::mount_helper::parse;
using args = std::vector<std::string>;

TEST_CASE("mount helper: what mount(8) sends for mount -t erofs-blobd -o domain_id=D FSID DIR") {
    auto r = parse(args{"img", "/mnt/x", "-o", "rw,domain_id=dom"});
    REQUIRE(r);
    CHECK(r->fsid == "img");
    CHECK(r->mountpoint == "/mnt/x");
    CHECK(r->domain == "dom");
    CHECK(r->socket == blobd::mount_helper::default_socket);
    CHECK_FALSE(r->fake);
    CHECK_FALSE(r->verbose);
    CHECK_FALSE(r->sloppy);
}

TEST_CASE("mount helper: no options: the domain is the fsid's (empty), rw accepted") {
    auto r = parse(args{"img", "/mnt/x", "-o", "rw"});
    REQUIRE(r);
    CHECK(r->domain.empty());
    auto bare = parse(args{"img", "/mnt/x"});
    REQUIRE(bare);
    CHECK(bare->domain.empty());
}

TEST_CASE("mount helper: fstab and mount(8)-only options are accepted and change nothing") {
    auto r = parse(args{"img", "/m", "-o",
                        "ro,domain_id=D,socket=/run/x.sock,_netdev,nofail,defaults,noauto,nosuid,nodev,"
                        "x-systemd.requires=erofs-blobd.service,X-mount.mkdir,comment=hi,user=bob,users"});
    REQUIRE(r);
    CHECK(r->domain == "D");
    CHECK(r->socket == "/run/x.sock");
    CHECK(r->ignored.empty());
}

TEST_CASE("mount helper: flags, bundled or not, and -t") {
    auto r = parse(args{"img", "/m", "-s", "-f", "-n", "-v", "-o", "rw"});
    REQUIRE(r);
    CHECK(r->sloppy);
    CHECK(r->fake);
    CHECK(r->verbose);
    auto b = parse(args{"-fv", "img", "/m", "-odomain_id=E", "-t", "erofs-blobd"});
    REQUIRE(b);
    CHECK(b->fake);
    CHECK(b->verbose);
    CHECK(b->domain == "E");
    CHECK(b->fsid == "img");
    // Later options win, as with mount(8).
    auto l = parse(args{"img", "/m", "-o", "domain_id=a", "-o", "domain_id=b"});
    REQUIRE(l);
    CHECK(l->domain == "b");
}

TEST_CASE("mount helper: unknown options are refused, every one named") {
    auto r = parse(args{"img", "/m", "-o", "rw,noexec,domain_id=D,sync"});
    REQUIRE_FALSE(r);
    CHECK(r.error().find("unknown mount options 'noexec', 'sync'") == 0);
    auto one = parse(args{"img", "/m", "-o", "fsid=img"});
    REQUIRE_FALSE(one);
    CHECK(one.error().find("unknown mount option 'fsid=img'") == 0);
    CHECK(one.error().find("the fsid is the source") != std::string::npos);
}

TEST_CASE("mount helper: -s lets unknown options through, to be warned about") {
    // -s after -o still counts: the flags are read before the options.
    auto r = parse(args{"img", "/m", "-o", "noexec,domain_id=D", "-s"});
    REQUIRE(r);
    CHECK(r->ignored == std::vector<std::string>{"noexec"});
    CHECK(r->domain == "D");
}

TEST_CASE("mount helper: wrong usage") {
    CHECK(parse(args{"img"}).error().find("missing arguments") == 0);
    CHECK(parse(args{"a", "b", "c"}).error().find("too many arguments") == 0);
    CHECK(parse(args{"img", "/m", "-o"}).error() == "-o needs a value");
    CHECK(parse(args{"img", "/m", "-x"}).error() == "unknown argument '-x'");
    CHECK(parse(args{"img", "/m", "-o", "domain_id="}).error() == "domain_id= needs a domain name");
    CHECK(parse(args{"img", "/m", "-o", "socket="}).error().find("socket= needs") == 0);
    CHECK(parse(args{"img", "/m", "-t", "erofs"}).error().find("unsupported type 'erofs'") == 0);
    CHECK(parse(args{"img", "/m", "-t", "erofs-blobd.sub"}).error().find("unsupported type") == 0);
    CHECK(parse(args{"img", "/m", "-N", "/proc/1/ns/mnt"}).error().find("-N (another mount namespace) is not supported") == 0);
    CHECK(parse(args{"", "/m"}).error().find("the source (FSID) is empty") == 0);
}

TEST_CASE("mount helper: --help and --version stand alone") {
    auto h = parse(args{"--help"});
    REQUIRE(h);
    CHECK(h->help);
    auto v = parse(args{"-V"});
    REQUIRE(v);
    CHECK(v->version);
}
