// Integration tests of the blob store inside the daemon: the real io_uring loop and app with the
// fake kernel, sources over HTTP (the in-process test server) or in local directories whose reads
// are counted by the daemon's own per-source stats.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "daemon/app.hpp"
#include "fetchers/cas_fetcher.hpp"
#include "tests/support/fake_kernel.hpp"
#include "tests/support/test_util.hpp"
#include "tests/support/http_test_server.hpp"
#include "sources/kinds.hpp"

using namespace blobd;
using namespace std::chrono_literals;
using blobd::test::fake_kernel;
using blobd::test::http_conn;
using blobd::test::http_request;
using blobd::test::http_server;
using blobd::test::random_bytes;
using blobd::test::serve_blob;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * 1024;

struct tmpdir : blobd::test::temp_dir {
    tmpdir() : temp_dir("store") {}
};

// "sha256:<hex>" of some bytes, computed the way the store checks them.
std::string digest_name(const tmpdir& t, const std::string& data) {
    const fs::path p = t.path / "digest.tmp";
    std::ofstream(p, std::ios::binary) << data;
    std::string hex = sha256_file(p.string());
    fs::remove(p);
    REQUIRE(hex.size() == 64);
    return "sha256:" + hex;
}

// One daemon over a fake kernel with the given config, driven from the test thread.
struct daemon_env {
    fake_kernel k;
    event_loop loop;
    std::unique_ptr<app> daemon;

    explicit daemon_env(cfg::config c) {
        c.control_socket = "";
        daemon = std::make_unique<app>(loop, k.dev(), std::make_shared<const cfg::config>(std::move(c)));
        REQUIRE(daemon->start());
    }
    ~daemon_env() {
        daemon->request_stop(200ms);
        run_until([&] { return daemon->finished(); });
        daemon.reset();  // stops the net thread before the loop goes
    }
    template <class P>
    bool run_until(P pred, std::chrono::milliseconds limit = 15s) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > end) return false;
            loop.run_once(10ms);
        }
        return true;
    }
    std::uint32_t open_ok(const std::string& domain, const std::string& name, std::uint64_t size) {
        auto id = k.open("erofs," + domain, name);
        REQUIRE(run_until([&] { return k.copen_result(id).has_value(); }));
        REQUIRE(*k.copen_result(id) == static_cast<std::int64_t>(size));
        return id;
    }
    /// READs the whole object, one READ per `step` bytes, and waits for every completion.
    void read_all(std::uint32_t obj, std::uint64_t size, std::uint64_t step) {
        const int before = k.completed(obj);
        std::vector<std::uint32_t> ids;
        for (std::uint64_t off = 0; off < size; off += step) ids.push_back(k.read(obj, off, step));
        REQUIRE(run_until([&] { return k.completed(obj) == before + static_cast<int>(ids.size()); }));
        for (auto id : ids) CHECK(k.completion_count(id) == 1);
    }
    nlohmann::json stats() const { return nlohmann::json::parse(daemon->stats_json()); }
};

cfg::config base_config(const tmpdir& t) {
    cfg::config c;
    c.cache_dir = (t.path / "cache").string();
    c.chunk_size = MiB;
    c.store.dir = (t.path / "store").string();
    return c;
}

}  // namespace

// Description: two domains (two cookies, two cache files) OPEN the same digest-named blob from an
// http source with the default store setting: the server sends the blob's bytes once, the second
// domain's READs are all store hits, the blob is verified, and the counters say so.
TEST_CASE("two domains, one download", "[integration][store]") {
    tmpdir t;
    const std::string data = random_bytes(3 * MiB + 5000, 7);
    const std::string name = digest_name(t, data);
    std::atomic<std::uint64_t> sent{0};
    std::atomic<int> gets{0};
    http_server s([&](const http_request& r, http_conn& c) {
        // The ':' of the name may be percent-encoded.
        if (r.target != "/blobs/" + name && r.target != "/blobs/sha256%3A" + name.substr(7) &&
            r.target != "/blobs/sha256%3a" + name.substr(7))
            return void(c.send(test::response_head(404, {{"Content-Length", "0"}})));
        if (r.method == "GET") {
            ++gets;
            // "bytes=a-b"
            if (auto range = r.header("range")) {
                const auto dash = range->find('-');
                sent += std::stoull(range->substr(dash + 1)) - std::stoull(range->substr(6, dash - 6)) + 1;
            } else {
                sent += data.size();
            }
        }
        serve_blob(r, c, data);
    });
    cfg::config c = base_config(t);
    sources::http_settings src;
    src.url = s.url("/blobs");
    c.sources.push_back(sources::source_of(src));
    daemon_env d(c);

    auto a = d.open_ok("d1", name, data.size());
    d.read_all(a, data.size(), 64 * KiB);
    CHECK((d.k.cache_bytes(a, 0, data.size()) == data));
    CHECK(sent == data.size());
    auto b = d.open_ok("d2", name, data.size());
    d.read_all(b, data.size(), 256 * KiB);
    CHECK((d.k.cache_bytes(b, 0, data.size()) == data));
    CHECK(sent == data.size());
    CHECK(gets == 4);  // one per chunk, all for d1

    REQUIRE(d.run_until([&] { return d.stats()["store"]["verified"] == 1; }));
    auto st = d.stats();
    CHECK(st["store"]["enabled"] == true);
    CHECK(st["store"]["dir"] == c.store.dir);
    CHECK(st["store"]["hits"] == 4);
    CHECK(st["store"]["bytes_saved"] == data.size());
    CHECK(st["store"]["stored_bytes"] == data.size());
    CHECK(st["store"]["store_errors"] == 0);
    CHECK(st["store"]["integrity_failures"] == 0);
    CHECK(st["upstream_bytes"] == data.size());
    CHECK(st["sources"][0]["bytes"] == data.size());
    CHECK(st["sources"][0]["via_store"] == true);
    CHECK(st["bytes_fetched"] == 2 * data.size());  // what reached the two cache files
    CHECK(fs::file_size(t.path / "store" / "sha256" / name.substr(7)) == data.size());
    CHECK(d.k.bad_completions() == 0);
}

// Description: a digest-named blob whose first source serves corrupt bytes (same size) and whose second
// serves the right ones: once complete, the check fails and is counted, the first source is not asked
// for that blob again, the bytes already written into the cache file are fetched again from the
// second source and overwritten, and a second domain gets the right bytes too. Every READ completes.
TEST_CASE("corrupt first source: counted, refetched from the next", "[integration][store]") {
    tmpdir t;
    const std::string good = random_bytes(2 * MiB + 4096, 8);
    const std::string name = digest_name(t, good);
    std::string bad = good;
    bad[MiB + 17] ^= 0x5a;
    fs::create_directories(t.path / "src1");
    fs::create_directories(t.path / "src2");
    std::ofstream(t.path / "src1" / name, std::ios::binary) << bad;
    std::ofstream(t.path / "src2" / name, std::ios::binary) << good;
    cfg::config c = base_config(t);
    c.store.use = cfg::store_use::all;  // local sources go through the store only when asked
    c.sources.push_back(sources::source_of(sources::local_settings{(t.path / "src1").string()}));
    c.sources.push_back(sources::source_of(sources::local_settings{(t.path / "src2").string()}));
    daemon_env d(c);

    auto a = d.open_ok("d1", name, good.size());
    d.read_all(a, good.size(), MiB);
    REQUIRE(d.run_until([&] { return d.stats()["store"]["integrity_failures"] == 1; }));
    // The refetch overwrites the cache file with the second source's bytes, then those verify.
    REQUIRE(d.run_until([&] { return d.k.cache_bytes(a, 0, good.size()) == good; }));
    REQUIRE(d.run_until([&] { return d.stats()["store"]["verified"] == 1; }));
    auto st = d.stats();
    CHECK(st["refetch_chunks"] == 3);
    CHECK(st["sources"][0]["bytes"] == good.size());   // src1: once, never again
    CHECK(st["sources"][1]["bytes"] == good.size());   // src2: the refetch

    auto b = d.open_ok("d2", name, good.size());
    d.read_all(b, good.size(), 512 * KiB);
    CHECK((d.k.cache_bytes(b, 0, good.size()) == good));
    st = d.stats();
    CHECK(st["sources"][0]["bytes"] == good.size());
    CHECK(st["sources"][1]["bytes"] == good.size());   // d2 was served by the store
    CHECK(st["store"]["hits"] == 3);
    CHECK(st["store"]["integrity_failures"] == 1);
    CHECK(st["reads_failed"] == 0);
    CHECK(d.k.bad_completions() == 0);
}

// Description: when every source serves the same corrupt bytes, the check fails, nothing is served
// from the store or those sources again: later READs fail cleanly (completed, never hung).
TEST_CASE("corrupt everywhere: READs fail, never hang", "[integration][store]") {
    tmpdir t;
    const std::string good = random_bytes(MiB, 9);
    const std::string name = digest_name(t, good);
    std::string bad = good;
    bad[100] ^= 1;
    fs::create_directories(t.path / "src");
    std::ofstream(t.path / "src" / name, std::ios::binary) << bad;
    cfg::config c = base_config(t);
    c.store.use = cfg::store_use::all;
    c.sources.push_back(sources::source_of(sources::local_settings{(t.path / "src").string()}));
    daemon_env d(c);
    auto a = d.open_ok("d1", name, bad.size());
    d.read_all(a, bad.size(), MiB);
    REQUIRE(d.run_until([&] { return d.stats()["store"]["integrity_failures"] == 1; }));
    // The refetch found no trustworthy source: it failed and the daemon is idle again.
    REQUIRE(d.run_until([&] { return d.stats()["fetch_errors"] >= 1; }));
    auto b = d.k.open("erofs,d2", name);
    REQUIRE(d.run_until([&] { return d.k.copen_result(b).has_value(); }));
    CHECK(*d.k.copen_result(b) == -EIO);
    CHECK(d.stats()["sources"][0]["bytes"] == bad.size());
    CHECK(d.k.bad_completions() == 0);
}

// Description: a store that cannot be created (its path is under a regular file) costs the dedup,
// never a READ: both domains are served from upstream and the failures are counted.
TEST_CASE("unusable store: upstream serves, daemon keeps going", "[integration][store]") {
    tmpdir t;
    const std::string data = random_bytes(2 * MiB, 10);
    fs::create_directories(t.path / "src");
    std::ofstream(t.path / "src" / "blob1", std::ios::binary) << data;
    std::ofstream(t.path / "file") << "not a directory";
    cfg::config c = base_config(t);
    c.store.dir = (t.path / "file" / "store").string();
    c.store.use = cfg::store_use::all;
    c.sources.push_back(sources::source_of(sources::local_settings{(t.path / "src").string()}));
    daemon_env d(c);
    auto a = d.open_ok("d1", "blob1", data.size());
    d.read_all(a, data.size(), MiB);
    auto b = d.open_ok("d2", "blob1", data.size());
    d.read_all(b, data.size(), MiB);
    CHECK((d.k.cache_bytes(a, 0, data.size()) == data));
    CHECK((d.k.cache_bytes(b, 0, data.size()) == data));
    auto st = d.stats();
    CHECK(st["upstream_bytes"] == 2 * data.size());
    CHECK(st["store"]["hits"] == 0);
    CHECK(st["store"]["store_errors"] == 6);  // one per OPEN's stat, one per chunk fetched
    CHECK(st["reads_failed"] == 0);
}

// Description: a stored file emptied behind the daemon's back (a lost disk, a careless admin) never
// serves zeros: the ranges are missing again, so upstream serves them.
TEST_CASE("an emptied store file falls back to upstream", "[integration][store]") {
    tmpdir t;
    const std::string data = random_bytes(MiB, 11);
    fs::create_directories(t.path / "src");
    std::ofstream(t.path / "src" / "blob1", std::ios::binary) << data;
    cfg::config c = base_config(t);
    c.store.use = cfg::store_use::all;
    c.sources.push_back(sources::source_of(sources::local_settings{(t.path / "src").string()}));
    daemon_env d(c);
    auto a = d.open_ok("d1", "blob1", data.size());
    d.read_all(a, data.size(), MiB);
    fs::path stored;
    for (const auto& e : fs::recursive_directory_iterator(t.path / "store")) {
        if (e.is_regular_file()) stored = e.path();
    }
    REQUIRE_FALSE(stored.empty());
    {
        std::ofstream trunc(stored, std::ios::binary | std::ios::trunc);
    }
    fs::resize_file(stored, data.size());
    auto b = d.open_ok("d2", "blob1", data.size());
    d.read_all(b, data.size(), MiB);
    CHECK((d.k.cache_bytes(b, 0, data.size()) == data));
    auto st = d.stats();
    CHECK(st["upstream_bytes"] == 2 * data.size());
    CHECK(st["reads_failed"] == 0);
}

// Description: names that are not digests are kept per source: two domains whose different sources
// both have a "blob1" (different bytes) each get their own, even with the store on for both.
TEST_CASE("plain names are not shared between sources", "[integration][store]") {
    tmpdir t;
    const std::string one = random_bytes(MiB, 12), two = random_bytes(MiB, 13);
    fs::create_directories(t.path / "s1");
    fs::create_directories(t.path / "s2");
    std::ofstream(t.path / "s1" / "blob1", std::ios::binary) << one;
    std::ofstream(t.path / "s2" / "blob1", std::ios::binary) << two;
    cfg::config c = base_config(t);
    c.store.use = cfg::store_use::all;
    c.domains["a"].sources.push_back(sources::source_of(sources::local_settings{(t.path / "s1").string()}));
    c.domains["b"].sources.push_back(sources::source_of(sources::local_settings{(t.path / "s2").string()}));
    c.domains["a2"].sources.push_back(sources::source_of(sources::local_settings{(t.path / "s1").string()}));
    daemon_env d(c);
    auto a = d.open_ok("a", "blob1", MiB);
    d.read_all(a, MiB, MiB);
    auto b = d.open_ok("b", "blob1", MiB);
    d.read_all(b, MiB, MiB);
    auto a2 = d.open_ok("a2", "blob1", MiB);
    d.read_all(a2, MiB, MiB);
    CHECK((d.k.cache_bytes(a, 0, MiB) == one));
    CHECK((d.k.cache_bytes(b, 0, MiB) == two));
    CHECK((d.k.cache_bytes(a2, 0, MiB) == one));
    auto st = d.stats();
    CHECK(st["store"]["hits"] == 1);  // a2 shares a's source, so a's copy
    CHECK(st["upstream_bytes"] == 2 * MiB);
}

// Description: by default local sources bypass the store (nothing is created), and a domain can turn
// it on for itself.
TEST_CASE("store defaults: local sources bypass it unless asked", "[integration][store]") {
    tmpdir t;
    const std::string data = random_bytes(MiB, 14);
    fs::create_directories(t.path / "src");
    std::ofstream(t.path / "src" / "blob1", std::ios::binary) << data;
    cfg::config c = base_config(t);
    c.sources.push_back(sources::source_of(sources::local_settings{(t.path / "src").string()}));
    {
        daemon_env d(c);
        auto a = d.open_ok("d1", "blob1", MiB);
        d.read_all(a, MiB, MiB);
        auto st = d.stats();
        CHECK(st["store"]["enabled"] == false);
        CHECK(st["sources"][0]["via_store"] == false);
        CHECK_FALSE(fs::exists(t.path / "store"));
    }
    c.domains["on"].sources = c.sources;
    c.domains["on"].store = cfg::store_use::all;
    daemon_env d(c);
    auto a = d.open_ok("d1", "blob1", MiB);
    d.read_all(a, MiB, MiB);
    auto b = d.open_ok("on", "blob1", MiB);
    d.read_all(b, MiB, MiB);
    auto b2 = d.open_ok("on", "blob1", MiB);  // same domain, same cookie: the registry's job
    auto st = d.stats();
    CHECK(st["store"]["enabled"] == true);
    CHECK(st["store"]["stored_bytes"] == MiB);  // only the "on" domain's fetch
    CHECK(st["sources"][0]["via_store"] == true);
    (void)b2;
}

namespace {
// The store file of a plain (non-digest) name: <store>/src-<16 hex>/<name>, or "" when none.
std::string plain_store_file(const tmpdir& t, const std::string& name) {
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(t.path / "store", ec)) {
        if (fs::exists(d.path() / name)) return (d.path() / name).string();
    }
    return {};
}

// Three random 1 MiB blobs, blob1..blob3, in a local source; a config that stores every source's
// blobs under a 2.5 MiB max_bytes; and a whole-blob read that checks the cache file's bytes.
struct limited_store {
    tmpdir t;
    std::map<std::string, std::string> blobs;
    cfg::config c;

    explicit limited_store(unsigned seed) {
        fs::create_directories(t.path / "src");
        for (unsigned i = 1; i <= 3; ++i) {
            const std::string name = "blob" + std::to_string(i);
            blobs[name] = random_bytes(MiB, seed + i);
            std::ofstream(t.path / "src" / name, std::ios::binary) << blobs[name];
        }
        c = base_config(t);
        c.sources.push_back(sources::source_of(sources::local_settings{(t.path / "src").string()}));
        c.store.use = cfg::store_use::all;
        c.store.max_bytes = 5 * MiB / 2;
    }
    /// OPENs `name` in `domain`, READs all of it, checks the bytes; returns the object.
    std::uint32_t read_blob(daemon_env& d, const std::string& domain, const std::string& name) {
        auto id = d.open_ok(domain, name, MiB);
        d.read_all(id, MiB, MiB);
        CHECK((d.k.cache_bytes(id, 0, MiB) == blobs[name]));
        return id;
    }
};
}  // namespace

// Description: with store.max_bytes, a store that grows past the limit deletes its least recently
// used files until under 90 % of it, never a file whose blob is open; disk_bytes, evicted_files and
// evicted_bytes say so; a deleted blob is fetched from its source again, with the right bytes; a
// restart finds the files on disk and applies a lower limit in the order they were written.
TEST_CASE("max_bytes: least recently used files go, open ones stay", "[integration][store]") {
    limited_store ls(40);
    const tmpdir& t = ls.t;
    cfg::config& c = ls.c;
    auto disk = [](const nlohmann::json& st) { return st["store"]["disk_bytes"].get<std::uint64_t>(); };
    {
        daemon_env d(c);
        auto read_blob = [&](const std::string& name) { return ls.read_blob(d, "d1", name); };
        d.k.close(read_blob("blob1"));
        d.k.close(read_blob("blob2"));
        REQUIRE(d.run_until([&] { return d.daemon->stats_json().find("\"objects_open\":0") != std::string::npos; }));
        REQUIRE(d.run_until([&] { return disk(d.stats()) >= 2 * MiB; }));  // re-read by a worker after each write
        CHECK(d.stats()["store"]["evicted_files"] == 0);
        // The third MiB takes the store past 2.5 MiB: blob1, the least recently used, goes (the
        // accounting and the unlink run on the store's workers, after the READ was answered).
        const auto b3 = read_blob("blob3");
        REQUIRE(d.run_until([&] { return d.stats()["store"]["evicted_files"] == 1; }));
        auto st = d.stats();
        CHECK(st["store"]["evicted_bytes"].get<std::uint64_t>() >= MiB);
        CHECK(disk(st) >= 2 * MiB);
        CHECK(disk(st) <= 5 * MiB / 2 - 5 * MiB / 20);
        CHECK(st["store"]["max_bytes"] == 5 * MiB / 2);
        CHECK(plain_store_file(t, "blob1").empty());
        CHECK_FALSE(plain_store_file(t, "blob2").empty());
        CHECK_FALSE(plain_store_file(t, "blob3").empty());
        // blob1 again, from its source (the bytes right), while blob3 is open: blob2 goes, not blob3.
        const auto src_before = st["sources"][0]["bytes"].get<std::uint64_t>();
        const auto b1 = read_blob("blob1");
        REQUIRE(d.run_until([&] { return d.stats()["store"]["evicted_files"] == 2; }));
        st = d.stats();
        CHECK(st["sources"][0]["bytes"].get<std::uint64_t>() == src_before + MiB);
        CHECK(plain_store_file(t, "blob2").empty());
        CHECK_FALSE(plain_store_file(t, "blob1").empty());
        CHECK_FALSE(plain_store_file(t, "blob3").empty());
        CHECK(d.k.bad_completions() == 0);
        (void)b1;
        (void)b3;
    }
    // A restart with a lower limit: the scan finds 2 MiB; the older file (blob3) goes.
    c.store.max_bytes = 3 * MiB / 2;
    daemon_env d(c);
    REQUIRE(d.run_until([&] { return d.stats()["store"]["evicted_files"] == 1; }));  // the scan runs on a worker
    auto st = d.stats();
    CHECK(st["store"]["evicted_files"] == 1);
    CHECK(disk(st) >= MiB);
    CHECK(disk(st) <= 3 * MiB / 2);
    CHECK(plain_store_file(t, "blob3").empty());
    CHECK_FALSE(plain_store_file(t, "blob1").empty());
}

// Description: a blob open in two domains keeps its store file when one of them closes it: it is
// still in use, so under max_bytes pressure another, unused file goes instead (the store used to
// close, and could evict, a file as soon as any one domain let go of its blob).
TEST_CASE("max_bytes: a blob still open in another domain is not evicted", "[integration][store]") {
    limited_store ls(50);
    const tmpdir& t = ls.t;
    daemon_env d(ls.c);
    auto read_blob = [&](const std::string& domain, const std::string& name) { return ls.read_blob(d, domain, name); };
    const auto held = d.open_ok("d2", "blob1", MiB);  // d2 keeps blob1 open, reads nothing
    d.k.close(read_blob("d1", "blob1"));               // d1 lets go of it
    d.k.close(read_blob("d1", "blob2"));
    d.k.close(read_blob("d1", "blob3"));  // 3 MiB: over the limit
    REQUIRE(d.run_until([&] { return d.stats()["store"]["evicted_files"] == 1; }));
    CHECK_FALSE(plain_store_file(t, "blob1").empty());  // least recently used, but in use
    CHECK(plain_store_file(t, "blob2").empty());
    CHECK_FALSE(plain_store_file(t, "blob3").empty());
    // d2 reads blob1 from the store: no new bytes from the source.
    const auto src_before = d.stats()["sources"][0]["bytes"].get<std::uint64_t>();
    d.read_all(held, MiB, MiB);
    CHECK((d.k.cache_bytes(held, 0, MiB) == ls.blobs["blob1"]));
    CHECK(d.stats()["sources"][0]["bytes"].get<std::uint64_t>() == src_before);
}
