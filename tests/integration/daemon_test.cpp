// Integration tests: the real io_uring loop and app (frontend, registry, local fetcher) against
// the in-process fake kernel. Cache files are real files opened O_DIRECT; blobs are real files.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include <grp.h>

#include "daemon/app.hpp"
#include "daemon/control/control_access.hpp"
#include "daemon/control/control_server.hpp"
#include "daemon/metrics_listener.hpp"
#include "protocol/message.hpp"
#include "tests/support/fake_kernel.hpp"
#include "tests/support/test_util.hpp"
#include "sources/kinds.hpp"

using namespace blobd;
using blobd::test::fake_kernel;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * 1024;

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    std::mt19937 rng(seed);
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

struct tmpdir : blobd::test::temp_dir {
    tmpdir() : temp_dir("it") {}
};

// One daemon instance over a fake kernel, driven from the test thread.
struct harness {
    tmpdir blobs;
    fake_kernel k;
    std::unique_ptr<event_loop> loop;
    std::unique_ptr<app> daemon;
    std::map<std::string, std::string> contents;

    explicit harness(std::uint64_t chunk = MiB, std::function<void(cfg::config&)> tweak = {}) {
        cfg::config c;
        c.cache_dir = "/unused";
        c.chunk_size = chunk;
        c.control_socket = "";
        c.sources.push_back(sources::source_of(sources::local_settings{blobs.path.string()}));
        if (tweak) tweak(c);
        loop = std::make_unique<event_loop>();
        daemon = std::make_unique<app>(*loop, k.dev(), std::make_shared<const cfg::config>(c));
        REQUIRE(daemon->start());
    }
    ~harness() {
        daemon->request_stop(std::chrono::milliseconds(200));
        run_until([&] { return daemon->finished(); });
        daemon.reset();
        loop.reset();
    }
    void blob(const std::string& name, std::size_t size, unsigned seed = 1) {
        contents[name] = pattern(size, seed);
        std::ofstream(blobs.path / name, std::ios::binary) << contents[name];
    }
    template <class P>
    bool run_until(P pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        auto end = std::chrono::steady_clock::now() + limit;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > end) return false;
            loop->run_once(std::chrono::milliseconds(10));
        }
        return true;
    }
    std::uint32_t open_ok(const std::string& vol, const std::string& name) {
        auto id = k.open(vol, name);
        REQUIRE(run_until([&] { return k.copen_result(id).has_value(); }));
        REQUIRE(*k.copen_result(id) == static_cast<std::int64_t>(contents.at(name).size()));
        return id;
    }
    std::string expected(const std::string& name, std::uint64_t off, std::uint64_t len) const {
        const auto& s = contents.at(name);
        if (off >= s.size()) return {};
        return s.substr(off, len);
    }
    nlohmann::json stats() const { return nlohmann::json::parse(daemon->stats_json()); }
};

}  // namespace

// Description: an OPEN is answered with the blob size; a READ fills the whole aligned chunk with the right bytes.
TEST_CASE("open, read, bytes land in the cache file", "[integration]") {
    harness h;
    h.blob("img1", 3 * MiB + 12345);
    auto obj = h.open_ok("erofs,d1", "img1");
    auto m = h.k.read(obj, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(m); }));
    CHECK(h.k.completion_count(m) == 1);
    CHECK((h.k.cache_bytes(obj, 0, MiB) == h.expected("img1", 0, MiB)));  // the whole first chunk
    // The unaligned tail chunk is written as whole blocks (direct I/O), zero-padded, and nothing
    // beyond the block that holds the last byte.
    auto t = h.k.read(obj, 3 * MiB, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(t); }));
    CHECK((h.k.cache_bytes(obj, 3 * MiB, 12345) == h.expected("img1", 3 * MiB, MiB)));
    CHECK(h.k.cache_file_size(obj) == 3 * MiB + 16384);
    CHECK((h.k.cache_bytes(obj, 3 * MiB + 12345, MiB) == std::string(16384 - 12345, '\0')));
    CHECK(h.k.bad_completions() == 0);
}

// Description: concurrent and repeated READs of one range cause one fetch; every READ is completed exactly once.
TEST_CASE("one fetch serves overlapping READs", "[integration]") {
    harness h;
    h.blob("blob", 4 * MiB);
    auto obj = h.open_ok("erofs,d", "blob");
    std::vector<std::uint32_t> ids;
    for (int i = 0; i < 32; ++i) ids.push_back(h.k.read(obj, (i % 8) * 16 * KiB, 16 * KiB));
    REQUIRE(h.run_until([&] { return h.k.completed(obj) == 32; }));
    for (auto id : ids) CHECK(h.k.completion_count(id) == 1);
    auto s = h.stats();
    CHECK(s["chunks_fetched"] == 1);
    CHECK(s["bytes_fetched"] == MiB);
    CHECK(s["sources"][0]["bytes"] == MiB);
    CHECK((h.k.cache_bytes(obj, 0, MiB) == h.expected("blob", 0, MiB)));
}

// Description: reading every 4 KiB block of a blob in order fetches each byte once.
TEST_CASE("sequential 4 KiB reads fetch each chunk once", "[integration]") {
    harness h(256 * KiB);
    h.blob("b", 2 * MiB + 4096);
    auto obj = h.open_ok("erofs,d", "b");
    int n = 0;
    for (std::uint64_t off = 0; off < 2 * MiB + 4096; off += 4096, ++n) h.k.read(obj, off, 4096);
    REQUIRE(h.run_until([&] { return h.k.completed(obj) == n; }));
    CHECK(h.stats()["bytes_fetched"] == 2 * MiB + 4096);
    CHECK((h.k.cache_bytes(obj, 0, 2 * MiB + 4096) == h.contents["b"]));
}

// Description: a missing blob fails the OPEN with -ENOENT, the anon fd is closed, and the daemon keeps serving.
TEST_CASE("missing blob", "[integration]") {
    harness h;
    h.blob("good", MiB);
    auto bad = h.k.open("erofs,d", "absent");
    REQUIRE(h.run_until([&] { return h.k.copen_result(bad).has_value(); }));
    CHECK(*h.k.copen_result(bad) == -ENOENT);
    CHECK(h.k.daemon_fds_for(bad) == 0);
    auto obj = h.open_ok("erofs,d", "good");
    auto m = h.k.read(obj, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(m); }));
}

// Description: hostile cookie names are refused with -EINVAL and their fds closed; nothing outside the source dir is read.
TEST_CASE("hostile cookie names", "[integration]") {
    harness h;
    std::ofstream(h.blobs.path.parent_path() / "outside-secret") << "secret";
    const std::vector<std::string> names = {"../outside-secret", "..", ".", "a/b", std::string("x\0y", 3),
                                            std::string(255, 'n') + "x", "\n"};
    for (const auto& name : names) {
        auto id = h.k.open("erofs,d", name);
        REQUIRE(h.run_until([&] { return h.k.copen_result(id).has_value(); }));
        CHECK(*h.k.copen_result(id) == -EINVAL);
        CHECK(h.k.daemon_fds_for(id) == 0);
    }
    fs::remove(h.blobs.path.parent_path() / "outside-secret");
    CHECK(h.stats()["open_failures"] == 7);
}

// Description: a symlink planted in the blob directory is not followed.
TEST_CASE("symlinked blob is refused", "[integration]") {
    harness h;
    fs::create_symlink("/etc/hostname", h.blobs.path / "link");
    auto id = h.k.open("erofs,d", "link");
    REQUIRE(h.run_until([&] { return h.k.copen_result(id).has_value(); }));
    CHECK(*h.k.copen_result(id) < 0);
}

// Description: malformed messages: an OPEN with bad keys still gets exactly one copen error and its fd is
// closed; garbage without a header is ignored; the daemon keeps serving afterwards.
TEST_CASE("malformed kernel messages", "[integration]") {
    harness h;
    h.blob("good", MiB);
    const int fds_before = test::open_fd_count();
    // OPEN whose cookie size points past the payload.
    std::vector<std::byte> m(16 + 16 + 6);
    auto put = [&](std::size_t at, std::uint32_t v) { std::memcpy(m.data() + at, &v, 4); };
    put(0, 9000);
    put(4, CACHEFILES_OP_OPEN);
    put(8, static_cast<std::uint32_t>(m.size()));
    put(12, 77);
    put(16, 3);
    put(20, 0xffffffffu);
    int cache_fd = h.k.new_cache_fd();
    h.k.send_raw(m, cache_fd);
    ::close(cache_fd);
    // Garbage shorter than a header, and an unknown opcode.
    h.k.send_raw(std::vector<std::byte>(5));
    std::vector<std::byte> u(16);
    std::uint32_t hdr[4] = {9001, 7, 16, 1};
    std::memcpy(u.data(), hdr, 16);
    h.k.send_raw(u);
    REQUIRE(h.run_until([&] { return h.k.copen_count_for_msg(9000) == 1; }));
    REQUIRE(h.run_until([&] { return h.stats()["bad_messages"] == 3; }));
    CHECK(test::open_fd_count() == fds_before);  // the stray fd was closed
    auto obj = h.open_ok("erofs,d", "good");
    auto r = h.k.read(obj, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(r); }));
}

// Description: READs past the end, zero-length READs and READs for unknown objects.
TEST_CASE("edge READs", "[integration]") {
    harness h;
    h.blob("b", 10000);
    auto obj = h.open_ok("erofs,d", "b");
    auto a = h.k.read(obj, 1 << 20, 4096);
    auto z = h.k.read(obj, 0, 0);
    auto straddle = h.k.read(obj, 8192, 8192);
    REQUIRE(h.run_until([&] { return h.k.read_done(a) && h.k.read_done(z) && h.k.read_done(straddle); }));
    CHECK((h.k.cache_bytes(obj, 0, 10000) == h.contents["b"]));
    CHECK(h.k.cache_file_size(obj) == 12288);
}

// Description: CLOSE releases the anon fd once in-flight writes retire; the object's pending READs are not
// completed twice; no descriptors leak across many open/read/close cycles.
TEST_CASE("close releases fds, no leaks", "[integration]") {
    harness h;
    h.blob("b", 2 * MiB);
    // Warm up lazily created descriptors (blob file cache) before counting.
    auto w = h.open_ok("erofs,d", "b");
    auto wr = h.k.read(w, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(wr); }));
    h.k.close(w);
    REQUIRE(h.run_until([&] { return h.k.daemon_fds_for(w) == 0; }));
    const int base = test::open_fd_count() - h.k.own_fds();
    for (int i = 0; i < 20; ++i) {
        auto obj = h.open_ok("erofs,d", "b");
        h.k.read(obj, 0, 4096);
        h.k.read(obj, MiB, 4096);
        if (i % 2) {
            // Close while the fetch/write may still be in flight.
            h.k.close(obj);
        } else {
            REQUIRE(h.run_until([&] { return h.k.completed(obj) == 2; }));
            h.k.close(obj);
        }
        REQUIRE(h.run_until([&] { return h.k.daemon_fds_for(obj) == 0; }));
    }
    REQUIRE(h.run_until([&] { return h.stats()["objects_open"] == 0 && h.loop->inflight() == 0; }));
    CHECK(test::open_fd_count() - h.k.own_fds() == base);
    CHECK(h.k.bad_completions() == 0);
}

// Description: a blob opened in two domains is two objects; the same name in one domain reopened after
// CLOSE starts a fresh object and fetches again (the new cache file is empty in the fake).
TEST_CASE("domains and sources per domain", "[integration]") {
    tmpdir other;
    std::string special = pattern(MiB, 9);
    std::ofstream(other.path / "blob", std::ios::binary) << special;
    harness h(MiB, [&](cfg::config& c) {
        c.domains["special"].sources.push_back(sources::source_of(sources::local_settings{other.path.string()}));
    });
    h.blob("blob", MiB, 1);
    auto a = h.open_ok("erofs,d1", "blob");
    auto b = h.k.open("erofs,special", "blob");
    REQUIRE(h.run_until([&] { return h.k.copen_result(b).has_value(); }));
    auto ra = h.k.read(a, 0, 4096);
    auto rb = h.k.read(b, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(ra) && h.k.read_done(rb); }));
    CHECK((h.k.cache_bytes(a, 0, MiB) == h.contents["blob"]));
    CHECK((h.k.cache_bytes(b, 0, MiB) == special));
}

// Description: sources are tried in order: a blob missing from the first is served by the second.
TEST_CASE("source fallback", "[integration]") {
    tmpdir second;
    std::string data = pattern(300 * KiB, 5);
    std::ofstream(second.path / "only-second", std::ios::binary) << data;
    harness h(MiB, [&](cfg::config& c) { c.sources.push_back(sources::source_of(sources::local_settings{second.path.string()})); });
    auto id = h.k.open("erofs,d", "only-second");
    REQUIRE(h.run_until([&] { return h.k.copen_result(id).has_value(); }));
    CHECK(*h.k.copen_result(id) == static_cast<std::int64_t>(data.size()));
    auto r = h.k.read(id, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(r); }));
    CHECK((h.k.cache_bytes(id, 0, MiB) == data));
}

// Description: a source that shrinks after the size was reported fails the READ (completed, not hung).
TEST_CASE("source shrinks mid-flight", "[integration]") {
    harness h;
    h.blob("b", 2 * MiB);
    auto obj = h.open_ok("erofs,d", "b");
    ::truncate((h.blobs.path / "b").c_str(), MiB + 4096);
    auto r = h.k.read(obj, MiB, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(r); }));
    CHECK(h.stats()["fetch_errors"] == 1);
    CHECK(h.k.cache_bytes(obj, MiB, 4096).empty());
    CHECK(h.k.completion_count(r) == 1);
    // The first chunk is still served.
    auto ok = h.k.read(obj, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(ok); }));
    CHECK((h.k.cache_bytes(obj, 0, 4096) == h.expected("b", 0, 4096)));
}

// Description: stop with READs in flight: all are completed before the daemon reports finished.
TEST_CASE("stop drains in-flight work", "[integration]") {
    harness h;
    h.blob("b", 8 * MiB);
    auto obj = h.open_ok("erofs,d", "b");
    std::vector<std::uint32_t> ids;
    for (int i = 0; i < 8; ++i) ids.push_back(h.k.read(obj, i * MiB, 4096));
    // Let the daemon pick the READs up, then stop.
    REQUIRE(h.run_until([&] { return h.stats()["reads"] == 8; }));
    h.daemon->request_stop();
    REQUIRE(h.run_until([&] { return h.daemon->finished(); }));
    for (auto id : ids) CHECK(h.k.completion_count(id) == 1);
}

// Description: a message larger than the read buffer (EMSGSIZE) does not wedge the daemon's loop.
TEST_CASE("EMSGSIZE backs off without spinning", "[integration]") {
    harness h;
    h.blob("b", MiB);
    std::vector<std::byte> big(2000);
    h.k.send_raw(big);
    // The oversize message stays queued (as on the device): the loop must stay responsive.
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) h.loop->run_once(std::chrono::milliseconds(10));
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
}

// Description: the control handler answers stats and ping, and rejects unknown commands.
TEST_CASE("stats JSON", "[integration]") {
    harness h;
    auto s = h.stats();
    CHECK(s["ok"] == true);
    CHECK(s["chunk_size"] == MiB);
    CHECK(s["sources"].size() == 1);
    CHECK(s["sources"][0]["source"].get<std::string>().rfind("local:", 0) == 0);
}

// Description: a cache file that refuses writes (a failing disk): the READ is completed once with the
// failure, nothing is marked cached, and other objects keep being served.
TEST_CASE("write failures complete the READ and the daemon keeps serving", "[integration]") {
    harness h;
    h.blob("b", 2 * MiB);
    auto broken = h.k.open("erofs,d", "b", /*writable=*/false);
    REQUIRE(h.run_until([&] { return h.k.copen_result(broken).has_value(); }));
    auto r1 = h.k.read(broken, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(r1); }));
    CHECK(h.k.completion_count(r1) == 1);
    CHECK(h.stats()["write_errors"] == 1);
    CHECK(h.stats()["reads_failed"] == 1);
    // Not remembered as cached: asking again tries again (and fails again).
    auto r2 = h.k.read(broken, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(r2); }));
    CHECK(h.stats()["write_errors"] == 2);
    auto good = h.k.open("erofs,other", "b");
    REQUIRE(h.run_until([&] { return h.k.copen_result(good).has_value(); }));
    auto r3 = h.k.read(good, MiB, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(r3); }));
    CHECK((h.k.cache_bytes(good, MiB, MiB) == h.expected("b", MiB, MiB)));
}

// Description: one READ covering hundreds of chunks goes through the bounded fetch queue and still
// completes once with every byte in place.
TEST_CASE("many chunks for one READ are queued, not dropped", "[integration]") {
    harness h(4096);
    h.blob("b", MiB + 4096 * 3);
    auto obj = h.open_ok("erofs,d", "b");
    auto r = h.k.read(obj, 0, MiB + 4096 * 3);
    REQUIRE(h.run_until([&] { return h.k.read_done(r); }));
    CHECK(h.k.completion_count(r) == 1);
    CHECK(h.stats()["chunks_fetched"] == 259);
    CHECK((h.k.cache_bytes(obj, 0, 2 * MiB) == h.contents["b"]));
}

// Description: writes into one cache file are bounded (at most 4 MiB in flight, the rest wait in
// the file's lane in order) while two files fill at once, and every byte still lands in place.
TEST_CASE("writes into one file are bounded per file", "[integration]") {
    harness h(MiB);
    h.blob("a", 16 * MiB, 1);
    h.blob("b", 16 * MiB, 2);
    auto oa = h.open_ok("erofs,d", "a");
    auto ob = h.open_ok("erofs,d", "b");
    auto ra = h.k.read(oa, 0, 16 * MiB);
    auto rb = h.k.read(ob, 0, 16 * MiB);
    REQUIRE(h.run_until([&] { return h.k.read_done(ra) && h.k.read_done(rb); }));
    CHECK(h.k.completion_count(ra) == 1);
    CHECK(h.k.completion_count(rb) == 1);
    auto s = h.stats();
    CHECK(s["chunks_written"] == 32);
    CHECK(s["writes_per_file_peak"] >= 1);
    CHECK(s["writes_per_file_peak"] <= 4);  // 1 MiB chunks
    CHECK(s["write_errors"] == 0);
    CHECK((h.k.cache_bytes(oa, 0, 16 * MiB) == h.contents["a"]));
    CHECK((h.k.cache_bytes(ob, 0, 16 * MiB) == h.contents["b"]));
}

// Description: a READ far larger than any readahead window is clamped, completed once, and bounded.
TEST_CASE("giant READ is clamped", "[integration]") {
    harness h;
    h.blob("b", 4 * MiB);
    auto obj = h.open_ok("erofs,d", "b");
    auto r = h.k.read(obj, 0, ~0ull / 2);
    REQUIRE(h.run_until([&] { return h.k.read_done(r); }));
    CHECK(h.k.completion_count(r) == 1);
    CHECK(h.stats()["bytes_fetched"] == 4 * MiB);
}

// Description: with prefetch on, an opened blob is fetched whole in the background without any READ,
// data the cache file already holds is skipped, and a later READ needs no fetch.
TEST_CASE("prefetch fills the cache file after OPEN", "[integration]") {
    harness h(MiB, [](cfg::config& c) { c.prefetch = true; });
    h.blob("b", 5 * MiB + 4096);
    auto obj = h.open_ok("erofs,d", "b");
    REQUIRE(h.run_until([&] { return h.stats()["chunks_written"] == 6; }));
    CHECK(h.stats()["prefetch_chunks"] == 6);
    CHECK((h.k.cache_bytes(obj, 0, 6 * MiB) == h.contents["b"]));
    auto r = h.k.read(obj, 3 * MiB, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(r); }));
    CHECK(h.stats()["chunks_fetched"] == 6);
    // Reopened (e.g. after a remount): the cache file is full, nothing is fetched again.
    h.k.close(obj);
    REQUIRE(h.run_until([&] { return h.stats()["objects_open"] == 0; }));
}

// Description: a domain can turn prefetch off while it is on globally.
TEST_CASE("prefetch per domain", "[integration]") {
    harness h(MiB, [](cfg::config& c) {
        c.prefetch = true;
        c.domains["quiet"].sources = c.sources;
        c.domains["quiet"].prefetch = false;
    });
    h.blob("b", 3 * MiB);
    h.open_ok("erofs,quiet", "b");
    for (int i = 0; i < 20; ++i) h.loop->run_once(std::chrono::milliseconds(5));
    CHECK(h.stats()["chunks_fetched"] == 0);
}

// Description: a seeded storm of valid and malformed messages over several seeds: OPENs of good,
// missing and hostile names, READs at random offsets (zero-length, past the end, near 2^64, giant),
// CLOSEs while work is in flight, and malformed messages (random garbage, OPENs whose keys run past
// their end with an fd, READs with a wrong length or a range wrapping past 2^64, unknown opcodes). Afterwards every OPEN was answered
// exactly once, every READ of an object still open was completed exactly once and none twice, no
// completion went to the wrong object, no descriptor leaked, and the daemon still serves correct
// bytes.
TEST_CASE("a storm of valid and malformed messages", "[integration][storm]") {
    for (unsigned seed = 1; seed <= 6; ++seed) {
        CAPTURE(seed);
        harness h(64 * 1024);
        h.blob("b0", 300 * 1024 + 123, seed);
        h.blob("b1", 64 * 1024, seed + 100);
        // Warm up lazily created descriptors (the source's file cache) before counting.
        const auto warm = h.open_ok("erofs,w", "b1");
        const auto wr = h.k.read(warm, 0, 4096);
        REQUIRE(h.run_until([&] { return h.k.read_done(wr); }));
        h.k.close(warm);
        REQUIRE(h.run_until([&] { return h.k.daemon_fds_for(warm) == 0 && h.loop->inflight() == 0; }));
        const int fds_base = test::open_fd_count() - h.k.own_fds();

        std::mt19937_64 rng(seed);
        auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
        struct obj_state {
            std::uint32_t open_msg;
            bool closed = false;
        };
        std::map<std::uint32_t, obj_state> objs;           // object id -> its OPEN
        std::map<std::uint32_t, std::uint32_t> reads;      // READ msg -> object
        std::vector<std::uint32_t> raw_opens;              // malformed OPENs with a msg_id
        std::uint32_t raw_msg = 900000;
        const char* names[] = {"b0", "b1", "b0", "nope", "../x", "a/b"};
        for (int step = 0; step < 300; ++step) {
            const std::uint64_t action = pick(100);
            if (action < 15) {
                const char* name = names[pick(6)];
                const auto id = h.k.open(pick(2) ? "erofs,d1" : "erofs,d2", name);
                objs[id] = {h.k.last_msg_id()};
            } else if (action < 50) {
                // READs only of objects whose OPEN succeeded and which are not closed, as the kernel.
                std::vector<std::uint32_t> live;
                for (const auto& [id, o] : objs) {
                    if (!o.closed && h.k.copen_result(id).value_or(-1) > 0) live.push_back(id);
                }
                if (live.empty()) continue;
                const auto id = live[pick(live.size())];
                std::uint64_t off = pick(400 * 1024), len = 1 + pick(128 * 1024);
                switch (pick(7)) {
                case 0: len = 0; break;
                case 1:  // near 2^64, not wrapping: past the end of any blob
                    off = ~std::uint64_t{0} - 8192 - pick(8192);
                    len = 1 + pick(8192);
                    break;
                case 2: len = std::uint64_t{1} << 40; break;  // giant
                case 3:  // wrapping past 2^64: malformed (the parser refuses it), never completed
                    off = ~std::uint64_t{0} - pick(4096);
                    len = 4097 + pick(4096);
                    h.k.read(id, off, len);
                    continue;
                default: break;
                }
                reads[h.k.read(id, off, len)] = id;
            } else if (action < 58) {
                for (auto& [id, o] : objs) {
                    if (!o.closed && h.k.copen_result(id).has_value() && pick(3) == 0) {
                        h.k.close(id);
                        o.closed = true;
                        break;
                    }
                }
            } else if (action < 75) {
                std::vector<std::byte> m;
                auto put = [&](std::uint32_t v) {
                    const auto* p = reinterpret_cast<const std::byte*>(&v);
                    m.insert(m.end(), p, p + 4);
                };
                const std::uint32_t msg = raw_msg++;
                switch (pick(4)) {
                case 0:  // random garbage of 0..47 bytes
                    for (std::uint64_t i = 0, n = pick(48); i < n; ++i) m.push_back(static_cast<std::byte>(pick(256)));
                    h.k.send_raw(m);
                    break;
                case 1: {  // an OPEN whose key sizes run past its end, with an fd that must be closed
                    put(msg), put(CACHEFILES_OP_OPEN), put(38), put(7777), put(3), put(0xffffffffu);
                    m.resize(38);
                    raw_opens.push_back(msg);
                    const int fd = h.k.new_cache_fd();
                    h.k.send_raw(m, fd);
                    ::close(fd);
                    break;
                }
                case 2:  // a READ whose header length disagrees with its size
                    put(msg), put(CACHEFILES_OP_READ), put(40), put(objs.empty() ? 1 : objs.begin()->first);
                    m.resize(32);
                    h.k.send_raw(m);
                    break;
                default:  // an unknown opcode
                    put(msg), put(9 + static_cast<std::uint32_t>(pick(100))), put(16), put(1);
                    h.k.send_raw(m);
                }
            } else {
                for (std::uint64_t i = 0, n = 1 + pick(4); i < n; ++i) h.loop->run_once(std::chrono::milliseconds(0));
            }
        }
        // Everything settles: every OPEN answered, every READ of an open object completed.
        const bool settled = h.run_until([&] {
            for (const auto& [id, o] : objs) {
                if (!h.k.copen_result(id)) return false;
            }
            for (const auto& [msg, id] : reads) {
                if (!objs.at(id).closed && h.k.completion_count(msg) == 0) return false;
            }
            for (auto m : raw_opens) {
                if (h.k.copen_count_for_msg(m) == 0) return false;
            }
            return true;
        });
        if (!settled) {
            UNSCOPED_INFO(h.stats().dump() << " bad completions " << h.k.bad_completions() << " late " << h.k.late_completions());
            for (const auto& [id, o] : objs) {
                if (!h.k.copen_result(id)) UNSCOPED_INFO("object " << id << ": OPEN " << o.open_msg << " unanswered");
            }
            for (const auto& [msg, id] : reads) {
                if (!objs.at(id).closed && h.k.completion_count(msg) == 0) {
                    UNSCOPED_INFO("READ " << msg << " of object " << id << " never completed");
                }
            }
            for (auto m : raw_opens) {
                if (h.k.copen_count_for_msg(m) == 0) UNSCOPED_INFO("malformed OPEN " << m << " unanswered");
            }
        }
        REQUIRE(settled);
        for (const auto& [id, o] : objs) CHECK(h.k.copen_count_for_msg(o.open_msg) == 1);
        for (auto m : raw_opens) CHECK(h.k.copen_count_for_msg(m) == 1);
        for (const auto& [msg, id] : reads) {
            CAPTURE(msg, id);
            CHECK(h.k.completion_count(msg) <= 1);
            if (!objs.at(id).closed) CHECK(h.k.completion_count(msg) == 1);
        }
        CHECK(h.k.bad_completions() == 0);
        CHECK(h.k.bad_copens() == 0);
        CHECK(h.stats()["bad_messages"].get<std::uint64_t>() >= 1);

        // Still serving, byte for byte.
        const auto good = h.open_ok("erofs,after", "b0");
        const auto r = h.k.read(good, 256 * 1024, 4096);
        REQUIRE(h.run_until([&] { return h.k.read_done(r); }));
        CHECK(h.k.cache_bytes(good, 256 * 1024, 44 * 1024 + 123) == h.expected("b0", 256 * 1024, 44 * 1024 + 123));
        objs[good] = {0};
        // Close everything: no descriptor of the daemon's is left behind.
        for (auto& [id, o] : objs) {
            if (!o.closed && h.k.copen_result(id).value_or(-1) > 0) h.k.close(id);
        }
        REQUIRE(h.run_until([&] { return h.stats()["objects_open"] == 0 && h.loop->inflight() == 0; }));
        CHECK(test::open_fd_count() - h.k.own_fds() == fds_base);
    }
}

namespace {
// Checks the Prometheus text in `file` with Prometheus' own parser (`promtool check metrics`,
// Debian's prometheus package): no error and no lint warning. Without promtool the check fails in
// CI and is skipped, with a warning, elsewhere.
void check_with_promtool(const fs::path& file) {
    if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
        if (std::getenv("CI")) FAIL("promtool is missing (scripts/install-deps.sh installs prometheus)");
        WARN("promtool not installed: " << file.string() << " was not checked by Prometheus' parser");
        return;
    }
    const std::string cmd = "promtool check metrics < '" + file.string() + "' > '" + file.string() + ".out' 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream out(file.string() + ".out");
    const std::string said((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
    INFO("promtool said: " << said);
    CHECK(rc == 0);
    CHECK(said.empty());  // no lint warnings either
}

// One request line to a control socket from another thread while this one runs `loop`; the
// reply line, or "" when none came.
std::string control_request(event_loop& loop, const std::string& path, const std::string& line);
std::string control_request(harness& h, const std::string& path, const std::string& line) {
    return control_request(*h.loop, path, line);
}
std::string control_request(event_loop& loop, const std::string& path, const std::string& line) {
    std::string reply;
    std::atomic<bool> done{false};
    std::thread client([&] {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof addr.sun_path - 1));
        unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (fd && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
            ::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size())) {
            char buf[4096];
            for (ssize_t n; (n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0;) reply.append(buf, static_cast<std::size_t>(n));
        }
        done = true;
    });
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done.load() && std::chrono::steady_clock::now() < end) loop.run_once(std::chrono::milliseconds(10));
    client.join();
    return reply;
}
}  // namespace

// Description: `status`, `domains` and `blobs` answer from the registry and the config: the
// version, frontend and cache dir; per domain the blobs and objects open and the bytes fetched
// into its cache files; per blob its size and the bytes written into its open object.
TEST_CASE("control: status, domains, blobs", "[integration][control]") {
    tmpdir sockdir;
    const std::string sock = (sockdir.path / "control.sock").string();
    harness h(MiB, [&](cfg::config& c) { c.control_socket = sock; });
    h.blob("img1", 2 * MiB + 5);
    h.blob("img2", 3 * KiB, 2);
    auto o1 = h.open_ok("erofs,d1", "img1");
    h.open_ok("erofs,d2", "img2");
    auto m = h.k.read(o1, MiB, 4096);  // the second chunk only
    REQUIRE(h.run_until([&] { return h.k.read_done(m); }));

    auto status = nlohmann::json::parse(control_request(h, sock, "{\"cmd\":\"status\"}\n"), nullptr, false);
    REQUIRE(status.is_object());
    CHECK(status["ok"] == true);
    CHECK(status["version"] == BLOBD_VERSION);
    CHECK(status["frontend"] == "cachefiles");
    CHECK(status["cache_dir"] == "/unused");
    CHECK(status["objects_open"] == 2);
    REQUIRE(status["domains"].size() == 2);
    CHECK(status["domains"][0]["domain"] == "d1");
    CHECK(status["domains"][0]["blobs"] == 1);
    CHECK(status["domains"][0]["objects_open"] == 1);
    CHECK(status["domains"][0]["fetched_bytes"] == MiB);
    CHECK(status["domains"][0]["cache_bytes"].is_null());  // the space keeper saw no cache dir (/unused)
    CHECK(status["domains"][1]["domain"] == "d2");
    CHECK(status["domains"][1]["fetched_bytes"] == 0);
    REQUIRE(status["sources"].size() == 1);
    CHECK(status["sources"][0]["health"] == "ok");
    CHECK(status["sources"][0]["bytes"] == MiB);
    CHECK(status["store"]["enabled"] == false);

    auto domains = nlohmann::json::parse(control_request(h, sock, "{\"cmd\":\"domains\"}\n"), nullptr, false);
    REQUIRE(domains.is_object());
    CHECK(domains["domains"] == status["domains"]);
    CHECK(!domains.contains("version"));

    auto blobs = nlohmann::json::parse(control_request(h, sock, "{\"cmd\":\"blobs\"}\n"), nullptr, false);
    REQUIRE(blobs["blobs"].size() == 2);
    CHECK(blobs["blobs"][0]["domain"] == "d1");
    CHECK(blobs["blobs"][0]["blob"] == "img1");
    CHECK(blobs["blobs"][0]["size"] == 2 * MiB + 5);
    CHECK(blobs["blobs"][0]["cached_bytes"] == MiB);
    CHECK(blobs["blobs"][0]["objects_open"] == 1);
    CHECK(blobs["blobs"][1]["blob"] == "img2");
    CHECK(blobs["blobs"][1]["cached_bytes"] == 0);
    auto only = nlohmann::json::parse(control_request(h, sock, "{\"cmd\":\"blobs\",\"domain\":\"d2\"}\n"), nullptr, false);
    REQUIRE(only["blobs"].size() == 1);
    CHECK(only["blobs"][0]["blob"] == "img2");
    auto bad = nlohmann::json::parse(control_request(h, sock, "{\"cmd\":\"blobs\",\"domain\":7}\n"), nullptr, false);
    CHECK(bad["ok"] == false);

    // Closed: the blob is forgotten, its domain's bytes fetched stay.
    h.k.close(o1);
    REQUIRE(h.run_until([&] { return h.stats()["objects_open"] == 1; }));
    auto after = nlohmann::json::parse(control_request(h, sock, "{\"cmd\":\"domains\"}\n"), nullptr, false);
    REQUIRE(after["domains"].size() == 2);
    CHECK(after["domains"][0]["blobs"] == 0);
    CHECK(after["domains"][0]["fetched_bytes"] == MiB);
}

// Description: the one table of state-changing commands, and the refusal text for a peer that
// is not trusted.
TEST_CASE("control access: which commands change state, who may send them", "[control]") {
    for (const char* c : {"mount", "umount", "cull", "reload"}) CHECK(control_changes_state(c));
    for (const char* c : {"ping", "stats", "metrics", "status", "domains", "blobs", "usage", "bogus", ""}) {
        CHECK_FALSE(control_changes_state(c));
    }
    CHECK(control_command("{\"cmd\":\"cull\",\"domain\":\"d\"}") == "cull");
    CHECK(control_command("stats \r") == "stats");
    CHECK(control_command("{\"cmd\":7}") == "{\"cmd\":7}");
    const std::vector<uid_t> trusted{0, 1000};
    CHECK(control_refusal("cull", 65534, trusted) == std::optional<std::string>("cull needs root: peer uid 65534"));
    CHECK(!control_refusal("cull", 1000, trusted));
    CHECK(!control_refusal("cull", 0, trusted));
    CHECK(!control_refusal("stats", 65534, trusted));
}

// Description: the control server reads each peer's uid (SO_PEERCRED) and refuses state-changing
// commands from an untrusted one before the handler runs; read-only ones reach the handler. The
// test's own uid is made "other" by trusting only a uid that is not it.
TEST_CASE("control server: SO_PEERCRED gates state-changing commands", "[integration][control]") {
    tmpdir dir;
    const std::string sock = (dir.path / "c.sock").string();
    event_loop loop;
    std::vector<std::string> seen;
    auto handler = [&](std::string_view req, control_server::reply_fn reply) {
        seen.emplace_back(req);
        reply(R"({"ok":true})");
    };
    const uid_t me = ::geteuid();
    const uid_t other = me == 4242 ? 4243 : 4242;
    {
        control_server::options o;
        o.trusted = {other};
        auto s = control_server::listen(loop, sock, handler, o);
        REQUIRE(s);
        CHECK(control_request(loop, sock, "{\"cmd\":\"stats\"}\n") == "{\"ok\":true}\n");
        auto r = nlohmann::json::parse(control_request(loop, sock, "{\"cmd\":\"cull\",\"domain\":\"d\"}\n"), nullptr, false);
        CHECK(r["ok"] == false);
        CHECK(r["denied"] == true);
        CHECK(r["error"] == "cull needs root: peer uid " + std::to_string(me));
        CHECK(control_request(loop, sock, "umount\n").find("umount needs root") != std::string::npos);
        REQUIRE(seen.size() == 1);  // the refused ones never reached the handler
        CHECK(seen[0] == "{\"cmd\":\"stats\"}");
        // The socket stays root-only without a group.
        struct stat st {};
        REQUIRE(::stat(sock.c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0600);
    }
    loop.run_once(std::chrono::milliseconds(10));
    seen.clear();
    {
        // Default: 0 and the daemon's own uid are trusted, which the test is.
        auto s = control_server::listen(loop, sock, handler);
        REQUIRE(s);
        CHECK(control_request(loop, sock, "{\"cmd\":\"cull\",\"domain\":\"d\"}\n") == "{\"ok\":true}\n");
        CHECK(seen.size() == 1);
    }
    loop.run_once(std::chrono::milliseconds(10));
}

// Description: control_socket_group makes the socket 0660 owned by that group; a group that does
// not exist is an error that names it, and leaves no socket behind.
TEST_CASE("control server: control_socket_group", "[integration][control]") {
    tmpdir dir;
    // A private directory of ours (like systemd's RuntimeDirectory): handed to the group, search only.
    fs::create_directory(dir.path / "run");
    ::chmod((dir.path / "run").c_str(), 0700);
    const std::string sock = (dir.path / "run" / "c.sock").string();
    event_loop loop;
    auto handler = [](std::string_view, control_server::reply_fn reply) { reply(R"({"ok":true})"); };
    // A group this process may chown to: as root one it is not in (so that the chown shows), else its own.
    const group* g = ::geteuid() == 0 ? ::getgrnam("nogroup") : nullptr;
    if (!g) g = ::getgrgid(::getegid());
    REQUIRE(g);
    const std::string name = g->gr_name;
    const gid_t gid = g->gr_gid;
    {
        control_server::options o;
        o.group = name;
        auto s = control_server::listen(loop, sock, handler, o);
        REQUIRE(s);
        struct stat st {};
        REQUIRE(::stat(sock.c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0660);
        CHECK(st.st_gid == gid);
        struct stat dst {};
        REQUIRE(::stat((dir.path / "run").c_str(), &dst) == 0);
        CHECK(dst.st_gid == gid);
        CHECK((dst.st_mode & 07777) == 0710);  // search only: the group lists nothing
        CHECK(control_request(loop, sock, "ping\n") == "{\"ok\":true}\n");
    }
    loop.run_once(std::chrono::milliseconds(10));
    control_server::options o;
    o.group = "no-such-group-blobd";
    auto s = control_server::listen(loop, sock, handler, o);
    REQUIRE(!s);
    CHECK(s.error() == "control_socket_group: no group named 'no-such-group-blobd'");
    CHECK(!fs::exists(sock));
}

// Description: `metrics` answers the Prometheus text of the same counters as `stats`: READ service
// time and per-source fetch time histograms that counted the READs served, build_info with the
// version, and text that Prometheus' own parser accepts (`promtool check metrics`, Debian's
// prometheus package; without it the check fails in CI and is skipped elsewhere).
TEST_CASE("metrics: Prometheus text, histograms, build_info, promtool accepts it", "[integration]") {
    tmpdir sockdir;
    const std::string sock = (sockdir.path / "control.sock").string();
    harness h(MiB, [&](cfg::config& c) { c.control_socket = sock; });
    h.blob("img1", 2 * MiB);
    auto obj = h.open_ok("erofs,d1", "img1");
    for (std::uint64_t off : {std::uint64_t{0}, MiB}) {
        auto m = h.k.read(obj, off, 4096);
        REQUIRE(h.run_until([&] { return h.k.read_done(m); }));
    }
    const auto reply = nlohmann::json::parse(control_request(h, sock, "{\"cmd\":\"metrics\"}\n"), nullptr, false);
    REQUIRE(reply.is_object());
    REQUIRE(reply.value("ok", false));
    const std::string text = reply.value("text", std::string());
    CHECK(text.find("# TYPE erofs_blobd_read_service_seconds histogram\n") != std::string::npos);
    CHECK(text.find("erofs_blobd_read_service_seconds_count 2\n") != std::string::npos);
    CHECK(text.find("# TYPE erofs_blobd_source_fetch_duration_seconds histogram\n") != std::string::npos);
    CHECK(text.find("erofs_blobd_source_fetch_duration_seconds_count{source=\"local:" + h.blobs.path.string() + "\"} 2\n") !=
          std::string::npos);
    CHECK(text.find("erofs_blobd_build_info{version=\"" BLOBD_VERSION "\"} 1\n") != std::string::npos);
    CHECK(text.find("erofs_blobd_reads_total 2\n") != std::string::npos);
    // The same figures as `stats`.
    CHECK(h.stats()["read_service_seconds"]["count"] == 2);

    const fs::path file = sockdir.path / "metrics.prom";
    std::ofstream(file) << text;
    check_with_promtool(file);
}

namespace {
// Runs `cmd` (a curl) on another thread while the loop turns, and returns what it printed.
std::string run_while_looping(harness& h, const std::string& cmd) {
    auto f = std::async(std::launch::async, [cmd] {
        std::string out;
        if (FILE* p = ::popen(cmd.c_str(), "r")) {
            char buf[4096];
            for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
            ::pclose(p);
        }
        return out;
    });
    REQUIRE(h.run_until([&] { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }));
    return f.get();
}
}  // namespace

// Description: "metrics.listen" serves the `metrics` text over HTTP on loopback: 200 with the
// Prometheus content type and a body promtool accepts, 404 for another path, 405 for another
// method, an oversized header gets no answer, an idle connection does not hold up a scrape, a
// port in use is one clear error, and there is no listener when the key is empty.
TEST_CASE("metrics.listen: GET /metrics over HTTP, 404, 405, loopback listener off by default", "[integration][metrics]") {
    if (std::system("command -v curl >/dev/null 2>&1") != 0) {
        if (std::getenv("CI")) FAIL("curl is missing (scripts/install-deps.sh installs it)");
        WARN("curl not installed: the listener was not scraped");
        return;
    }
    {
        harness off;
        CHECK(off.daemon->metrics_port() == 0);
    }
    tmpdir dir;
    harness h(MiB, [&](cfg::config& c) { c.metrics_listen = "127.0.0.1:0"; });
    const std::uint16_t port = h.daemon->metrics_port();
    REQUIRE(port != 0);
    h.blob("img1", MiB);
    auto obj = h.open_ok("erofs,d1", "img1");
    auto m = h.k.read(obj, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(m); }));

    // An idle client that never sends its request: the scrape below is still answered.
    const int idle = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(idle >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(::connect(idle, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);

    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    const fs::path body = dir.path / "metrics.prom", headers = dir.path / "headers";
    const std::string code = run_while_looping(h, "curl -s --max-time 10 -o '" + body.string() + "' -D '" + headers.string() +
                                                      "' -w '%{http_code} %{content_type}' " + base + "/metrics");
    close(idle);
    CHECK(code == "200 text/plain; version=0.0.4; charset=utf-8");
    std::ifstream in(body);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text.find("erofs_blobd_reads_total 1\n") != std::string::npos);
    CHECK(text.find("erofs_blobd_build_info{version=\"" BLOBD_VERSION "\"} 1\n") != std::string::npos);
    // The same text as the `metrics` command, but for the uptime, which may have ticked.
    auto without_uptime = [](const std::string& t) {
        std::string out;
        std::istringstream lines(t);
        for (std::string l; std::getline(lines, l);) {
            if (l.rfind("erofs_blobd_uptime", 0) != 0) out += l + "\n";
        }
        return out;
    };
    CHECK(without_uptime(text) == without_uptime(h.daemon->metrics_text()));

    CHECK(run_while_looping(h, "curl -s --max-time 10 -o /dev/null -w '%{http_code}' " + base + "/other") == "404");
    CHECK(run_while_looping(h, "curl -s --max-time 10 -o /dev/null -w '%{http_code}' " + base + "/metrics/x") == "404");
    CHECK(run_while_looping(h, "curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X POST " + base + "/metrics") == "405");
    // A header past 8 KiB is not read to its end: no answer, the connection is closed.
    CHECK(run_while_looping(h, "curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'X-Big: " + std::string(9000, 'a') +
                                   "' " + base + "/metrics") == "000");
    // Still serving after those.
    CHECK(run_while_looping(h, "curl -s --max-time 10 -o /dev/null -w '%{http_code}' " + base + "/metrics") == "200");

    // The port is taken now: a second listener fails with one line naming the address.
    auto again = metrics_listener::listen(*h.loop, "127.0.0.1:" + std::to_string(port), [] { return std::string(); });
    REQUIRE_FALSE(again);
    CHECK(again.error().find("metrics.listen: cannot listen on 127.0.0.1:" + std::to_string(port) + ": ") == 0);

    check_with_promtool(body);
}

// Description: a reload swaps the sources in place: a blob only the new source has opens after it,
// a READ already in flight finishes on the old source, and a reload that changes a bind-time key
// is refused by name and leaves the running config (and sources) as they were.
TEST_CASE("reload swaps the sources; a refused reload keeps the running config", "[integration][reload]") {
    tmpdir fresh;
    harness h;
    h.blob("old", 2 * MiB, 3);
    auto obj = h.open_ok("erofs,d", "old");
    const std::string new_data = pattern(300 * KiB, 8);
    std::ofstream(fresh.path / "only-new", std::ios::binary) << new_data;

    auto before = h.k.open("erofs,d", "only-new");
    REQUIRE(h.run_until([&] { return h.k.copen_result(before).has_value(); }));
    CHECK(*h.k.copen_result(before) < 0);

    // A READ is asked of the old source, then the sources are swapped before it is answered.
    auto inflight = h.k.read(obj, MiB, 4096);
    h.loop->run_once(std::chrono::milliseconds(0));
    cfg::config next = h.daemon->config();
    next.sources = {sources::source_of(sources::local_settings{fresh.path.string()})};
    next.log_level = "debug";
    auto r = h.daemon->reload(std::make_shared<const cfg::config>(next));
    REQUIRE(r);
    CHECK(std::find(r.value().begin(), r.value().end(), "sources") != r.value().end());
    CHECK(std::find(r.value().begin(), r.value().end(), "log_level") != r.value().end());
    REQUIRE(h.run_until([&] { return h.k.read_done(inflight); }));
    CHECK((h.k.cache_bytes(obj, MiB, MiB) == h.expected("old", MiB, MiB)));

    auto after = h.k.open("erofs,d", "only-new");
    REQUIRE(h.run_until([&] { return h.k.copen_result(after).has_value(); }));
    CHECK(*h.k.copen_result(after) == static_cast<std::int64_t>(new_data.size()));
    auto rd = h.k.read(after, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(rd); }));
    CHECK((h.k.cache_bytes(after, 0, MiB) == new_data));

    cfg::config bad = h.daemon->config();
    bad.chunk_size = 2 * MiB;
    bad.sources.clear();
    auto refused = h.daemon->reload(std::make_shared<const cfg::config>(bad));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().find("chunk_size") != std::string::npos);
    CHECK(h.daemon->config().chunk_size == MiB);
    CHECK(h.daemon->config().sources.size() == 1);
    CHECK(h.daemon->status_line().find("1 object") == std::string::npos);  // two are open
    CHECK(h.daemon->status_line().find("2 objects open") != std::string::npos);
    CHECK(h.k.bad_completions() == 0);
}

// Description: a reload that keeps the store settings keeps the store object (its counters go
// on, one owner of the directory); one that changes store.max_bytes builds a new one.
TEST_CASE("reload keeps the blob store when its settings stay", "[integration][reload]") {
    tmpdir store;
    harness h(MiB, [&](cfg::config& c) {
        c.store.use = cfg::store_use::all;
        c.store.dir = store.path.string();
    });
    h.blob("b", MiB, 4);
    auto obj = h.open_ok("erofs,d", "b");
    auto rd = h.k.read(obj, 0, 4096);
    REQUIRE(h.run_until([&] { return h.k.read_done(rd); }));
    REQUIRE(h.run_until([&] { return h.stats()["store"]["stored_bytes"].get<std::uint64_t>() > 0; }));
    cfg::config next = h.daemon->config();
    next.log_level = "debug";
    REQUIRE(h.daemon->reload(std::make_shared<const cfg::config>(next)));
    CHECK(h.stats()["store"]["stored_bytes"].get<std::uint64_t>() > 0);
    next.store.max_bytes = 1 << 30;
    REQUIRE(h.daemon->reload(std::make_shared<const cfg::config>(next)));
    CHECK(h.stats()["store"]["stored_bytes"].get<std::uint64_t>() == 0);
}
