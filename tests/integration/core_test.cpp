// Tests of the core (engine) with injected fetchers: the real ring, the cachefiles frontend over
// the fake kernel, and a test frontend writing regular sparse files; no config, no sources layer.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <algorithm>
#include <deque>
#include <map>
#include <random>

#include "core/engine.hpp"
#include "frontends/cachefiles/frontend.hpp"
#include "io/event_loop.hpp"
#include "tests/support/fake_kernel.hpp"
#include "tests/support/test_util.hpp"

using namespace blobd;
using blobd::test::fake_kernel;

namespace {

constexpr std::uint64_t KiB = 1024;

// A fetcher serving in-memory blobs. Answers are held until release() so that tests decide when
// they arrive (never inline, as the fetcher contract says); it counts every call.
class fake_fetcher final : public fetcher, public fetcher_directory {
public:
    explicit fake_fetcher(event_loop& loop) : loop_(loop) {}
    std::map<std::string, std::string> blobs;
    int fetch_calls = 0, stat_calls = 0;
    bool fail_fetches = false;
    std::size_t short_by = 0;  // answers this many bytes fewer than asked (a lying source)

    void stat(const blob_ref& blob, deadline, stat_done done) override {
        ++stat_calls;
        auto it = blobs.find(blob.name);
        result<std::uint64_t, int> r = it == blobs.end() ? result<std::uint64_t, int>(unexpected{-ENOENT})
                                                         : result<std::uint64_t, int>(it->second.size());
        loop_.defer([done = std::move(done), r]() mutable { done(r); });
    }
    void fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline, fetch_done done) override {
        ++fetch_calls;
        held_.push_back([this, name = blob.name, off, len, done = std::move(done)]() mutable {
            if (fail_fetches) return done(unexpected{-EIO});
            auto b = std::make_shared<aligned_buffer>(len);
            std::memcpy(b->data(), blobs.at(name).data() + off, len);
            b->filled = len - std::min<std::size_t>(short_by, len);
            done(buffer_ptr(std::move(b)));
        });
    }
    void release(const blob_ref&) override {}
    std::string describe() const override { return "fake"; }
    fetcher& for_domain(std::string_view) override { return *this; }

    /// Delivers every fetch held so far, from the loop.
    void release_all() {
        auto held = std::move(held_);
        held_.clear();
        for (auto& f : held) loop_.defer(std::move(f));
    }
    std::size_t held() const { return held_.size(); }

private:
    event_loop& loop_;
    std::deque<std::function<void()>> held_;
};

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    std::mt19937 rng(seed);
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

template <class P>
bool run_until(event_loop& loop, P pred) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        loop.run_once(std::chrono::milliseconds(10));
    }
    return true;
}

// A frontend of regular sparse files (what the fanotify frontend serves): it records answers.
struct recording_port final : frontend_port {
    std::map<std::uint64_t, std::int64_t> opens;  // token -> size or errno
    std::map<std::uint64_t, int> reads;           // token -> status
    int read_answers = 0;
    int answer_open(request_token req, std::int64_t size_or_errno, unique_fd) override {
        CHECK(opens.emplace(req.id, size_or_errno).second);
        return 0;
    }
    void answer_read(const cache_object*, request_token req, int status) override {
        ++read_answers;
        CHECK(reads.emplace(req.id, status).second);
    }
};

}  // namespace

// Description: the engine and the cachefiles frontend with an injected fetcher: two READs of one
// chunk make one fetch, both complete once, and the cache file holds the blob's bytes (direct
// I/O: the tail chunk is padded to 4 KiB, never past it).
TEST_CASE("engine + cachefiles frontend over an injected fetcher", "[integration][core]") {
    fake_kernel k;
    event_loop loop;
    fake_fetcher f(loop);
    f.blobs["b1"] = pattern(300 * KiB + 577, 3);
    engine core(loop, f, engine_options{64 * KiB, 2, {}, cachefiles_write_policy});
    cachefiles_frontend front(loop, k.dev(), core);
    front.start();

    const auto obj = k.open("erofs,d1", "b1");
    REQUIRE(run_until(loop, [&] { return k.copen_result(obj).has_value(); }));
    CHECK(*k.copen_result(obj) == static_cast<std::int64_t>(f.blobs["b1"].size()));
    const auto r1 = k.read(obj, 0, 4096);
    const auto r2 = k.read(obj, 8192, 4096);
    REQUIRE(run_until(loop, [&] { return f.held() == 1; }));
    f.release_all();
    REQUIRE(run_until(loop, [&] { return k.read_done(r1) && k.read_done(r2); }));
    CHECK(f.fetch_calls == 1);
    CHECK(k.completion_count(r1) == 1);
    CHECK(k.completion_count(r2) == 1);
    CHECK(k.cache_bytes(obj, 0, 64 * KiB) == f.blobs["b1"].substr(0, 64 * KiB));

    const auto tail = k.read(obj, 300 * KiB, 577);
    REQUIRE(run_until(loop, [&] { return f.held() == 1; }));
    f.release_all();
    REQUIRE(run_until(loop, [&] { return k.read_done(tail); }));
    CHECK(k.cache_bytes(obj, 256 * KiB, 44 * KiB + 577) == f.blobs["b1"].substr(256 * KiB));
    CHECK(k.cache_file_size(obj) == 300 * KiB + 4096);  // padded to the block, not to the chunk
    CHECK(front.stats().completion_errors == 0);
    k.close(obj);
    REQUIRE(run_until(loop, [&] { return core.object_count() == 0 && loop.inflight() == 0; }));
}

// Description: adjacent chunks are fetched with one source call: a READ of a whole blob of five
// 64 KiB chunks (the last one short) is one fetch, every chunk lands at its place (the tail padded
// to 4 KiB for direct I/O, not past it); with merge_bytes of two chunks the same READ takes three
// calls; a source answering a merged call short fails the READ, with no byte written.
TEST_CASE("adjacent chunks go out as one source call", "[integration][core]") {
    fake_kernel k;
    event_loop loop;
    fake_fetcher f(loop);
    const std::string blob = pattern(4 * 64 * KiB + 577, 11);
    f.blobs["b1"] = blob;
    f.blobs["b2"] = blob;
    f.blobs["b3"] = blob;
    engine_options opts{64 * KiB, 2, {}, cachefiles_write_policy};
    opts.merge_bytes = 1 << 20;
    engine core(loop, f, opts);
    cachefiles_frontend front(loop, k.dev(), core);
    front.start();

    const auto o1 = k.open("erofs,d", "b1");
    REQUIRE(run_until(loop, [&] { return k.copen_result(o1).has_value(); }));
    const auto r1 = k.read(o1, 0, blob.size());
    REQUIRE(run_until(loop, [&] { return f.held() == 1; }));
    f.release_all();
    REQUIRE(run_until(loop, [&] { return k.read_done(r1); }));
    CHECK(f.fetch_calls == 1);
    CHECK(core.stats().chunks_fetched == 5);
    CHECK(k.cache_bytes(o1, 0, blob.size()) == blob);
    CHECK(k.cache_file_size(o1) == 4 * 64 * KiB + 4096);

    // Bounded by merge_bytes: the same engine would not split it, so a second one does.
    engine_options small = opts;
    small.merge_bytes = 2 * 64 * KiB;
    fake_kernel k2;
    fake_fetcher f2(loop);
    f2.blobs = f.blobs;
    engine core2(loop, f2, small);
    cachefiles_frontend front2(loop, k2.dev(), core2);
    front2.start();
    const auto o2 = k2.open("erofs,d", "b2");
    REQUIRE(run_until(loop, [&] { return k2.copen_result(o2).has_value(); }));
    const auto r2 = k2.read(o2, 0, blob.size());
    REQUIRE(run_until(loop, [&] { return f2.held() == 3; }));
    f2.release_all();
    REQUIRE(run_until(loop, [&] { return k2.read_done(r2); }));
    CHECK(f2.fetch_calls == 3);
    CHECK(k2.cache_bytes(o2, 0, blob.size()) == blob);

    // A short answer to a merged call: no chunk of it is trusted.
    f.short_by = 1;
    const auto o3 = k.open("erofs,d", "b3");
    REQUIRE(run_until(loop, [&] { return k.copen_result(o3).has_value(); }));
    const auto r3 = k.read(o3, 0, 3 * 64 * KiB);
    REQUIRE(run_until(loop, [&] { return f.held() == 1; }));
    f.release_all();
    REQUIRE(run_until(loop, [&] { return k.read_done(r3); }));
    CHECK(core.stats().fetch_errors == 3);
    CHECK(k.cache_bytes(o3, 0, 4096) != blob.substr(0, 4096));
    k.close(o1);
    k.close(o3);
    k2.close(o2);
    REQUIRE(run_until(loop, [&] {
        return core.object_count() == 0 && core2.object_count() == 0 && loop.inflight() == 0;
    }));
}

// Description: the exact-length write policy (a regular sparse cache file, as the fanotify frontend
// has): open_sized needs no stat, the tail is written with its exact length so the file never
// grows past the blob, every read is answered once, a failed fetch fails only its reads.
TEST_CASE("engine writes exact lengths into regular sparse files", "[integration][core]") {
    blobd::test::temp_dir dir("core");
    event_loop loop;
    fake_fetcher f(loop);
    const std::string blob = pattern(100 * KiB + 123, 9);
    f.blobs["b"] = blob;
    engine core(loop, f, engine_options{32 * KiB, 2, {}, write_policy{0}});
    recording_port port;
    core.attach(port);

    const std::string path = (dir.path / "b.cache").string();
    unique_fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    REQUIRE(fd);
    REQUIRE(::ftruncate(fd.get(), static_cast<off_t>(blob.size())) == 0);
    core.open_sized(1, 77, "dom", "b", std::move(fd), blob.size());
    REQUIRE(port.opens.count(1));
    CHECK(port.opens[1] == static_cast<std::int64_t>(blob.size()));
    CHECK(f.stat_calls == 0);

    core.read(2, 77, 96 * KiB, 4 * KiB + 123);  // the tail chunk
    core.read(3, 77, 0, 100);
    REQUIRE(run_until(loop, [&] { return f.held() == 2; }));
    f.release_all();
    REQUIRE(run_until(loop, [&] { return port.reads.size() == 2; }));
    CHECK(port.reads[2] == 0);
    CHECK(port.reads[3] == 0);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(static_cast<std::uint64_t>(st.st_size) == blob.size());
    std::string got(blob.size(), '\0');
    unique_fd rd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(::pread(rd.get(), got.data(), got.size(), 0) == static_cast<ssize_t>(got.size()));
    CHECK(got.substr(96 * KiB) == blob.substr(96 * KiB));
    CHECK(got.substr(0, 32 * KiB) == blob.substr(0, 32 * KiB));

    f.fail_fetches = true;
    core.read(4, 77, 40 * KiB, 10);
    core.read(5, 999, 0, 10);  // no such object: answered at once
    CHECK(port.reads.count(5));
    CHECK(port.reads[5] < 0);
    // Chunk 1 right after chunk 0: a sequential reader, so read-ahead fetches come along.
    REQUIRE(run_until(loop, [&] { return f.held() >= 1; }));
    f.release_all();
    REQUIRE(run_until(loop, [&] { return port.reads.count(4) == 1; }));
    CHECK(port.reads[4] == -EIO);
    CHECK(port.read_answers == 4);
    core.close(77);
    REQUIRE(run_until(loop, [&] {
        f.release_all();
        return !core.busy() && loop.inflight() == 0;
    }));
}

// Description: the engine's negative cache: after a chunk's fetch failed, the kernel's retries of
// the other pages of that chunk are answered -EIO at once without a fetch; after failure_ttl the
// chunk is fetched again and, the source having recovered, read.
TEST_CASE("a failed chunk fails its retries fast, then is fetched again", "[integration][core]") {
    fake_kernel k;
    event_loop loop;
    fake_fetcher f(loop);
    f.blobs["b"] = pattern(256 * KiB, 5);
    engine_options opts{64 * KiB, 2, {}, cachefiles_write_policy};
    opts.failure_ttl = std::chrono::milliseconds(200);
    engine core(loop, f, opts);
    cachefiles_frontend front(loop, k.dev(), core);
    front.start();
    const auto obj = k.open("erofs,d", "b");
    REQUIRE(run_until(loop, [&] { return k.copen_result(obj).has_value(); }));

    f.fail_fetches = true;
    const auto first = k.read(obj, 0, 4096);
    REQUIRE(run_until(loop, [&] { return f.held() == 1; }));
    f.release_all();
    REQUIRE(run_until(loop, [&] { return k.read_done(first); }));
    std::vector<std::uint32_t> retries;
    for (std::uint64_t page = 1; page < 8; ++page) retries.push_back(k.read(obj, page * 4096, 4096));
    REQUIRE(run_until(loop, [&] {
        return std::all_of(retries.begin(), retries.end(), [&](auto m) { return k.read_done(m); });
    }));
    CHECK(f.fetch_calls == 1);
    CHECK(core.stats().failed_fast == 7);
    CHECK(k.cache_bytes(obj, 4096, 4096) != f.blobs["b"].substr(4096, 4096));  // a hole, not data

    f.fail_fetches = false;
    const auto t0 = std::chrono::steady_clock::now();
    std::uint32_t later = 0;
    REQUIRE(run_until(loop, [&] { return std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(250); }));
    later = k.read(obj, 4096, 4096);
    REQUIRE(run_until(loop, [&] { return f.held() == 1; }));
    f.release_all();
    REQUIRE(run_until(loop, [&] { return k.read_done(later); }));
    CHECK(f.fetch_calls == 2);
    CHECK(k.cache_bytes(obj, 0, 64 * KiB) == f.blobs["b"].substr(0, 64 * KiB));
    k.close(obj);
    REQUIRE(run_until(loop, [&] { return core.object_count() == 0 && loop.inflight() == 0; }));
}

// Description: the engine's deadline: a fetch whose source never answers fails its READ with
// -ETIMEDOUT shortly after read_deadline (all READs that joined it, once each), and so does a
// READ queued behind it; the source's late answer is dropped (counted), its slot held until then,
// and the next READ of that chunk fetches again and succeeds.
TEST_CASE("a source that does not answer fails its reads at the deadline", "[integration][core]") {
    blobd::test::temp_dir dir("deadline");
    event_loop loop;
    fake_fetcher f(loop);
    const std::string blob = pattern(64 * KiB, 11);
    f.blobs["b"] = blob;
    engine_options opts{32 * KiB, 2, {}, write_policy{0}};
    opts.read_deadline = std::chrono::milliseconds(300);
    engine core(loop, f, opts);
    recording_port port;
    core.attach(port);
    const std::string path = (dir.path / "b.cache").string();
    unique_fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    REQUIRE(fd);
    core.open_sized(1, 5, "dom", "b", std::move(fd), blob.size());
    REQUIRE(port.opens.count(1));

    const auto t0 = std::chrono::steady_clock::now();
    core.read(2, 5, 0, 4096);
    core.read(3, 5, 8192, 4096);  // joins the same chunk's fetch
    REQUIRE(run_until(loop, [&] { return f.held() >= 1; }));
    REQUIRE(run_until(loop, [&] { return port.reads.size() == 2; }));
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= std::chrono::milliseconds(300));
    CHECK(took < std::chrono::milliseconds(900));  // the sweep runs every 250 ms
    CHECK(port.reads[2] == -ETIMEDOUT);
    CHECK(port.reads[3] == -ETIMEDOUT);
    CHECK(core.scheduling().deadline_misses >= 1);
    CHECK(f.held() == 1);  // the source still has it (and it holds its slot)

    // The source answers at last: dropped, not written, nothing answered twice.
    f.release_all();
    REQUIRE(run_until(loop, [&] { return core.scheduling().late_results >= 1; }));
    CHECK(port.read_answers == 2);

    // No negative cache here (failure_ttl 0): the next read fetches again and is served.
    core.read(4, 5, 0, 4096);
    REQUIRE(run_until(loop, [&] {
        f.release_all();
        return port.reads.count(4) == 1;
    }));
    CHECK(port.reads[4] == 0);
    core.close(5);
    REQUIRE(run_until(loop, [&] {
        f.release_all();
        return !core.busy() && loop.inflight() == 0;
    }));
}

// Description: a size lookup (OPEN) whose source never answers is failed at the deadline too.
TEST_CASE("a size lookup that does not come back fails the open at the deadline", "[integration][core]") {
    fake_kernel k;
    event_loop loop;
    // A directory whose fetcher never answers a stat.
    struct silent final : fetcher, fetcher_directory {
        std::vector<stat_done> held;
        void stat(const blob_ref&, deadline due, stat_done done) override {
            CHECK(due != no_deadline);
            held.push_back(std::move(done));
        }
        void fetch(const blob_ref&, std::uint64_t, std::uint64_t, deadline, fetch_done done) override {
            held_fetches.push_back(std::move(done));
        }
        void release(const blob_ref&) override {}
        std::string describe() const override { return "silent"; }
        fetcher& for_domain(std::string_view) override { return *this; }
        std::vector<fetch_done> held_fetches;
    } s;
    engine_options opts{64 * KiB, 2, {}, cachefiles_write_policy};
    opts.read_deadline = std::chrono::milliseconds(200);
    engine core(loop, s, opts);
    cachefiles_frontend front(loop, k.dev(), core);
    front.start();
    const auto obj = k.open("erofs,d", "never");
    REQUIRE(run_until(loop, [&] { return k.copen_result(obj).has_value(); }));
    CHECK(*k.copen_result(obj) == -ETIMEDOUT);
    CHECK(core.scheduling().deadline_misses == 1);
    // The late answer is dropped.
    REQUIRE(s.held.size() == 1);
    s.held[0](std::uint64_t{4096});
    CHECK(core.scheduling().late_results == 1);
    REQUIRE(run_until(loop, [&] { return core.object_count() == 0 && loop.inflight() == 0; }));
}
