// Integration tests of the content-addressed blob store (cas_fetcher) on the real io_uring loop,
// in front of a local source whose reads are counted.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <filesystem>
#include <fstream>
#include <random>

#include "fetchers/cas_fetcher.hpp"
#include "fetchers/local_fetcher.hpp"

using namespace blobd;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t MiB = 1 << 20;

struct cas_env {
    fs::path root;
    event_loop loop;
    std::shared_ptr<local_fetcher> src;
    std::string data;

    cas_env() {
        char t[] = "/tmp/blobd-cas-XXXXXX";
        root = ::mkdtemp(t);
        fs::create_directories(root / "src");
        src = std::make_shared<local_fetcher>(loop, (root / "src").string());
    }
    ~cas_env() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    void blob(const std::string& name, std::size_t n, unsigned seed = 3) {
        data.resize(n);
        std::mt19937 rng(seed);
        for (auto& c : data) c = static_cast<char>(rng());
        std::ofstream(root / "src" / name, std::ios::binary) << data;
    }
    std::unique_ptr<cas_fetcher> store(bool verify = true) {
        return std::make_unique<cas_fetcher>(loop, src, cas_fetcher::options{(root / "store").string(), verify});
    }
    template <class P>
    void run_until(P p) {
        for (int i = 0; i < 1000 && !p(); ++i) loop.run_once(std::chrono::milliseconds(10));
        REQUIRE(p());
    }
    std::uint64_t stat(fetcher& f, const std::string& domain, const std::string& name) {
        std::optional<result<std::uint64_t, int>> r;
        f.stat(blob_ref{domain, name}, no_deadline, [&](result<std::uint64_t, int> v) { r = v; });
        run_until([&] { return r.has_value(); });
        return *r ? **r : 0;
    }
    result<buffer_ptr, int> fetch(fetcher& f, const std::string& domain, const std::string& name, std::uint64_t off,
                                  std::uint64_t len) {
        std::optional<result<buffer_ptr, int>> r;
        f.fetch(blob_ref{domain, name}, off, len, no_deadline, [&](result<buffer_ptr, int> v) { r = std::move(v); });
        run_until([&] { return r.has_value(); });
        // The answer comes before the store's write of the range lands (written behind): let it.
        run_until([&] { return loop.inflight() == 0; });
        return *r;
    }
    bool same(const result<buffer_ptr, int>& r, std::uint64_t off, std::uint64_t len) const {
        return r && (*r)->filled == len &&
               std::memcmp((*r)->data(), data.data() + off, len) == 0;
    }
};

}  // namespace

// Description: the same chunk wanted by two domains at once is fetched once; later fetches of it,
// from any domain, are served by the store.
TEST_CASE("store serves every domain from one download", "[integration][cas]") {
    cas_env env;
    env.blob("shared", 3 * MiB);
    auto s = env.store();
    REQUIRE(env.stat(*s, "d1", "shared") == 3 * MiB);
    REQUIRE(env.stat(*s, "d2", "shared") == 3 * MiB);
    std::optional<result<buffer_ptr, int>> a, b;
    s->fetch(blob_ref{"d1", "shared"}, MiB, MiB, no_deadline, [&](auto r) { a = r; });
    s->fetch(blob_ref{"d2", "shared"}, MiB, MiB, no_deadline, [&](auto r) { b = r; });
    env.run_until([&] { return a && b; });
    CHECK(env.same(*a, MiB, MiB));
    CHECK(env.same(*b, MiB, MiB));
    CHECK(env.src->stats().bytes == MiB);
    auto c = env.fetch(*s, "d3", "shared", MiB, MiB);
    CHECK(env.same(c, MiB, MiB));
    CHECK(env.src->stats().bytes == MiB);
    CHECK(s->store_stats().hits == 1);
    CHECK(s->store_stats().bytes_saved == MiB);
}

// Description: a fetch is answered before its range's write into the store lands (the store writes
// behind, beside the engine's cache-file write); a fetch of that range while the write still runs
// is answered from the same bytes, without a second download, and counted as a store hit.
TEST_CASE("store writes behind its answer, and serves the range meanwhile", "[integration][cas]") {
    cas_env env;
    env.blob("b", 2 * MiB);
    auto s = env.store();
    REQUIRE(env.stat(*s, "d1", "b") == 2 * MiB);
    REQUIRE(env.stat(*s, "d2", "b") == 2 * MiB);
    std::optional<result<buffer_ptr, int>> a, b;
    s->fetch(blob_ref{"d1", "b"}, 0, MiB, no_deadline, [&](auto r) { a = r; });
    env.run_until([&] { return a.has_value(); });
    REQUIRE(env.loop.inflight() > 0);  // the store's write of the range has not landed yet
    s->fetch(blob_ref{"d2", "b"}, 0, MiB, no_deadline, [&](auto r) { b = r; });
    env.run_until([&] { return b.has_value(); });
    CHECK(env.same(*a, 0, MiB));
    CHECK(env.same(*b, 0, MiB));
    CHECK(env.src->stats().bytes == MiB);
    CHECK(s->store_stats().hits == 1);
    env.run_until([&] { return env.loop.inflight() == 0; });
    CHECK(s->store_stats().stored_bytes == MiB);
}

// Description: the store needs no index: a new instance (a restarted daemon) finds stored ranges,
// fetches only what is missing, and treats a different source size as a changed blob.
TEST_CASE("store survives a restart", "[integration][cas]") {
    cas_env env;
    env.blob("b", 2 * MiB + 100);
    {
        auto s = env.store();
        env.stat(*s, "d", "b");
        CHECK(env.same(env.fetch(*s, "d", "b", 0, MiB), 0, MiB));
    }
    auto s = env.store();
    env.stat(*s, "d", "b");
    const auto before = env.src->stats().bytes;
    CHECK(env.same(env.fetch(*s, "d", "b", 0, MiB), 0, MiB));
    CHECK(env.src->stats().bytes == before);
    CHECK(env.same(env.fetch(*s, "d", "b", 2 * MiB, 100), 2 * MiB, 100));  // the unaligned tail
    CHECK(env.src->stats().bytes == before + 100);
    // The source now has another blob under the same name and size differs: nothing stale is served.
    env.blob("b", MiB, 99);
    env.src->release(blob_ref{"d", "b"});
    REQUIRE(env.stat(*s, "d", "b") == MiB);
    CHECK(env.same(env.fetch(*s, "d", "b", 0, MiB), 0, MiB));
}

// Description: a blob named by its sha256 is verified once complete; one whose content does not match
// its name is deleted from the store, counted, and refused from then on (so the chain moves on).
TEST_CASE("sha256-named blobs are verified", "[integration][cas]") {
    cas_env env;
    env.blob("tmp", MiB + 4096);
    const std::string digest = sha256_file((env.root / "src" / "tmp").string());
    REQUIRE(digest.size() == 64);
    fs::rename(env.root / "src" / "tmp", env.root / "src" / ("sha256:" + digest));
    const std::string good = "sha256:" + digest;
    auto s = env.store();
    env.stat(*s, "d", good);
    CHECK(env.fetch(*s, "d", good, 0, MiB));
    CHECK(s->store_stats().verified == 0);  // not complete yet
    CHECK(env.fetch(*s, "d", good, MiB, 4096));
    env.run_until([&] { return s->store_stats().verified == 1; });
    CHECK(s->store_stats().integrity_failures == 0);

    const std::string bad(64, 'a');
    std::ofstream(env.root / "src" / bad, std::ios::binary) << env.data;  // content != name
    env.stat(*s, "d", bad);
    CHECK(env.fetch(*s, "d", bad, 0, MiB));
    CHECK(env.fetch(*s, "d", bad, MiB, 4096));
    env.run_until([&] { return s->store_stats().integrity_failures == 1; });
    // The bad copy is gone; in its place an empty sparse file waits for the next source's bytes.
    struct stat st {};
    REQUIRE(::stat((env.root / "store" / "sha256" / bad).c_str(), &st) == 0);
    CHECK(st.st_blocks == 0);
    auto again = env.fetch(*s, "d", bad, 0, MiB);
    REQUIRE_FALSE(again);
    CHECK(again.error() == -EIO);
}

// Description: when the store cannot be written (its directory is a file), fetches still succeed.
TEST_CASE("a broken store never fails a fetch", "[integration][cas]") {
    cas_env env;
    env.blob("b", MiB);
    std::ofstream(env.root / "store") << "not a directory";
    auto s = env.store();
    env.stat(*s, "d", "b");
    CHECK(env.same(env.fetch(*s, "d", "b", 0, MiB), 0, MiB));
    CHECK(env.same(env.fetch(*s, "d", "b", 0, MiB), 0, MiB));
    CHECK(env.src->stats().bytes == 2 * MiB);
}

// Description: the digest check of a large blob runs on the store's workers: the loop keeps
// turning (a 5 ms timer keeps firing) while it hashes. Prints the hash time and the longest gap
// between timer ticks.
TEST_CASE("hashing a large blob does not block the loop", "[integration][cas]") {
    cas_env env;
    constexpr std::uint64_t size = 64 * MiB;
    env.blob("tmp", size);
    const std::string digest = sha256_file((env.root / "src" / "tmp").string());
    fs::rename(env.root / "src" / "tmp", env.root / "src" / digest);
    auto s = env.store();
    REQUIRE(env.stat(*s, "d", digest) == size);
    REQUIRE(env.fetch(*s, "d", digest, 0, size));  // complete: the check starts once it is accounted
    using clock = std::chrono::steady_clock;
    auto last = clock::now();
    clock::duration longest{};
    int ticks = 0;
    bool stop = false;
    std::function<void()> tick = [&] {
        const auto now = clock::now();
        longest = std::max(longest, now - last);
        last = now;
        ++ticks;
        if (!stop) env.loop.after(std::chrono::milliseconds(5), tick);
    };
    env.loop.after(std::chrono::milliseconds(5), tick);
    const auto t0 = clock::now();
    env.run_until([&] { return s->store_stats().verified == 1; });
    const auto took = clock::now() - t0;
    stop = true;
    const auto ms = [](clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
    WARN("64 MiB verified in " << ms(took) << " ms; " << ticks << " timer ticks, longest gap " << ms(longest) << " ms");
    CHECK(ms(longest) < 100);
    if (took > std::chrono::milliseconds(50)) CHECK(ticks >= 3);
}

// Description: the store's side of the one eviction order (the space keeper culls cache and store
// files together): files() lists every file with its disk space, last use and whether it must stay
// (a blob stat'ed and not released); remove() deletes only those still not in use, answers on a
// later loop turn with what it freed, and the accounting drops by it; a blob deleted this way is
// fetched again from its source, with the right bytes.
TEST_CASE("store files for the space keeper: listed, and removed unless in use", "[integration][cas]") {
    cas_env env;
    env.blob("kept", MiB, 5);
    env.blob("spare", MiB, 6);
    auto store = std::make_shared<cas_store>(env.loop, cas_store::options{(env.root / "store").string(), false});
    cas_fetcher view(env.loop, env.src, store);
    REQUIRE(env.stat(view, "d1", "kept") == MiB);
    REQUIRE(env.fetch(view, "d1", "kept", 0, MiB));
    REQUIRE(env.stat(view, "d1", "spare") == MiB);
    REQUIRE(env.same(env.fetch(view, "d1", "spare", 0, MiB), 0, MiB));
    view.release(blob_ref{"d1", "spare"});
    env.run_until([&] { return store->stats().disk_bytes >= 2 * MiB; });

    const auto before = std::chrono::system_clock::now().time_since_epoch();
    auto files = store->files();
    REQUIRE(files.size() == 2);
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
    CHECK(files[0].key.ends_with("/kept"));
    CHECK(files[0].in_use);  // stat'ed by d1 and not released
    CHECK(files[1].key.ends_with("/spare"));
    CHECK_FALSE(files[1].in_use);
    for (const auto& f : files) {
        CHECK(f.bytes >= MiB);
        CHECK(f.used_ns > 0);
        CHECK(f.used_ns <= std::chrono::duration_cast<std::chrono::nanoseconds>(before).count());
    }

    std::optional<std::pair<std::uint64_t, std::uint64_t>> got;
    store->remove({files[0].key, files[1].key, "src-0000000000000000/none"},
                  [&](std::uint64_t n, std::uint64_t bytes) { got.emplace(n, bytes); });
    CHECK_FALSE(got);  // never inline
    env.run_until([&] { return got.has_value(); });
    CHECK(got->first == 1);  // only the spare one: the other is in use, the third unknown
    CHECK(got->second == files[1].bytes);
    CHECK(store->stats().disk_bytes == files[0].bytes);
    CHECK_FALSE(fs::exists(env.root / "store" / files[1].key));
    CHECK(fs::exists(env.root / "store" / files[0].key));
    // Nothing to remove: still answered, later.
    got.reset();
    store->remove({}, [&](std::uint64_t n, std::uint64_t bytes) { got.emplace(n, bytes); });
    CHECK_FALSE(got);
    env.run_until([&] { return got.has_value(); });
    CHECK(got->first == 0);
    // The removed blob comes from its source again.
    const auto src_before = env.src->stats().bytes;
    REQUIRE(env.stat(view, "d2", "spare") == MiB);
    CHECK(env.same(env.fetch(view, "d2", "spare", 0, MiB), 0, MiB));
    CHECK(env.src->stats().bytes == src_before + MiB);
}
