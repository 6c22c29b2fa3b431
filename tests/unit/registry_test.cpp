// Unit tests of the registry's decisions, driven directly: no ring, no kernel, no files.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <random>
#include <set>

#include "core/registry.hpp"

using namespace blobd;

namespace {

constexpr std::uint64_t MiB = 1 << 20;

unique_fd some_fd() { return unique_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

template <class T>
std::vector<T> only(const effects& effs) {
    std::vector<T> out;
    for (const auto& e : effs) {
        if (auto* p = std::get_if<T>(&e)) out.push_back(*p);
    }
    return out;
}
template <>
std::vector<reply_open> only<reply_open>(const effects& effs) {
    std::vector<reply_open> out;
    for (const auto& e : effs) {
        if (auto* p = std::get_if<reply_open>(&e)) out.push_back(reply_open{p->req, p->size_or_errno, {}, p->opened, p->domain});
    }
    return out;
}

buffer_ptr filled(std::uint64_t n) {
    auto b = std::make_shared<aligned_buffer>(n);
    b->filled = n;
    return b;
}

// Opens object `obj` of blob `name` in domain d and answers its stat with `size`.
void open_sized(registry& r, std::uint32_t obj, std::string name, std::uint64_t size, std::string domain = "d") {
    auto e = r.open(100 + obj, obj, domain, name, some_fd());
    auto st = only<stat_blob>(e);
    if (!st.empty()) {
        auto rep = only<reply_open>(r.on_stat(st[0].blob, size));
        REQUIRE(rep.size() == 1);
        CHECK(rep[0].size_or_errno == static_cast<std::int64_t>(size));
    } else {
        REQUIRE(only<reply_open>(e).size() == 1);
    }
}

}  // namespace

// Description: the first OPEN of a blob stats it; the reply carries the size.
TEST_CASE("open stats the blob once and replies with its size", "[registry]") {
    registry r(MiB);
    auto e = r.open(1, 10, "d", "blob", some_fd());
    REQUIRE(e.size() == 1);
    auto st = std::get<stat_blob>(e[0]);
    CHECK(st.domain == "d");
    CHECK(st.name == "blob");
    auto rep = only<reply_open>(r.on_stat(st.blob, std::uint64_t{5000}));
    REQUIRE(rep.size() == 1);
    CHECK(rep[0].req.id == 1);
    CHECK(rep[0].size_or_errno == 5000);
    CHECK(r.object_count() == 1);
}

// Description: a missing blob fails the OPEN with the source's errno and gives the fd back to close after the reply.
TEST_CASE("missing blob fails the open and releases the fd", "[registry]") {
    registry r(MiB);
    auto e = r.open(1, 10, "d", "nope", some_fd());
    auto st = std::get<stat_blob>(e[0]);
    auto out = r.on_stat(st.blob, unexpected{-ENOENT});
    REQUIRE(out.size() == 2);
    auto& rep = std::get<reply_open>(out[0]);
    CHECK(std::get<release_blob>(out[1]).name == "nope");  // sources may drop their handles
    CHECK(rep.size_or_errno == -ENOENT);
    CHECK(rep.fd_to_close);
    CHECK(r.object_count() == 0);
    CHECK(r.stats().open_failures == 1);
    CHECK_FALSE(r.busy());
    // A later OPEN of the same name asks the sources again.
    CHECK(only<stat_blob>(r.open(2, 11, "d", "nope", some_fd())).size() == 1);
}

// Description: two READs of one chunk give one fetch; both complete after the single write.
TEST_CASE("two READs of one chunk share one fetch", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", 4 * MiB);
    auto e1 = r.read(1, 1, 0, 4096);
    auto e2 = r.read(2, 1, 512, 4096);
    auto f = only<fetch_chunk>(e1);
    REQUIRE(f.size() == 1);
    CHECK(f[0].off == 0);
    CHECK(f[0].len == MiB);
    CHECK(only<fetch_chunk>(e2).empty());
    CHECK(r.stats().fetch_joins == 1);
    auto w = only<write_chunk>(r.on_fetched(f[0].blob, 0, filled(MiB)));
    REQUIRE(w.size() == 1);
    CHECK(w[0].off == 0);
    CHECK(w[0].len == MiB);
    auto done = only<complete_read>(r.on_written(w[0].object, 0, static_cast<int>(MiB)));
    REQUIRE(done.size() == 2);
    CHECK(done[0].req.id == 1);
    CHECK(done[1].req.id == 2);
    CHECK(done[0].status == 0);
    // Written now: a repeated READ completes without fetching.
    auto again = r.read(3, 1, 0, 4096);
    REQUIRE(again.size() == 1);
    CHECK(std::get<complete_read>(again[0]).req.id == 3);
    CHECK(r.stats().chunks_fetched == 1);
    CHECK_FALSE(r.busy());
}

// Description: a READ spanning chunks fetches each and completes once, after the last.
TEST_CASE("read spanning chunks", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", 3 * MiB + 100);
    auto e = r.read(1, 1, MiB - 4096, 2 * MiB + 8192);
    auto f = only<fetch_chunk>(e);
    REQUIRE(f.size() == 4);
    CHECK(f[3].off == 3 * MiB);
    CHECK(f[3].len == 100);  // clamped to the blob size
    for (int i = 0; i < 3; ++i) {
        auto w = only<write_chunk>(r.on_fetched(f[i].blob, f[i].chunk, filled(f[i].len)));
        CHECK(only<complete_read>(r.on_written(w[0].object, f[i].chunk, static_cast<int>(f[i].len))).empty());
    }
    auto w = only<write_chunk>(r.on_fetched(f[3].blob, 3, filled(100)));
    CHECK(only<complete_read>(r.on_written(w[0].object, 3, 100)).size() == 1);
}

// Description: READs past the end or of zero length complete at once, without a fetch.
TEST_CASE("reads outside the blob complete at once", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", 8192);
    for (auto [off, len] : {std::pair<std::uint64_t, std::uint64_t>{8192, 4096}, {0, 0}, {1 << 30, 1}}) {
        auto e = r.read(7, 1, off, len);
        REQUIRE(e.size() == 1);
        CHECK(std::get<complete_read>(e[0]).req.id == 7);
    }
    // A READ that straddles the end fetches only what exists.
    auto f = only<fetch_chunk>(r.read(8, 1, 4096, 8192));
    REQUIRE(f.size() == 1);
    CHECK(f[0].len == 8192);
}

// Description: a failed fetch completes its READs with the error, and the next READ fetches again.
TEST_CASE("fetch failure completes reads and allows a retry", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", MiB);
    auto f = only<fetch_chunk>(r.read(1, 1, 0, 4096));
    r.read(2, 1, 4096, 4096);
    auto done = only<complete_read>(r.on_fetched(f[0].blob, 0, unexpected{-EIO}));
    REQUIRE(done.size() == 2);
    CHECK(done[0].status == -EIO);
    CHECK(r.stats().fetch_errors == 1);
    CHECK(r.stats().reads_failed == 2);
    CHECK(only<fetch_chunk>(r.read(3, 1, 0, 4096)).size() == 1);
}

// Description: a fetcher that returns the wrong number of bytes is treated as a failure, never written.
TEST_CASE("short fetch is not written", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", MiB);
    auto f = only<fetch_chunk>(r.read(1, 1, 0, 4096));
    auto out = r.on_fetched(f[0].blob, 0, filled(MiB - 1));
    CHECK(only<write_chunk>(out).empty());
    REQUIRE(only<complete_read>(out).size() == 1);
    CHECK(only<complete_read>(out)[0].status == -EIO);
}

// Description: a failed write completes the READ with the error and forgets the chunk.
TEST_CASE("write failure", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", MiB);
    auto f = only<fetch_chunk>(r.read(1, 1, 0, 4096));
    auto w = only<write_chunk>(r.on_fetched(f[0].blob, 0, filled(MiB)));
    auto done = only<complete_read>(r.on_written(w[0].object, 0, -ENOSPC));
    REQUIRE(done.size() == 1);
    CHECK(done[0].status == -ENOSPC);
    CHECK(r.stats().write_errors == 1);
    CHECK(only<fetch_chunk>(r.read(2, 1, 0, 4096)).size() == 1);
}

// Description: CLOSE while a write is in flight: the object (and its fd) lives on in the write effect.
TEST_CASE("close during a write keeps the object alive", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", MiB);
    auto f = only<fetch_chunk>(r.read(1, 1, 0, 4096));
    auto w = only<write_chunk>(r.on_fetched(f[0].blob, 0, filled(MiB)));
    auto closed = only<complete_read>(r.close(1));
    REQUIRE(closed.size() == 1);  // the pending READ still gets its one completion
    CHECK(r.object_count() == 0);
    CHECK(w[0].object.use_count() >= 2);  // held by the effect, fd still open
    CHECK(w[0].object->fd);
    CHECK(only<complete_read>(r.on_written(w[0].object, 0, static_cast<int>(MiB))).empty());
    CHECK_FALSE(r.busy());
}

// Description: CLOSE while a fetch is in flight: the data arriving later is dropped, nothing written.
TEST_CASE("close during a fetch", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", MiB);
    auto f = only<fetch_chunk>(r.read(1, 1, 0, 4096));
    auto closed = r.close(1);
    CHECK(only<complete_read>(closed).size() == 1);
    CHECK(only<release_blob>(closed).empty());  // the fetch still refers to the blob
    auto late = r.on_fetched(f[0].blob, 0, filled(MiB));
    CHECK(only<write_chunk>(late).empty());
    CHECK(only<release_blob>(late).size() == 1);
    CHECK_FALSE(r.busy());
}

// Description: the same cookie name in two domains is two blobs; in one domain (two objects, after
// a reopen) one blob whose in-flight fetch serves both objects.
TEST_CASE("domains separate blobs; one fetch serves every object of a blob", "[registry]") {
    registry r(MiB);
    auto a = only<stat_blob>(r.open(1, 1, "d1", "blob", some_fd()));
    auto b = only<stat_blob>(r.open(2, 2, "d2", "blob", some_fd()));
    REQUIRE(a.size() == 1);
    REQUIRE(b.size() == 1);
    CHECK(a[0].blob != b[0].blob);
    CHECK(r.stats().blobs == 2);

    registry s(MiB);
    open_sized(s, 1, "blob", MiB, "d");
    // A second object of the same blob (the kernel reopened it) is answered from the known size.
    auto e = s.open(9, 2, "d", "blob", some_fd());
    REQUIRE(only<reply_open>(e).size() == 1);
    CHECK(only<reply_open>(e)[0].size_or_errno == static_cast<std::int64_t>(MiB));
    auto f = only<fetch_chunk>(s.read(1, 1, 0, 4096));
    CHECK(only<fetch_chunk>(s.read(2, 2, 0, 4096)).empty());
    auto w = only<write_chunk>(s.on_fetched(f[0].blob, 0, filled(MiB)));
    CHECK(w.size() == 2);  // written into both cache files from one fetch
}

// Description: OPENs racing for one blob wait on a single stat.
TEST_CASE("concurrent opens share the stat", "[registry]") {
    registry r(MiB);
    auto e1 = r.open(1, 1, "d", "b", some_fd());
    auto e2 = r.open(2, 2, "d", "b", some_fd());
    CHECK(only<stat_blob>(e1).size() == 1);
    CHECK(e2.empty());
    auto rep = only<reply_open>(r.on_stat(only<stat_blob>(e1)[0].blob, std::uint64_t{4096}));
    CHECK(rep.size() == 2);
}

// Description: shutdown answers every pending OPEN and READ exactly once.
TEST_CASE("fail_all answers everything", "[registry]") {
    registry r(MiB);
    r.open(1, 1, "d", "pending", some_fd());
    open_sized(r, 2, "b", MiB);
    r.read(5, 2, 0, 4096);
    CHECK(r.busy());
    auto out = r.fail_all(-EIO);
    CHECK(only<reply_open>(out).size() == 1);
    CHECK(only<complete_read>(out).size() == 1);
    CHECK_FALSE(r.busy());
    CHECK(r.fail_all(-EIO).empty());
}

// Description: a READ of an unknown object is counted and answered once, with no object and
// -EBADF (a frontend may have to answer every request); a CLOSE of one is ignored; a duplicate
// OPEN replaces the object.
TEST_CASE("unknown objects and duplicate opens", "[registry]") {
    registry r(MiB);
    auto unknown = only<complete_read>(r.read(request_token{1, 7}, 99, 0, 1));
    REQUIRE(unknown.size() == 1);
    CHECK(unknown[0].object == nullptr);
    CHECK(unknown[0].req == request_token{1, 7});
    CHECK(unknown[0].status == -EBADF);
    CHECK(r.close(99).empty());
    CHECK(r.stats().reads_failed == 1);
    open_sized(r, 1, "b", MiB);
    r.read(3, 1, 0, 4096);
    auto e = r.open(4, 1, "d", "b", some_fd());
    CHECK(only<complete_read>(e).size() == 1);  // the old object's READ is answered
    CHECK(only<reply_open>(e).size() == 1);
    CHECK(r.object_count() == 1);
}

// Description: an open whose size the frontend knows is answered at once, with no stat; it also
// answers opens of the same blob waiting for a stat (whose answer then changes nothing); a size
// that disagrees with the blob's known size fails the open with -ESTALE and hands the fd back.
TEST_CASE("open_sized answers at once and checks the size", "[registry]") {
    registry r(MiB);
    auto first = r.open(1, 10, "d", "b", some_fd());
    auto st = only<stat_blob>(first);
    REQUIRE(st.size() == 1);
    auto sized = r.open_sized(2, 11, "d", "b", some_fd(), 5000);
    CHECK(only<stat_blob>(sized).empty());
    auto replies = only<reply_open>(sized);
    REQUIRE(replies.size() == 2);  // the waiting open and this one
    CHECK(replies[0].req.id == 1);
    CHECK(replies[1].req.id == 2);
    CHECK(replies[0].size_or_errno == 5000);
    CHECK(replies[1].size_or_errno == 5000);
    CHECK(r.on_stat(st[0].blob, std::uint64_t{7777}).empty());  // late stat: the size stays
    CHECK(r.read(3, 11, 4000, 4096).size() == 1);               // one fetch: the blob ends at 5000
    auto wrong = r.open_sized(4, 12, "d", "b", some_fd(), 6000);
    REQUIRE(wrong.size() == 1);
    auto& rep = std::get<reply_open>(wrong[0]);
    CHECK(rep.size_or_errno == -ESTALE);
    CHECK(rep.fd_to_close);
    CHECK(r.object_count() == 2);
    CHECK(r.stats().open_failures == 1);
    auto other = only<reply_open>(r.open_sized(5, 13, "e", "c", some_fd(), 1));
    REQUIRE(other.size() == 1);
    CHECK(other[0].size_or_errno == 1);
}

// Description: the negative cache: once a chunk's fetch failed and was noted, reads of it fail at
// once (no fetch) and prefetch skips it; a read that also wants a good chunk waits for that and then
// fails; once forgotten, the chunk is fetched again.
TEST_CASE("a noted fetch failure fails reads fast until forgotten", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", 4 * MiB);
    auto first = only<fetch_chunk>(r.read(10, 1, 0, 4096));
    REQUIRE(first.size() == 1);
    r.note_failure(first[0].blob, 0);
    auto failed = only<complete_read>(r.on_fetched(first[0].blob, 0, unexpected{-ETIMEDOUT}));
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].status == -ETIMEDOUT);

    auto again = r.read(11, 1, 8192, 4096);  // another page of the same chunk (not the next: read-ahead)
    CHECK(only<fetch_chunk>(again).empty());
    auto fast = only<complete_read>(again);
    REQUIRE(fast.size() == 1);
    CHECK(fast[0].status == -EIO);
    CHECK(r.stats().failed_fast == 1);

    auto both = r.read(12, 1, MiB - 4096, 8192);  // chunk 0 (failing) and chunk 1
    auto f1 = only<fetch_chunk>(both);
    REQUIRE(f1.size() == 1);
    CHECK(f1[0].chunk == 1);
    CHECK(only<complete_read>(both).empty());
    auto w = only<write_chunk>(r.on_fetched(f1[0].blob, 1, filled(MiB)));
    REQUIRE(w.size() == 1);
    auto done = only<complete_read>(r.on_written(w[0].object, 1, static_cast<int>(MiB)));
    REQUIRE(done.size() == 1);
    CHECK(done[0].status == -EIO);

    for (const auto& f : only<fetch_chunk>(r.prefetch(1, {}))) CHECK(f.chunk != 0);

    r.forget_failure(first[0].blob, 0);
    auto retry = only<fetch_chunk>(r.read(13, 1, 0, 4096));
    REQUIRE(retry.size() == 1);
    CHECK(retry[0].chunk == 0);
    CHECK(r.stats().reads_failed == 3);
}

// Description: a restarted fanotify daemon counts what its kept cache file holds as filled
// (mark_present): only chunks covered entirely are, a READ of them is answered without a fetch,
// the others are fetched; the short last chunk counts when its bytes are all there.
TEST_CASE("mark_present: data kept from an earlier run is not fetched again", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", 4 * MiB + 10);
    // Chunk 0 whole, chunk 1 only half (a write cut short), chunk 4 (10 bytes) whole.
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> present = {{0, MiB + MiB / 2}, {4 * MiB, 4096}};
    CHECK(r.mark_present(1, present) == 2);
    CHECK(r.mark_present(1, present) == 0);  // already tracked: nothing new
    CHECK(r.mark_present(99, present) == 0);  // no such object
    auto hit = r.read(7, 1, 4096, 8192);
    REQUIRE(only<complete_read>(hit).size() == 1);
    CHECK(only<fetch_chunk>(hit).empty());
    auto tail = r.read(8, 1, 4 * MiB, 10);
    REQUIRE(only<complete_read>(tail).size() == 1);
    auto miss = only<fetch_chunk>(r.read(9, 1, MiB, 4096));
    REQUIRE(miss.size() == 1);
    CHECK(miss[0].chunk == 1);
    CHECK(r.stats().bytes_fetched == 0);
    CHECK_FALSE(r.complete(1));  // chunks 1-3 missing (1 fetching)
    // Everything present: complete; a chunk fetched again makes it incomplete until written.
    open_sized(r, 2, "c", 2 * MiB + 10);
    CHECK_FALSE(r.complete(2));
    CHECK(r.mark_present(2, {{0, 2 * MiB + 4096}}) == 3);
    CHECK(r.complete(2));
    CHECK_FALSE(r.complete(99));
    CHECK(only<fetch_chunk>(r.refetch("c")).size() == 3);
    CHECK_FALSE(r.complete(2));
}

// Description: prefetch fetches every chunk not yet cached, in the background; ranges the cache file
// already holds are skipped; a READ that then wants a queued prefetch chunk promotes it and joins it.
TEST_CASE("prefetch in the background, promoted by READs", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", 4 * MiB + 10);
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> present = {{MiB, MiB}};  // chunk 1 cached
    auto e = r.prefetch(1, present);
    auto f = only<fetch_chunk>(e);
    REQUIRE(f.size() == 4);  // chunks 0, 2, 3, 4
    for (const auto& fc : f) CHECK(fc.background);
    CHECK(f[0].chunk == 0);
    CHECK(f[1].chunk == 2);
    CHECK(f[3].len == 10);
    CHECK(r.stats().prefetch_chunks == 4);
    // The cached chunk completes a READ at once.
    auto hit = r.read(7, 1, MiB + 4096, 4096);
    REQUIRE(only<complete_read>(hit).size() == 1);
    // A READ of a prefetching chunk: no second fetch, a promotion instead.
    auto rd = r.read(8, 1, 2 * MiB, 4096);
    CHECK(only<fetch_chunk>(rd).empty());
    auto pr = only<promote_fetch>(rd);
    REQUIRE(pr.size() == 1);
    CHECK(pr[0].chunk == 2);
    CHECK(r.stats().prefetch_promoted == 1);
    // Asking again does not promote twice.
    CHECK(only<promote_fetch>(r.read(9, 1, 2 * MiB + 8192, 4096)).empty());
    auto w = only<write_chunk>(r.on_fetched(f[1].blob, 2, filled(MiB)));
    REQUIRE(w.size() == 1);
    CHECK(only<complete_read>(r.on_written(w[0].object, 2, static_cast<int>(MiB))).size() == 2);
    // A second prefetch of the same object has nothing left to start.
    CHECK(only<fetch_chunk>(r.prefetch(1, {})).empty());
    // Stopping: queued prefetches are abandoned and the registry is idle once the rest settle.
    for (auto c : {0, 3, 4}) r.abandon_fetch(f[0].blob, c);
    CHECK_FALSE(r.busy());
}

// Description: a successful reply names the opened object and its domain (for prefetch decisions).
TEST_CASE("reply_open carries the opened object", "[registry]") {
    registry r(MiB);
    auto st = only<stat_blob>(r.open(1, 5, "dom", "b", some_fd()));
    auto out = r.on_stat(st[0].blob, std::uint64_t{4096});
    auto& rep = std::get<reply_open>(out[0]);
    REQUIRE(rep.opened);
    CHECK(rep.opened->key == 5);
    CHECK(rep.domain == "dom");
}

// Description: a READ that starts where the previous READ ended or at the start of the chunk after
// its last one (a sequential reader), with no other READ of the object pending, fetches chunks
// after it in the background: as many whole chunks as the run has read so far (none before it read
// a whole chunk's worth), at most readahead_bytes and readahead_max_chunks, never past the blob's
// end nor chunks already wanted; a READ elsewhere in the same or the next chunk, farther away, or
// while others are pending does not.
TEST_CASE("sequential READs fetch the following chunks in the background", "[registry]") {
    // Lands a fetch: the chunk is fetched and written, completing the READs waiting on it.
    auto land = [](registry& reg, const fetch_chunk& f) {
        for (const auto& w : only<write_chunk>(reg.on_fetched(f.blob, f.chunk, filled(f.len)))) {
            reg.on_written(w.object, w.chunk, static_cast<int>(w.len));
        }
    };
    auto chunks_of = [](const std::vector<fetch_chunk>& fs) {
        std::vector<std::uint64_t> v;
        for (const auto& f : fs) v.push_back(f.chunk);
        return v;
    };
    REQUIRE(registry::readahead_bytes >= 4 * MiB);
    registry r(MiB);
    open_sized(r, 1, "b", 16 * MiB + 100);
    // The first READ has no history: only its own chunk, on demand.
    auto f0 = only<fetch_chunk>(r.read(1, 1, 0, 128 * 1024));
    REQUIRE(f0.size() == 1);
    CHECK_FALSE(f0[0].background);
    // Same chunk again (a racing window): no read-ahead.
    CHECK(only<fetch_chunk>(r.read(2, 1, 128 * 1024, 128 * 1024)).empty());
    // The next chunk while READs 1 and 2 still wait: the kernel is asking ahead itself.
    auto f1 = only<fetch_chunk>(r.read(3, 1, MiB, 128 * 1024));
    REQUIRE(f1.size() == 1);
    CHECK(r.stats().readahead_chunks == 0);
    land(r, f0[0]);
    land(r, f1[0]);
    CHECK_FALSE(r.busy());
    // The chunk after, alone: its own fetch on demand, then as many chunks as the run has read
    // (2 MiB and 128 KiB: two) in the background.
    auto f2 = only<fetch_chunk>(r.read(4, 1, 2 * MiB, 128 * 1024));
    CHECK(chunks_of(f2) == std::vector<std::uint64_t>{2, 3, 4});
    REQUIRE(f2.size() == 3);
    CHECK_FALSE(f2[0].background);
    CHECK(f2[1].background);
    CHECK(f2[2].background);
    CHECK(r.stats().readahead_chunks == 2);
    land(r, f2[0]);
    // The next chunk was read ahead: the READ joins (and promotes) that fetch; the run has read
    // three chunks' worth, so read-ahead goes on to chunks 5 and 6 (4 is wanted already).
    auto e3 = r.read(5, 1, 3 * MiB, 4096);
    CHECK(only<promote_fetch>(e3).size() == 1);
    auto f3 = only<fetch_chunk>(e3);
    CHECK(chunks_of(f3) == std::vector<std::uint64_t>{5, 6});
    CHECK(std::all_of(f3.begin(), f3.end(), [](const fetch_chunk& f) { return f.background; }));
    CHECK(r.stats().readahead_chunks == 4);
    // Never past the blob's end: the last chunk is 100 bytes.
    registry rt(MiB);
    open_sized(rt, 1, "b", 2 * MiB + 100);
    auto t0 = only<fetch_chunk>(rt.read(1, 1, 0, MiB));
    REQUIRE(t0.size() == 1);
    land(rt, t0[0]);
    auto t1 = only<fetch_chunk>(rt.read(2, 1, MiB, 4096));
    CHECK(chunks_of(t1) == std::vector<std::uint64_t>{1, 2});
    REQUIRE(t1.size() == 2);
    CHECK(t1[1].len == 100);
    land(rt, t1[0]);
    land(rt, t1[1]);
    CHECK(only<fetch_chunk>(rt.read(3, 1, 2 * MiB, 100)).empty());  // written: nothing to fetch, none beyond
    // A jump elsewhere is not sequential.
    registry r2(MiB);
    open_sized(r2, 1, "b", 64 * MiB);
    for (std::uint64_t at : {10, 30, 20}) {
        auto f = only<fetch_chunk>(r2.read(static_cast<std::uint32_t>(at), 1, at * MiB, 4096));
        REQUIRE(f.size() == 1);
        land(r2, f[0]);
    }
    CHECK(r2.stats().readahead_chunks == 0);
    // Small chunks: at most readahead_max_chunks ahead, however many fit in readahead_bytes.
    registry r3(4096);
    open_sized(r3, 1, "b", 64 * MiB);
    auto s0 = only<fetch_chunk>(r3.read(1, 1, 0, MiB));
    REQUIRE(s0.size() == MiB / 4096);
    for (const auto& f : s0) land(r3, f);
    CHECK(only<fetch_chunk>(r3.read(2, 1, MiB, 4096)).size() == 1 + registry::readahead_max_chunks);
    CHECK(r3.stats().readahead_chunks == registry::readahead_max_chunks);
    // Small files scattered over the blob: a READ inside the next chunk but neither where the last
    // one ended nor at the chunk's start is not sequential; one exactly at the last end is, even
    // inside the same chunk (fanotify asks for each window erofs reads, cached or not), but reads
    // ahead only once the run has read a whole chunk's worth.
    registry r4(64 * 1024);
    open_sized(r4, 1, "b", 64 * MiB);
    for (std::uint64_t at : {4096ull, 64ull * 1024 + 8192, 2ull * 64 * 1024 + 40960}) {
        auto f = only<fetch_chunk>(r4.read(static_cast<std::uint32_t>(at), 1, at, 4096));
        REQUIRE(f.size() == 1);
        land(r4, f[0]);
    }
    CHECK(r4.stats().readahead_chunks == 0);
    CHECK(only<fetch_chunk>(r4.read(9, 1, 2 * 64 * 1024 + 45056, 4096)).empty());  // run of 8 KiB: chunk 2, written
    CHECK(r4.stats().readahead_chunks == 0);
    auto seq = only<fetch_chunk>(r4.read(10, 1, 2 * 64 * 1024 + 49152, 64 * 1024));  // run of 72 KiB
    CHECK(chunks_of(seq) == std::vector<std::uint64_t>{3, 4});  // 3 on demand, 4 ahead
    REQUIRE(seq.size() == 2);
    CHECK_FALSE(seq[0].background);
    CHECK(seq[1].background);
    CHECK(r4.stats().readahead_chunks == 1);
}

// Description: an effects vector handed back with recycle() is reused by the next call: empty, its capacity kept, and whatever its effects held (buffers, objects) released at once.
TEST_CASE("recycled effects vectors come back empty, their contents released", "[registry]") {
    registry r(MiB);
    open_sized(r, 1, "b", 4 * MiB);
    auto e = r.read(1, 1, 0, 4096);
    auto f = only<fetch_chunk>(e);
    REQUIRE(f.size() == 1);
    auto data = filled(MiB);
    auto w = r.on_fetched(f[0].blob, 0, data);
    REQUIRE(only<write_chunk>(w).size() == 1);
    CHECK(data.use_count() == 2);  // ours and the write_chunk's
    const auto* storage = w.data();
    r.recycle(std::move(w));
    CHECK(data.use_count() == 1);  // released by recycle, not kept in a spare vector
    // The next call's effects land in the recycled storage, without the old write_chunk.
    auto e2 = r.read(2, 1, MiB, 4096);
    CHECK(e2.data() == storage);
    REQUIRE(e2.size() == 1);
    CHECK(std::get<fetch_chunk>(e2[0]).chunk == 1);
    r.recycle(std::move(e));
    r.recycle(effects{});  // nothing to keep: ignored
}

// Description: random interleavings (seeded, 300 runs) of READs, prefetches, refetches, fetch and write results (some failing or short), CLOSEs and re-OPENs, over one blob name in two domains: every READ completes exactly once, a successful one only once every chunk of its range was written into its object, no chunk is fetched twice at the same time, and nothing is left pending once every result is in.
TEST_CASE("random interleavings keep the one-completion contract", "[registry][model]") {
    constexpr std::uint64_t chunk = 4096;
    constexpr std::uint64_t size = 24 * chunk + 1000;
    for (unsigned seed = 1; seed <= 300; ++seed) {
        CAPTURE(seed);
        std::mt19937 rng(seed);
        auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
        auto chance = [&](int percent) { return static_cast<int>(pick(100)) < percent; };
        registry r(chunk);

        struct model_object {
            bool open = false;      // the OPEN was answered with the size
            bool opening = false;   // the OPEN is not answered yet
            object_ptr ptr;
            std::set<std::uint64_t> written;  // chunks written into this incarnation
        };
        std::map<std::uint32_t, model_object> objs;  // objects 1-3 in domain "a", 4 in "b"
        // Keys and tokens are the frontend's opaque values: use ones no 32-bit id could be, and
        // tokens carrying an "fd" that must come back unchanged.
        auto key_of = [](std::uint32_t obj) { return (object_key{0xfeed} << 40) | obj; };
        auto obj_of = [](object_key key) { return static_cast<std::uint32_t>(key & 0xffffffff); };
        auto token = [](std::uint32_t msg) { return request_token{(std::uint64_t{1} << 48) + msg, static_cast<int>(msg % 97)}; };
        auto msg_of = [](const request_token& t) {
            const auto msg = static_cast<std::uint32_t>(t.id - (std::uint64_t{1} << 48));
            CHECK(t.fd == static_cast<int>(msg % 97));
            return msg;
        };
        std::map<std::uint32_t, std::uint32_t> open_msgs;  // OPEN msg_id -> object
        struct model_read {
            std::uint32_t object;
            object_ptr ptr;
            std::uint64_t off, end;
        };
        std::map<std::uint32_t, model_read> reads;  // every READ sent
        std::set<std::uint32_t> completed;
        std::vector<fetch_chunk> fetches;  // in flight
        std::set<std::pair<blob_id, std::uint64_t>> fetching;
        std::vector<write_chunk> writes;  // in flight
        std::vector<blob_id> stats;       // stat_blob not answered yet
        std::vector<std::pair<blob_id, std::uint64_t>> noted;  // failures in the negative cache
        std::uint32_t next_msg = 1;

        auto apply = [&](effects e) {
            for (auto& eff : e) {
                if (auto* o = std::get_if<reply_open>(&eff)) {
                    auto it = open_msgs.find(msg_of(o->req));
                    REQUIRE(it != open_msgs.end());  // exactly one reply per OPEN
                    auto& m = objs[it->second];
                    open_msgs.erase(it);
                    m.opening = false;
                    REQUIRE(o->size_or_errno == static_cast<std::int64_t>(size));
                    m.open = true;
                    m.ptr = o->opened;
                    m.written.clear();
                } else if (auto* s = std::get_if<stat_blob>(&eff)) {
                    stats.push_back(s->blob);
                } else if (auto* f = std::get_if<fetch_chunk>(&eff)) {
                    REQUIRE(fetching.insert({f->blob, f->chunk}).second);  // never twice at once
                    fetches.push_back(std::move(*f));
                } else if (auto* w = std::get_if<write_chunk>(&eff)) {
                    writes.push_back(std::move(*w));
                } else if (auto* c = std::get_if<complete_read>(&eff)) {
                    const std::uint32_t msg = msg_of(c->req);
                    auto it = reads.find(msg);
                    REQUIRE(it != reads.end());
                    REQUIRE(completed.insert(msg).second);  // exactly once
                    CHECK(c->object == it->second.ptr);
                    if (!it->second.ptr) REQUIRE(c->status < 0);  // a READ of no open object fails
                    if (c->status == 0) {
                        const auto& m = objs[it->second.object];
                        REQUIRE(m.ptr == it->second.ptr);  // a closed object's READs do not succeed
                        const auto& rd = it->second;
                        for (std::uint64_t ch = rd.off / chunk; rd.off < rd.end && ch * chunk < rd.end; ++ch) {
                            CAPTURE(msg, ch);
                            CHECK(m.written.count(ch) == 1);
                        }
                    }
                }
            }
        };
        auto deliver_fetch = [&](bool may_fail) {
            const std::size_t i = pick(fetches.size());
            fetch_chunk f = std::move(fetches[i]);
            fetches.erase(fetches.begin() + static_cast<std::ptrdiff_t>(i));
            fetching.erase({f.blob, f.chunk});
            if (may_fail && chance(10)) {
                if (chance(50)) {
                    r.note_failure(f.blob, f.chunk);  // the negative cache holds it for a while
                    noted.push_back({f.blob, f.chunk});
                }
                return apply(r.on_fetched(f.blob, f.chunk, unexpected{-EIO}));
            }
            if (may_fail && chance(5)) return apply(r.on_fetched(f.blob, f.chunk, filled(f.len - 1)));  // short
            apply(r.on_fetched(f.blob, f.chunk, filled(f.len)));
        };
        auto deliver_write = [&](bool may_fail) {
            const std::size_t i = pick(writes.size());
            write_chunk w = std::move(writes[i]);
            writes.erase(writes.begin() + static_cast<std::ptrdiff_t>(i));
            const int res = may_fail && chance(10) ? -EIO : static_cast<int>(w.len);
            auto& m = objs[obj_of(w.object->key)];
            // The model's bytes land before the registry hears of them, as in the app.
            if (res >= 0 && m.ptr == w.object) m.written.insert(w.chunk);
            apply(r.on_written(w.object, w.chunk, res));
        };

        for (int step = 0; step < 300; ++step) {
            const std::uint32_t obj = static_cast<std::uint32_t>(1 + pick(4));
            auto& m = objs[obj];
            const std::size_t action = pick(100);
            if (action < 35) {
                // Now and then a READ of an object that is not open: answered all the same.
                if (!m.open && (m.opening || !chance(10))) continue;
                const std::uint64_t off = pick(size + chunk);
                const std::uint64_t len = 1 + pick(3 * chunk);
                const std::uint32_t msg = next_msg++;
                reads[msg] = model_read{obj, m.ptr, off, std::min(off + len, size)};
                apply(r.read(token(msg), key_of(obj), off, len));
            } else if (action < 60) {
                if (!fetches.empty()) deliver_fetch(true);
            } else if (action < 85) {
                if (!writes.empty()) deliver_write(true);
            } else if (action < 90) {
                if (!stats.empty()) {
                    const blob_id b = stats.back();
                    stats.pop_back();
                    apply(r.on_stat(b, size));
                }
            } else if (action < 95) {
                if (m.open) {
                    apply(r.close(key_of(obj)));
                    m.open = false;
                    m.ptr.reset();
                } else if (!m.opening) {
                    const std::uint32_t msg = next_msg++;
                    open_msgs[msg] = obj;
                    m.opening = true;
                    const char* domain = obj == 4 ? "b" : "a";
                    // Some frontends know the size (they sized the cache file): no stat then.
                    if (chance(30)) {
                        apply(r.open_sized(token(msg), key_of(obj), domain, "blob", some_fd(), size));
                    } else {
                        apply(r.open(token(msg), key_of(obj), domain, "blob", some_fd()));
                    }
                }
            } else if (action < 97) {
                if (m.open) apply(r.prefetch(key_of(obj), {}));
            } else if (action < 98) {
                if (!noted.empty()) {  // a negative-cache entry expires
                    const std::size_t i = pick(noted.size());
                    r.forget_failure(noted[i].first, noted[i].second);
                    noted.erase(noted.begin() + static_cast<std::ptrdiff_t>(i));
                }
            } else {
                apply(r.refetch("blob"));
            }
        }
        // Every result comes in, none failing: nothing may be left waiting.
        while (!stats.empty() || !fetches.empty() || !writes.empty()) {
            if (!stats.empty()) {
                const blob_id b = stats.back();
                stats.pop_back();
                apply(r.on_stat(b, size));
            } else if (!fetches.empty() && (writes.empty() || chance(50))) {
                deliver_fetch(false);
            } else {
                deliver_write(false);
            }
        }
        CHECK(open_msgs.empty());
        for (const auto& [msg, rd] : reads) {
            CAPTURE(msg);
            CHECK(completed.count(msg) == 1);
        }
        CHECK_FALSE(r.busy());
    }
}
