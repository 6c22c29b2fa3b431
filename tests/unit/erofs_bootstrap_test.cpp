// Tests of the erofs bootstrap parser (protocol/erofs/bootstrap.hpp): images made at test time by
// scripts/mkblobimg (mkfs.erofs with a blob device, tag written into the slot), a plain image, and
// malformed ones (truncated, bad magic, a table past the end, a tag without its NUL, every prefix).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "protocol/erofs/bootstrap.hpp"
#include "tests/support/test_util.hpp"

using namespace blobd::proto::erofs;

namespace {

std::vector<std::byte> slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> b(c.size());
    std::memcpy(b.data(), c.data(), c.size());
    return b;
}

/// Builds images with mkblobimg into `dir`; false when mkfs.erofs is missing.
bool make_images(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir / "src" / "sub");
    std::ofstream(dir / "src" / "a") << std::string(10000, 'a');
    std::ofstream(dir / "src" / "sub" / "b") << std::string(70000, 'b');
    const std::string mk = std::string(BLOBD_SOURCE_DIR) + "/scripts/mkblobimg";
    const std::string cmd = "command -v mkfs.erofs >/dev/null && " + mk + " --quiet --out " + (dir / "out").string() +
                            " --blob blob-one --image boot1=" + (dir / "src").string() + " --plain plain1=" +
                            (dir / "src").string();
    return std::system(cmd.c_str()) == 0;
}

}  // namespace

TEST_CASE("erofs bootstrap: the device table of real images", "[unit][erofs]") {
    blobd::test::temp_dir dir("erofs");
    if (!make_images(dir.path)) {
        WARN("mkfs.erofs or mkblobimg not usable: skipped");
        return;
    }
    const auto boot = slurp(dir.path / "out" / "boot1");
    auto info = parse_bootstrap(boot);
    REQUIRE(info);
    CHECK(info->block_bits == 12);
    REQUIRE(info->devices.size() == 1);
    CHECK(info->devices[0].tag == "blob-one");
    const auto blob_size = std::filesystem::file_size(dir.path / "out" / "blob-one");
    CHECK(info->devices[0].blocks == (blob_size + 4095) / 4096);

    const auto plain = slurp(dir.path / "out" / "plain1");
    auto p = parse_bootstrap(plain);
    REQUIRE(p);
    CHECK(p->devices.empty());

    // Every prefix of the bootstrap: an error or (once the table fits) the same answer, never a crash.
    std::size_t table_end = 0;
    for (std::size_t n = 0; n <= boot.size(); n += (n < 2048 ? 1 : 64)) {
        auto r = parse_bootstrap(std::span(boot.data(), n));
        if (r) {
            if (!table_end) table_end = n;
            CHECK(r->devices == info->devices);
        }
    }
    CHECK(table_end >= super_offset + super_size);

    // Corruptions of the real image.
    SECTION("bad magic") {
        auto b = boot;
        b[super_offset] = std::byte{0};
        auto r = parse_bootstrap(b);
        REQUIRE(!r);
        CHECK_THAT(r.error(), Catch::Contains("magic"));
    }
    SECTION("table past the end") {
        auto b = boot;
        b[super_offset + 0x56] = std::byte{0xff};  // extra_devices = 255 + ...
        b[super_offset + 0x57] = std::byte{0xff};
        auto r = parse_bootstrap(b);
        REQUIRE(!r);
        CHECK_THAT(r.error(), Catch::Contains("past"));
    }
    SECTION("table over the superblock") {
        auto b = boot;
        b[super_offset + 0x58] = std::byte{8};  // 8 * 128 = 1024
        b[super_offset + 0x59] = std::byte{0};
        CHECK(!parse_bootstrap(b));
    }
    SECTION("tag without its NUL, or empty") {
        auto b = boot;
        const std::size_t slot = std::size_t{std::to_integer<unsigned>(b[super_offset + 0x58])} * devt_slot_size;
        b[slot + 63] = std::byte{'x'};
        auto r = parse_bootstrap(b);
        REQUIRE(!r);
        CHECK_THAT(r.error(), Catch::Contains("NUL"));
        std::fill(b.begin() + static_cast<long>(slot), b.begin() + static_cast<long>(slot + 64), std::byte{0});
        auto e = parse_bootstrap(b);
        REQUIRE(!e);
        CHECK_THAT(e.error(), Catch::Contains("empty"));
    }
    SECTION("bad block size") {
        auto b = boot;
        b[super_offset + 0x0C] = std::byte{40};
        CHECK(!parse_bootstrap(b));
    }
}

TEST_CASE("erofs bootstrap: short and synthetic inputs", "[unit][erofs]") {
    CHECK(!parse_bootstrap({}));
    std::vector<std::byte> b(4096);
    CHECK(!parse_bootstrap(b));  // zeros: no magic
    auto put32 = [&](std::size_t at, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) b[at + static_cast<std::size_t>(i)] = std::byte(static_cast<unsigned char>(v >> (8 * i)));
    };
    put32(super_offset, super_magic);
    b[super_offset + 0x0C] = std::byte{12};
    auto plain = parse_bootstrap(b);
    REQUIRE(plain);
    CHECK(plain->devices.empty());
    // Two devices at slot offset 10 (byte 1280).
    put32(super_offset + 0x50, incompat_device_table);
    b[super_offset + 0x56] = std::byte{2};
    b[super_offset + 0x58] = std::byte{10};
    std::memcpy(&b[1280], "first", 5);
    put32(1280 + 64, 7);
    std::memcpy(&b[1280 + 128], "second", 6);
    put32(1280 + 128 + 68, 3);
    auto two = parse_bootstrap(b);
    REQUIRE(two);
    REQUIRE(two->devices.size() == 2);
    CHECK(two->devices[0] == device{"first", 7, 0});
    CHECK(two->devices[1] == device{"second", 0, 3});
    CHECK(!parse_bootstrap(std::span(b.data(), 1280 + 200)));  // second slot cut short
    // extra_devices without the feature bit.
    put32(super_offset + 0x50, 0);
    CHECK(!parse_bootstrap(b));
}
