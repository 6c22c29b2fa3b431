// Integration tests of the HTTP fetcher: the real event_loop and net_thread against an in-process
// HTTP server on 127.0.0.1 (tests/support/http_test_server) that answers correctly or misbehaves
// on purpose; and the whole daemon (app + fake kernel) with an http source.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "daemon/app.hpp"
#include "base/log.hpp"
#include "io/event_loop.hpp"
#include "io/net_thread.hpp"
#include "fetchers/http/http_fetcher.hpp"
#include "tests/support/fake_kernel.hpp"
#include "tests/support/fetch_driver.hpp"
#include "tests/support/http_test_server.hpp"
#include "sources/kinds.hpp"

using namespace blobd;
using blobd::test::http_conn;
using blobd::test::http_request;
using blobd::test::http_server;
using blobd::test::random_bytes;
using blobd::test::response_head;
using blobd::test::serve_blob;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * 1024;

http_options quick(const std::string& url) {
    http_options o;
    o.url = url;
    o.timeout = 2000ms;
    o.retries = 3;
    o.backoff = 10ms;
    return o;
}

using client = blobd::test::fetch_driver;

// The blob path the fetcher asks for: base "/b" + name.
std::string name_of(const http_request& r) { return r.target.substr(r.target.rfind('/') + 1); }

}  // namespace

// Description: stat() by HEAD, fetch() of ranges answered with exact 206s; the bytes match, the
// Range header is exactly the requested one, and per-source counters add up.
TEST_CASE("206 range answers", "[http]") {
    const std::string data = random_bytes(3 * MiB + 12345, 1);
    std::mutex mu;
    std::vector<std::string> ranges, methods;
    http_server s([&](const http_request& r, http_conn& c) {
        {
            std::lock_guard lk(mu);
            methods.push_back(r.method);
            ranges.push_back(r.header("range").value_or(""));
        }
        if (r.target != "/b/blob") return void(c.send(response_head(404, {{"Content-Length", "0"}})));
        serve_blob(r, c, data);
    });
    client cl(quick(s.url("/b")));
    auto size = cl.stat("blob");
    REQUIRE(size);
    CHECK(*size == data.size());
    for (auto [off, len] : {std::pair<std::uint64_t, std::uint64_t>{0, MiB}, {MiB, MiB}, {3 * MiB, 12345}, {7, 1}}) {
        auto got = cl.fetch("blob", off, len);
        REQUIRE(got);
        CHECK((*got == data.substr(off, len)));
    }
    std::lock_guard lk(mu);
    CHECK(methods == std::vector<std::string>{"HEAD", "GET", "GET", "GET", "GET"});
    CHECK(ranges == std::vector<std::string>{"", "bytes=0-1048575", "bytes=1048576-2097151", "bytes=3145728-3158072",
                                             "bytes=7-7"});
    const auto& st = cl.f->stats();
    CHECK(st.stats == 1);
    CHECK(st.stat_misses == 0);
    CHECK(st.fetches == 4);
    CHECK(st.fetch_errors == 0);
    CHECK(st.bytes == 2 * MiB + 12345 + 1);
    CHECK(cl.f->describe() == s.url("/b"));
}

// Description: a server that refuses HEAD (405) is asked for byte 0 with a range GET; the size
// comes from Content-Range; an empty blob's 416 "bytes */0" gives size 0.
TEST_CASE("stat falls back to a range GET when HEAD is refused", "[http]") {
    const std::string data = random_bytes(5000, 2);
    http_server s([&](const http_request& r, http_conn& c) {
        if (r.method == "HEAD") return void(c.send(response_head(405, {{"Content-Length", "3"}})));  // no body: HEAD
        serve_blob(r, c, name_of(r) == "empty" ? std::string() : data);
    });
    client cl(quick(s.url("/")));
    auto size = cl.stat("x");
    REQUIRE(size);
    CHECK(*size == 5000);
    auto empty = cl.stat("empty");
    REQUIRE(empty);
    CHECK(*empty == 0);
    CHECK(s.requests() == 4);
    CHECK(s.connections() == 1);  // the 405's body was drained and the connection kept
}

// Description: a server that ignores Range answers 200 with the whole blob: the fetcher takes the
// slice when the body is exactly the blob; a whole body of another size than stat() saw, or
// larger than body_limit, is refused.
TEST_CASE("200 whole-body answers", "[http]") {
    std::string data = random_bytes(200 * KiB + 3, 3);
    std::mutex mu;
    http_server s([&](const http_request& r, http_conn& c) {
        std::lock_guard lk(mu);
        serve_blob(r, c, data, /*honour_range=*/false);
    });
    auto opts = quick(s.url("/blobs"));
    opts.body_limit = 256 * KiB;
    client cl(opts);
    REQUIRE(cl.stat("b"));
    auto mid = cl.fetch("b", 100 * KiB, 4 * KiB);
    REQUIRE(mid);
    CHECK((*mid == data.substr(100 * KiB, 4 * KiB)));
    auto tail = cl.fetch("b", 200 * KiB, 3);
    REQUIRE(tail);
    CHECK((*tail == data.substr(200 * KiB, 3)));
    {
        std::lock_guard lk(mu);
        data += "grown";
    }
    auto changed = cl.fetch("b", 0, 4096);
    REQUIRE_FALSE(changed);
    CHECK(changed.error() == -EIO);
    {
        std::lock_guard lk(mu);
        data = random_bytes(300 * KiB, 4);
    }
    cl.f->release(blob_ref{"d", "b"});  // forget the size: the body limit alone must refuse it
    auto too_big = cl.fetch("b", 0, 4096);
    REQUIRE_FALSE(too_big);
    CHECK(too_big.error() == -EIO);
    CHECK(cl.f->stats().fetch_errors == 2);
}

// Description: a 206 whose Content-Range is not exactly the requested range is refused with EIO
// and not retried; so is a multipart answer without Content-Range.
TEST_CASE("wrong Content-Range", "[http]") {
    const std::string data = random_bytes(64 * KiB, 5);
    http_server s([&](const http_request& r, http_conn& c) {
        if (name_of(r) == "shifted") {
            c.send(response_head(206, {{"Content-Range", "bytes 1-4096/65536"}, {"Content-Length", "4096"}}) +
                   data.substr(1, 4096));
        } else if (name_of(r) == "multipart") {
            c.send(response_head(206, {{"Content-Type", "multipart/byteranges; boundary=x"}, {"Content-Length", "4"}}) +
                   "--x-");
        } else {
            c.send(response_head(206, {{"Content-Range", "bytes 0-4095/99999"}, {"Content-Length", "4096"}}) +
                   data.substr(0, 4096));
        }
    });
    client cl(quick(s.url("")));
    CHECK(cl.fetch("shifted", 0, 4096).error() == -EIO);
    CHECK(cl.fetch("multipart", 0, 4096).error() == -EIO);
    CHECK(s.requests() == 2);  // no retries: the server would only say the same again
    // A total that contradicts stat()'s size is a changed blob.
    http_server sized([&](const http_request& r, http_conn& c) {
        if (r.method == "HEAD") return void(c.send(response_head(200, {{"Content-Length", "65536"}})));
        c.send(response_head(206, {{"Content-Range", "bytes 0-4095/99999"}, {"Content-Length", "4096"}}) +
               data.substr(0, 4096));
    });
    client c2(quick(sized.url("")));
    REQUIRE(c2.stat("x"));
    CHECK(c2.fetch("x", 0, 4096).error() == -EIO);
}

// Description: a body that ends early (connection closed before Content-Length bytes) is a
// transport failure: retried, then EIO; a Content-Length that does not match the range is refused
// at once.
TEST_CASE("short body", "[http]") {
    const std::string data = random_bytes(64 * KiB, 6);
    http_server s([&](const http_request& r, http_conn& c) {
        if (name_of(r) == "cut") {
            c.send(response_head(206, {{"Content-Range", "bytes 0-8191/65536"}, {"Content-Length", "8192"}}) +
                   data.substr(0, 5000));
            return c.close();
        }
        c.send(response_head(206, {{"Content-Range", "bytes 0-8191/65536"}, {"Content-Length", "5000"}}) +
               data.substr(0, 5000));
    });
    auto opts = quick(s.url(""));
    opts.retries = 2;
    client cl(opts);
    CHECK(cl.fetch("cut", 0, 8192).error() == -EIO);
    CHECK(s.requests() == 3);
    CHECK(cl.fetch("short-length", 0, 8192).error() == -EIO);
    CHECK(s.requests() == 4);
}

// Description: more bytes than asked for are never passed on: a Content-Length larger than the
// range is refused before the body, a close-delimited body longer than the range while reading;
// a close-delimited body of exactly the range (it fills the output, then EOF) is accepted.
TEST_CASE("long body", "[http]") {
    const std::string data = random_bytes(64 * KiB, 7);
    http_server s([&](const http_request& r, http_conn& c) {
        if (name_of(r) == "exact") {
            c.send(response_head(206, {{"Content-Range", "bytes 0-4095/65536"}, {"Connection", "close"}}) +
                   data.substr(0, 4096));
            c.close();
        } else if (name_of(r) == "length") {
            c.send(response_head(206, {{"Content-Range", "bytes 0-4095/65536"}, {"Content-Length", "4196"}}) +
                   data.substr(0, 4196));
        } else {
            c.send(response_head(206, {{"Content-Range", "bytes 0-4095/65536"}, {"Connection", "close"}}) +
                   data.substr(0, 9000));
            c.close();
        }
    });
    client cl(quick(s.url("")));
    CHECK(cl.fetch("length", 0, 4096).error() == -EIO);
    CHECK(cl.fetch("close-delimited", 0, 4096).error() == -EIO);
    auto exact = cl.fetch("exact", 0, 4096);
    REQUIRE(exact);
    CHECK((*exact == data.substr(0, 4096)));
    CHECK(s.requests() == 3);
}

// Description: a body read straight from the connection (exact 206 with a Content-Length) stops at
// that length; bytes a server sends beyond it never reach a fetch. Sent with the body, they are
// left in the connection's buffer; sent late, they wait in the idle connection's socket. Either
// way that connection is not reused (2 connections for 4 fetches) and later fetches get exactly
// their ranges.
TEST_CASE("bytes past Content-Length on a kept-alive connection", "[http]") {
    const std::string data = random_bytes(64 * KiB, 8);
    const std::string garbage = "HTTP/1.1 999 garbage\r\n\r\n" + std::string(3000, 'x');
    for (const bool late : {false, true}) {
        DYNAMIC_SECTION((late ? "sent late" : "sent with the body")) {
            std::atomic<int> n{0};
            http_server s([&](const http_request& r, http_conn& c) {
                if (n++ == 0) {
                    const std::string head =
                        response_head(206, {{"Content-Range", "bytes 0-8191/65536"}, {"Content-Length", "8192"}});
                    if (!late) {
                        c.send(head + data.substr(0, 8192) + garbage);
                    } else {
                        c.send(head + data.substr(0, 8192));
                        c.stall(100ms);  // the client has its body and keeps the connection
                        c.send(garbage);
                    }
                    return;
                }
                serve_blob(r, c, data);
            });
            auto opts = quick(s.url(""));
            opts.retries = 2;
            client cl(opts);
            auto first = cl.fetch("b", 0, 8192);
            REQUIRE(first);
            CHECK((*first == data.substr(0, 8192)));
            if (late) std::this_thread::sleep_for(200ms);  // the garbage is in the idle connection
            for (int i = 1; i < 4; ++i) {
                auto next = cl.fetch("b", static_cast<std::uint64_t>(i) * 8192, 8192);
                REQUIRE(next);
                CHECK((*next == data.substr(static_cast<std::size_t>(i) * 8192, 8192)));
            }
            CHECK(s.connections() == 2);
            CHECK(s.requests() == 4);
        }
    }
}

// Description: 5xx answers are retried with backoff until one succeeds; a server that keeps
// failing exhausts the retries (1 + retries requests); 4xx answers are not retried.
TEST_CASE("retries on 5xx, none on 4xx", "[http]") {
    const std::string data = random_bytes(32 * KiB, 8);
    std::atomic<int> flaky_calls{0};
    http_server s([&](const http_request& r, http_conn& c) {
        const auto n = name_of(r);
        if (n == "flaky" && ++flaky_calls <= 2) {
            return void(c.send(response_head(500, {{"Content-Length", "5"}}) + "oops!"));
        }
        if (n == "down") return void(c.send(response_head(503, {{"Content-Length", "0"}})));
        if (n == "secret") return void(c.send(response_head(403, {{"Content-Length", "0"}})));
        serve_blob(r, c, data);
    });
    auto opts = quick(s.url(""));
    opts.retries = 3;
    client cl(opts);
    const auto t0 = std::chrono::steady_clock::now();
    auto got = cl.fetch("flaky", 1000, 2000);
    REQUIRE(got);
    CHECK((*got == data.substr(1000, 2000)));
    CHECK(flaky_calls == 3);
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);  // 10 + 20 ms of backoff

    const int before = s.requests();
    CHECK(cl.fetch("down", 0, 100).error() == -EIO);
    CHECK(s.requests() - before == 4);
    CHECK(cl.stat("down").error() == -EIO);
    CHECK(s.requests() - before == 8);

    const int before4 = s.requests();
    CHECK(cl.fetch("secret", 0, 100).error() == -EACCES);
    CHECK(s.requests() - before4 == 1);
    CHECK(s.connections() == 1);  // error answers with small bodies keep the connection
}

// Description: 404 is -ENOENT for stat (a miss, not retried) and for fetch.
TEST_CASE("404 is ENOENT", "[http]") {
    http_server s([&](const http_request& r, http_conn& c) {
        c.send(response_head(404, {{"Content-Length", "9"}}) + (r.method == "GET" ? "not found" : ""));
    });
    client cl(quick(s.url("/b")));
    CHECK(cl.stat("nope").error() == -ENOENT);
    CHECK(cl.fetch("nope", 0, 4096).error() == -ENOENT);
    CHECK(s.requests() == 2);
    CHECK(cl.f->stats().stat_misses == 1);
    CHECK(cl.f->stats().fetch_errors == 1);
}

// Description: a server that stops answering (before the headers, or in the middle of the body)
// hits the timeout: every attempt times out, and the fetch fails with ETIMEDOUT in about
// (1 + retries) x timeout, long before the server would have answered.
TEST_CASE("stall past the timeout", "[http]") {
    const std::string data = random_bytes(64 * KiB, 9);
    http_server s([&](const http_request& r, http_conn& c) {
        if (name_of(r) == "mid-body") {
            c.send(response_head(206, {{"Content-Range", "bytes 0-65535/65536"}, {"Content-Length", "65536"}}) +
                   data.substr(0, 1000));
        }
        c.stall(10s);
        c.close();
    });
    auto opts = quick(s.url(""));
    opts.timeout = 200ms;
    opts.retries = 1;
    client cl(opts);
    for (const char* name : {"headers", "mid-body"}) {
        INFO(name);
        const int before = s.requests();
        const auto t0 = std::chrono::steady_clock::now();
        CHECK(cl.fetch(name, 0, 65536).error() == -ETIMEDOUT);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(took >= 400ms);
        CHECK(took < 5s);
        CHECK(s.requests() - before == 2);
    }
    CHECK(cl.stat("headers").error() == -ETIMEDOUT);
}

// Description: the request's deadline bounds every attempt together, whatever the timeout and
// retries say: a stalling server fails the fetch with ETIMEDOUT at the deadline after one request;
// a server answering 500 gets retries only while one can still finish in time (then EIO); a
// request waiting for a pooled connection ends at its deadline too; a size lookup likewise.
TEST_CASE("the deadline bounds all attempts", "[http]") {
    http_server s([&](const http_request& r, http_conn& c) {
        if (name_of(r) == "down") return void(c.send(response_head(500, {{"Content-Length", "0"}})));
        c.stall(10s);
        c.close();
    });
    auto opts = quick(s.url(""));
    opts.timeout = 30s;
    opts.retries = 3;
    opts.backoff = 200ms;
    opts.max_connections = 1;
    client cl(opts);
    {
        const int before = s.requests();
        const auto t0 = std::chrono::steady_clock::now();
        CHECK(cl.fetch("stall", 0, 4096, t0 + 300ms).error() == -ETIMEDOUT);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(took >= 300ms);
        CHECK(took < 1500ms);
        CHECK(s.requests() - before == 1);
    }
    {
        const int before = s.requests();
        const auto t0 = std::chrono::steady_clock::now();
        // Attempt 1 at once, attempt 2 after 200 ms; the next backoff (400 ms) would end past 500 ms.
        CHECK(cl.fetch("down", 0, 4096, t0 + 500ms).error() == -EIO);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(took >= 200ms);
        CHECK(took < 500ms);
        CHECK(s.requests() - before == 2);
    }
    {
        // One connection only: the second fetch waits in the pool behind the stalled first one.
        std::optional<result<buffer_ptr, int>> a, b;
        const auto t0 = std::chrono::steady_clock::now();
        cl.f->fetch(blob_ref{"d", "stall"}, 0, 4096, t0 + 400ms, [&](result<buffer_ptr, int> r) { a = std::move(r); });
        cl.f->fetch(blob_ref{"d", "stall2"}, 0, 4096, t0 + 200ms, [&](result<buffer_ptr, int> r) { b = std::move(r); });
        REQUIRE(cl.run_until([&] { return b.has_value(); }));
        CHECK(std::chrono::steady_clock::now() - t0 < 390ms);
        CHECK(b->error() == -ETIMEDOUT);
        REQUIRE(cl.run_until([&] { return a.has_value(); }));
        CHECK(a->error() == -ETIMEDOUT);
    }
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(cl.stat("stall", t0 + 300ms).error() == -ETIMEDOUT);
    CHECK(std::chrono::steady_clock::now() - t0 < 1500ms);
}

// Description: a connection reset in the middle of the body is retried on a new connection and
// the second attempt's bytes are used; resets on every attempt end in EIO.
TEST_CASE("connection reset mid-body", "[http]") {
    const std::string data = random_bytes(256 * KiB, 10);
    std::atomic<int> calls{0};
    http_server s([&](const http_request& r, http_conn& c) {
        if (name_of(r) == "always" || ++calls == 1) {
            c.send(response_head(206, {{"Content-Range", "bytes 0-262143/262144"}, {"Content-Length", "262144"}}) +
                   data.substr(0, 100000));
            return c.reset();
        }
        serve_blob(r, c, data);
    });
    client cl(quick(s.url("")));
    auto got = cl.fetch("once", 0, 256 * KiB);
    REQUIRE(got);
    CHECK((*got == data));
    CHECK(s.connections() == 2);
    CHECK(cl.fetch("always", 0, 256 * KiB).error() == -EIO);
}

// Description: redirects (relative Location, absolute to another server, 307/308/303) are followed
// up to 5 hops, each hop with the method and Range of the original request; a sixth is refused.
TEST_CASE("redirects", "[http]") {
    const std::string data = random_bytes(100 * KiB, 11);
    std::atomic<int> other_requests{0};
    http_server other([&](const http_request& r, http_conn& c) {
        ++other_requests;
        if (r.target.starts_with("/storage/")) return serve_blob(r, c, data);
        c.send(response_head(404, {{"Content-Length", "0"}}));
    });
    std::mutex mu;
    std::vector<std::string> seen;
    http_server s([&](const http_request& r, http_conn& c) {
        {
            std::lock_guard lk(mu);
            seen.push_back(r.method + " " + r.target + " " + r.header("range").value_or("-"));
        }
        const auto& t = r.target;
        if (t == "/v2/blob") return void(c.send(response_head(302, {{"Location", "hop1?x=1"}, {"Content-Length", "0"}})));
        if (t == "/v2/hop1?x=1") {
            return void(c.send(response_head(307, {{"Location", other.url("/storage/blob?sig=secret")},
                                                   {"Content-Length", "0"}})));
        }
        if (t.starts_with("/loop/")) {
            const int n = std::stoi(t.substr(6));
            return void(c.send(response_head(308, {{"Location", "/loop/" + std::to_string(n + 1)}, {"Content-Length", "0"}})));
        }
        c.send(response_head(404, {{"Content-Length", "0"}}));
    });
    client cl(quick(s.url("/v2")));
    auto size = cl.stat("blob");
    REQUIRE(size);
    CHECK(*size == data.size());
    auto got = cl.fetch("blob", 4096, 8192);
    REQUIRE(got);
    CHECK((*got == data.substr(4096, 8192)));
    {
        std::lock_guard lk(mu);
        CHECK(seen == std::vector<std::string>{"HEAD /v2/blob -", "HEAD /v2/hop1?x=1 -", "GET /v2/blob bytes=4096-12287",
                                               "GET /v2/hop1?x=1 bytes=4096-12287"});
    }
    CHECK(other_requests == 2);

    client loop_client(quick(s.url("/loop")));
    const int before = s.requests();
    CHECK(loop_client.fetch("0", 0, 10).error() == -EIO);
    CHECK(s.requests() - before == 6);  // the original request and 5 redirects
}

// Description: sequential requests reuse one keep-alive connection; concurrent ones use at most
// max_connections connections in parallel, and the rest wait for a free one.
TEST_CASE("keep-alive reuse and the connection limit", "[http]") {
    const std::string data = random_bytes(MiB, 12);
    std::atomic<int> active{0}, peak{0};
    http_server s([&](const http_request& r, http_conn& c) {
        const int now = ++active;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        if (r.method == "GET") c.stall(30ms);  // keep requests overlapping
        --active;
        serve_blob(r, c, data);
    });
    auto opts = quick(s.url(""));
    opts.max_connections = 3;
    client cl(opts);
    REQUIRE(cl.stat("b"));
    for (int i = 0; i < 10; ++i) REQUIRE(cl.fetch("b", static_cast<std::uint64_t>(i) * 4096, 4096));
    CHECK(s.connections() == 1);
    CHECK(cl.f->connections_opened() == 1);
    CHECK(s.requests() == 11);

    // 24 concurrent fetches: at most 3 connections and at most 3 requests in flight at once.
    std::map<int, std::string> got;
    for (int i = 0; i < 24; ++i) {
        cl.f->fetch(blob_ref{"d", "b"}, static_cast<std::uint64_t>(i) * 32 * KiB, 32 * KiB, no_deadline,
                    [&, i](result<buffer_ptr, int> r) {
                        REQUIRE(r);
                        got[i] = std::string(reinterpret_cast<const char*>((*r)->data()), (*r)->filled);
                    });
    }
    REQUIRE(cl.run_until([&] { return got.size() == 24; }));
    for (const auto& [i, bytes] : got) CHECK((bytes == data.substr(static_cast<std::size_t>(i) * 32 * KiB, 32 * KiB)));
    CHECK(peak <= 3);
    CHECK(peak >= 2);
    CHECK(s.connections() <= 3);
    CHECK(cl.f->connections_opened() == static_cast<std::uint64_t>(s.connections()));
}

// Description: a kept-alive connection the server closed while idle fails on reuse before any
// answer; the fetcher retries at once on a fresh connection without spending a retry.
TEST_CASE("stale keep-alive connection", "[http]") {
    const std::string data = random_bytes(64 * KiB, 13);
    http_server s([&](const http_request& r, http_conn& c) {
        serve_blob(r, c, data);
        c.close();  // without saying "Connection: close"
    });
    auto opts = quick(s.url(""));
    opts.retries = 0;
    client cl(opts);
    for (int i = 0; i < 5; ++i) {
        std::this_thread::sleep_for(20ms);  // let the FIN arrive
        auto got = cl.fetch("b", 0, 4096);
        REQUIRE(got);
        CHECK((*got == data.substr(0, 4096)));
    }
    CHECK(s.connections() == 5);
}

// Description: the base URL's query string is kept after the percent-encoded blob name, and
// never shows in describe().
TEST_CASE("blob URL: encoding and query", "[http]") {
    std::mutex mu;
    std::string target, host;
    http_server s([&](const http_request& r, http_conn& c) {
        {
            std::lock_guard lk(mu);
            target = r.target;
            host = r.header("host").value_or("");
        }
        serve_blob(r, c, "hello");
    });
    client cl(quick(s.url("/base/?token=SECRET")));
    REQUIRE(cl.stat("a b+c"));
    std::lock_guard lk(mu);
    CHECK(target == "/base/a%20b%2Bc?token=SECRET");
    CHECK(host == "127.0.0.1:" + std::to_string(s.port()));
    CHECK(cl.f->describe() == s.url("/base/"));
}

// Description: logs show scheme://host/path only: neither the base URL's query string nor a
// redirect target's (signed URLs carry tokens there) appears, at any level.
TEST_CASE("logs never show query strings", "[http]") {
    http_server other([&](const http_request&, http_conn& c) {
        c.send(response_head(403, {{"Content-Length", "0"}}));
    });
    http_server s([&](const http_request& r, http_conn& c) {
        if (r.target.starts_with("/b/redirected")) {
            return void(c.send(response_head(302, {{"Location", other.url("/signed/x?sig=REDIRSECRET&exp=1")},
                                                   {"Content-Length", "0"}})));
        }
        c.send(response_head(500, {{"Content-Length", "0"}}));
    });
    // Capture stderr (the log) around the requests, with every level enabled.
    char path[] = "/tmp/blobd-http-log-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    const int saved = ::dup(2);
    ::dup2(fd, 2);
    const auto level = log::max_level();
    log::set_max_level(log::level::debug);
    {
        auto o = quick(s.url("/b?token=BASESECRET"));
        o.retries = 1;
        client cl(o);
        CHECK(cl.fetch("failing", 0, 100).error() == -EIO);
        CHECK(cl.stat("redirected").error() == -EACCES);
    }
    log::set_max_level(level);
    ::dup2(saved, 2);
    ::close(saved);
    std::string logged(static_cast<std::size_t>(::lseek(fd, 0, SEEK_END)), '\0');
    REQUIRE(::pread(fd, logged.data(), logged.size(), 0) == static_cast<ssize_t>(logged.size()));
    ::close(fd);
    ::unlink(path);
    INFO(logged);
    CHECK(logged.find("/b/failing") != std::string::npos);  // the log was captured
    CHECK(logged.find("/signed/x") != std::string::npos);
    CHECK(logged.find("SECRET") == std::string::npos);
    CHECK(logged.find("token=") == std::string::npos);
}

// Description: the net thread runs posted work and run_sync() waits for it; after stop() (which
// is idempotent) run_sync() runs the function on the caller's thread.
TEST_CASE("net_thread: run_sync and stop", "[http]") {
    net_thread net;
    CHECK(net.running());
    bool on_net = false;
    net.run_sync([&] { on_net = net.on_net_thread(); });
    CHECK(on_net);
    CHECK_FALSE(net.on_net_thread());
    net.stop();
    net.stop();
    CHECK_FALSE(net.running());
    bool ran = false;
    net.run_sync([&] { ran = !net.on_net_thread(); });
    CHECK(ran);
}

// Description: nothing listening: connect is refused, retried, and reported as ECONNREFUSED.
TEST_CASE("connection refused", "[http]") {
    std::string url;
    {
        http_server gone([](const http_request&, http_conn&) {});
        url = gone.url("/b");
    }
    auto opts = quick(url);
    opts.retries = 1;
    client cl(opts);
    CHECK(cl.stat("x").error() == -ECONNREFUSED);
}

// Description: destroying the fetcher with requests in flight cancels them: their callbacks never
// run (not even from results already posted), and the net thread is left with nothing to do.
TEST_CASE("destroying the fetcher cancels in-flight requests", "[http]") {
    http_server s([&](const http_request&, http_conn& c) { c.stall(10s); });
    event_loop loop;
    net_thread net;
    int called = 0;
    {
        http_fetcher f(loop, net, quick(s.url("")));
        for (int i = 0; i < 6; ++i) {
            f.fetch(blob_ref{"d", "b"}, 0, 4096, no_deadline, [&](result<buffer_ptr, int>) { ++called; });
        }
        f.stat(blob_ref{"d", "b"}, no_deadline, [&](result<std::uint64_t, int>) { ++called; });
        const auto end = std::chrono::steady_clock::now() + 5s;
        while (s.requests() < 4 && std::chrono::steady_clock::now() < end) loop.run_once(10ms);
        CHECK(s.requests() == 4);  // max_connections; the rest wait in the pool's queue
    }
    for (int i = 0; i < 20; ++i) loop.run_once(5ms);
    CHECK(called == 0);
    net.stop();
}

// Description: the app with an http source: the kernel's OPEN gets the size from HEAD, READs are
// served by range GETs, and the bytes in the cache files are the blob's; a missing blob fails its
// OPEN with ENOENT. The app owns (and stops) the net thread.
TEST_CASE("daemon with an http source", "[http][daemon]") {
    std::map<std::string, std::string> blobs{{"img1", random_bytes(3 * MiB + 12345, 20)},
                                             {"img2", random_bytes(300 * KiB, 21)}};
    std::atomic<int> gets{0};
    http_server s([&](const http_request& r, http_conn& c) {
        auto it = blobs.find(name_of(r));
        if (!r.target.starts_with("/blobs/") || it == blobs.end()) {
            return void(c.send(response_head(404, {{"Content-Length", "0"}})));
        }
        if (r.method == "GET") ++gets;
        serve_blob(r, c, it->second);
    });
    test::fake_kernel k;
    event_loop loop;
    cfg::config conf;
    conf.cache_dir = "/unused";
    conf.store.use = cfg::store_use::off;  // the fetcher's own bytes are counted here
    conf.chunk_size = MiB;
    conf.control_socket = "";
    sources::http_settings src;
    src.url = s.url("/blobs");
    conf.sources.push_back(sources::source_of(src));
    auto daemon = std::make_unique<app>(loop, k.dev(), std::make_shared<const cfg::config>(conf));
    REQUIRE(daemon->start());
    auto run_until = [&](auto pred) {
        const auto end = std::chrono::steady_clock::now() + 15s;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > end) return false;
            loop.run_once(10ms);
        }
        return true;
    };

    auto obj = k.open("erofs,d1", "img1");
    REQUIRE(run_until([&] { return k.copen_result(obj).has_value(); }));
    REQUIRE(*k.copen_result(obj) == static_cast<std::int64_t>(blobs.at("img1").size()));
    std::vector<std::uint32_t> reads;
    for (std::uint64_t off : {std::uint64_t{0}, 12 * KiB, MiB + 5, 2 * MiB, 3 * MiB}) reads.push_back(k.read(obj, off, 4096));
    REQUIRE(run_until([&] { return k.completed(obj) == 5; }));
    for (auto id : reads) CHECK(k.completion_count(id) == 1);
    CHECK((k.cache_bytes(obj, 0, 3 * MiB + 12345) == blobs.at("img1")));
    CHECK(gets == 4);  // one per chunk

    auto small = k.open("erofs,d1", "img2");
    REQUIRE(run_until([&] { return k.copen_result(small).has_value(); }));
    auto r2 = k.read(small, 0, 300 * KiB);
    REQUIRE(run_until([&] { return k.read_done(r2); }));
    CHECK((k.cache_bytes(small, 0, 300 * KiB) == blobs.at("img2")));

    auto missing = k.open("erofs,d1", "absent");
    REQUIRE(run_until([&] { return k.copen_result(missing).has_value(); }));
    CHECK(*k.copen_result(missing) == -ENOENT);

    auto stats = nlohmann::json::parse(daemon->stats_json());
    REQUIRE(stats["sources"].size() == 1);
    CHECK(stats["sources"][0]["source"] == s.url("/blobs"));
    CHECK(stats["sources"][0]["bytes"] == 3 * MiB + 12345 + 300 * KiB);
    CHECK(k.bad_completions() == 0);

    daemon->request_stop(200ms);
    REQUIRE(run_until([&] { return daemon->finished(); }));
    daemon.reset();  // stops the net thread before the loop goes
}
