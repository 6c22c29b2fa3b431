// The HTTP client's fault matrix, in the manner of Beast's own tests with test::fail_count: a
// request runs with http_options::faults set to a fault_counter that fails its n-th network
// operation (resolve, connect, TLS handshake, write, header read, each body read), for n = 1, 2,
// 3, ... until the request no longer reaches the n-th operation. Every run must end in exactly one
// callback: the exact answer, or one error of the kind injected; nothing may stay pending (the
// io_context runs dry), no exchange or connection may outlive the request, and no run may take
// anywhere near a real timeout. Each scenario runs with every error kind (cancellation, reset,
// the peer closing, a timeout, and the request's deadline passing while the operation is in
// flight) and three client settings: no retries (the fault surfaces unless the client may recover
// by itself: see `absorbed`), one retry (always recovered), and Beast's sticky failures (the n-th
// operation and every later one fail) with two retries. One more loop shuts the client down
// while its n-th operation is in flight: no callback, nothing left.
//
// Scenarios: range GETs (206 read raw, 200 whole body through the parser), redirects within and
// across origins, stat by HEAD and by the range-GET probe, HTTPS (through tests/support/tls_proxy)
// and a redirect from http to https, and OCI bearer-token flows through the oci_fetcher, with and
// without a redirect to blob storage. See docs/http.md, "Fault matrix".
#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/log.hpp"
#include "fetchers/http/http_client.hpp"
#include "fetchers/oci/oci_fetcher.hpp"
#include "tests/support/fetch_driver.hpp"
#include "tests/support/http_test_server.hpp"
#include "tests/support/tls_proxy.hpp"

using namespace blobd;
using blobd::test::http_conn;
using blobd::test::http_request;
using blobd::test::http_server;
using blobd::test::random_bytes;
using blobd::test::response_head;
using namespace std::chrono_literals;
using fc = http::fault_counter;

namespace {

constexpr std::uint64_t KiB = 1024;
constexpr unsigned max_ops = 400;  // a run that counts more has run away

const char* op_name(fc::op o) {
    switch (o) {
    case fc::op::resolve: return "resolve";
    case fc::op::connect: return "connect";
    case fc::op::handshake: return "handshake";
    case fc::op::write: return "write";
    case fc::op::read_header: return "read_header";
    case fc::op::read_body: return "read_body";
    case fc::op::drain_body: return "drain_body";
    }
    return "?";
}

const char* kind_name(fc::error e) {
    switch (e) {
    case fc::error::aborted: return "aborted";
    case fc::error::reset: return "reset";
    case fc::error::eof: return "eof";
    case fc::error::timeout: return "timeout";
    case fc::error::deadline: return "deadline";
    }
    return "?";
}

constexpr fc::error kinds[] = {fc::error::aborted, fc::error::reset, fc::error::eof, fc::error::timeout,
                               fc::error::deadline};

std::string describe(const std::vector<fc::record>& trace) {
    std::string s;
    for (const auto& r : trace) {
        if (!s.empty()) s += ' ';
        s += op_name(r.what);
        if (r.reused) s += "(reused)";
        if (r.failed) s += "[FAILED]";
    }
    return s;
}

// Whether the client gets over a fault in this operation by itself, without using a retry
// (docs/http.md): a failed drain of an unused body (a redirect's, a 401's, a probe's) only costs
// the connection; a kept-alive connection that fails before any answer arrived (the server closed
// it while idle) is replaced once at once, unless the failure was a timeout.
bool absorbed(const fc::record& r, fc::error kind) {
    if (r.what == fc::op::drain_body) return true;
    return r.reused && kind != fc::error::timeout && (r.what == fc::op::write || r.what == fc::op::read_header);
}

int expected_errno(fc::error kind) {
    return kind == fc::error::timeout || kind == fc::error::deadline ? -ETIMEDOUT : -EIO;
}

struct mode {
    const char* name;
    unsigned retries;
    bool sticky;
    bool deadline;  // give the request a (generous) deadline: its timer must not keep anything alive
};
constexpr mode modes[] = {
    {"no retries", 0, false, false},
    {"one retry", 1, false, true},
    {"sticky, two retries", 2, true, true},
};

// What became of one request of a run.
struct answer {
    int callbacks = 0;
    int err = 0;
    bool exact = false;  // success, with exactly the expected answer
};

struct run_result {
    std::vector<answer> answers;  // one per request
    bool ran_dry = true;             // nothing was pending any more after the callback
    long exchanges_after = -1;       // live exchanges once the request was done (client still up)
    long exchanges_end = -1, connections_end = -1;  // once the client was gone
    std::chrono::milliseconds took{0};
};

// What every run must satisfy, and whether it succeeded as the fault and the mode say it must.
// Returns how many requests failed.
int check_run(const run_result& r, const fc& f, fc::error kind, const mode& m) {
    const auto trace = f.trace();
    INFO("trace: " << describe(trace));
    std::string answers;
    for (const auto& a : r.answers) {
        answers += fmt::format("[callbacks {}, err {}, exact {}] ", a.callbacks, a.err, a.exact);
    }
    INFO("answers " << answers << "took " << r.took.count() << " ms");
    REQUIRE(trace.size() <= max_ops);
    REQUIRE(!r.answers.empty());
    for (const auto& a : r.answers) REQUIRE(a.callbacks == 1);
    REQUIRE(r.ran_dry);
    REQUIRE(r.exchanges_after == 0);
    REQUIRE(r.exchanges_end == 0);
    REQUIRE(r.connections_end == 0);
    REQUIRE(r.took < 3s);  // the step timeout is 10 s: no run waited for a real timer
    int failed = 0;
    for (const auto& a : r.answers) {
        if (a.err == 0) {
            REQUIRE(a.exact);
        } else {
            REQUIRE(a.err == expected_errno(kind));
            ++failed;
        }
    }
    if (!f.fired()) {  // a clean run
        REQUIRE(failed == 0);
        return 0;
    }
    if (kind == fc::error::deadline) return failed;  // it may lose the race (see run_matrix)
    bool recoverable = true;
    for (const auto& rec : trace) {
        if (rec.failed && !absorbed(rec, kind)) recoverable = false;
    }
    if (recoverable || (!m.sticky && m.retries > 0)) {
        REQUIRE(failed == 0);
    } else {
        REQUIRE(failed > 0);  // the request the fault hit fails with it; others may still succeed
    }
    return failed;
}

// What the matrix of one scenario found: the operations of a clean run.
struct matrix_summary {
    std::vector<fc::record> clean_trace;
    unsigned runs = 0;
};

// Runs the whole matrix for one scenario: `run` makes one request with the given counter and mode.
matrix_summary run_matrix(const std::string& scenario, unsigned min_ops, const std::set<fc::op>& required,
                          const std::function<run_result(std::shared_ptr<fc>, const mode&)>& run) {
    matrix_summary out;
    std::optional<std::uint64_t> clean_at;
    const auto t0 = std::chrono::steady_clock::now();
    for (fc::error kind : kinds) {
        int deadline_failures = 0;
        for (const mode& m : modes) {
            for (std::uint64_t n = 1;; ++n) {
                INFO(scenario << ": " << kind_name(kind) << ", " << m.name << ", fault at operation " << n);
                REQUIRE(n <= max_ops);
                auto f = std::make_shared<fc>(n, kind, m.sticky);
                const run_result r = run(f, m);
                ++out.runs;
                const int failed = check_run(r, *f, kind, m);
                if (kind == fc::error::deadline) deadline_failures += failed;
                if (!f->fired()) {  // the request is done before its n-th operation: all covered
                    REQUIRE(n > min_ops);  // not vacuous: every step of the request was failed once
                    if (!clean_at) {
                        clean_at = n;
                        out.clean_trace = f->trace();
                    }
                    break;
                }
            }
        }
        // The deadline's timer may lose the race against an operation that completes at once
        // (data already buffered), but not every time.
        if (kind == fc::error::deadline) CHECK(deadline_failures > 0);
    }
    INFO(scenario << ": clean run " << describe(out.clean_trace));
    for (fc::op o : required) {
        bool seen = false;
        for (const auto& rec : out.clean_trace) seen = seen || rec.what == o;
        CHECK(seen);
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    std::printf("fault matrix: %-34s %2zu operations (clean at n=%zu), %3u runs, %5lld ms: %s\n", scenario.c_str(),
                out.clean_trace.size(), out.clean_trace.size() + 1, out.runs, static_cast<long long>(ms.count()),
                describe(out.clean_trace).c_str());
    std::fflush(stdout);
    return out;
}

// ---- servers ---------------------------------------------------------------------------------

// Sends `bytes` in pieces, 1 ms apart: the head with the first 1000 bytes of the body, then 24 KiB
// at a time, so that a body usually takes more than one read (how many depends on timing; the
// matrix does not rely on it).
void send_in_pieces(http_conn& c, const std::string& bytes, std::size_t head_size) {
    const std::size_t first = std::min(bytes.size(), head_size + 1000);
    if (!c.send(std::string_view(bytes).substr(0, first))) return;
    std::size_t at = first;
    while (at < bytes.size()) {
        c.stall(1ms);
        const std::size_t n = std::min<std::size_t>(bytes.size() - at, 24 * KiB);
        if (!c.send(std::string_view(bytes).substr(at, n))) return;
        at += n;
    }
}

// A well-behaved answer to GET or HEAD for `data` (206 for one Range "bytes=a-b", else 200), sent
// in pieces.
void serve(const http_request& r, http_conn& c, const std::string& data, bool honour_range = true) {
    const bool head = r.method == "HEAD";
    std::uint64_t first = 0, last = data.size() - 1;
    const auto range = r.header("range");
    const bool partial = range && honour_range;
    if (partial) {
        const auto dash = range->find('-');
        first = std::stoull(range->substr(6, dash - 6));
        last = std::stoull(range->substr(dash + 1));
    }
    const std::string body = data.substr(first, last - first + 1);
    std::string h = partial ? response_head(206, {{"Content-Range", "bytes " + std::to_string(first) + "-" +
                                                                         std::to_string(last) + "/" +
                                                                         std::to_string(data.size())},
                                                  {"Content-Length", std::to_string(body.size())}})
                            : response_head(200, {{"Content-Length", std::to_string(data.size())}});
    const std::size_t head_size = h.size();
    if (!head) h += body;
    send_in_pieces(c, h, head_size);
}

struct origins {
    const std::string data = random_bytes(64 * KiB + 17, 12);
    // The other origin a redirect leads to.
    http_server storage{[this](const http_request& r, http_conn& c) {
        if (r.target != "/store/blob") return void(c.send(response_head(404, {{"Content-Length", "0"}})));
        serve(r, c, data);
    }};
    http_server web{[this](const http_request& r, http_conn& c) { handle(r, c); }};
    blobd::test::tls_proxy tls{web.port()};

    void handle(const http_request& r, http_conn& c) {
        if (r.target == "/blob") return serve(r, c, data);
        if (r.target == "/whole") return serve(r, c, data, /*honour_range=*/false);
        if (r.target == "/probe") {
            if (r.method == "HEAD") return void(c.send(response_head(405, {{"Content-Length", "3"}})));
            return serve(r, c, data);  // the 206 for byte 0: its one byte is drained
        }
        if (r.target == "/r1") {  // same origin, with a body to drain
            return void(c.send(response_head(302, {{"Location", "/r2"}, {"Content-Length", "6"}}) + "moved\n"));
        }
        if (r.target == "/r2") {
            return void(c.send(response_head(302, {{"Location", storage.url("/store/blob")}, {"Content-Length", "0"}})));
        }
        if (r.target == "/up") {
            return void(c.send(response_head(302, {{"Location", tls.url("/blob")}, {"Content-Length", "0"}})));
        }
        c.send(response_head(404, {{"Content-Length", "0"}}));
    }
};

// ---- the client on an io_context of the test's own thread -------------------------------------

struct client_request {
    http::request req;
    std::function<bool(const http::response&)> exact;
};

struct client_scenario {
    std::string name;
    http_options opts;
    std::vector<client_request> reqs;  // started together
};

http_options quick(const std::string& ca_file = "") {
    http_options o;
    o.timeout = 10s;  // never reached: a run that took anywhere near it fails
    o.backoff = 1ms;
    o.ca_file = ca_file;
    return o;
}

http::url url(const std::string& text) { return *http::parse_url(text); }

// One request on a fresh client. `shutdown_at`: shut the client down while operation n is in flight.
run_result run_client(const client_scenario& sc, const std::shared_ptr<fc>& f, const mode& m,
                      std::uint64_t shutdown_at = 0) {
    run_result out;
    boost::asio::io_context ioc;
    http_options o = sc.opts;
    o.retries = m.retries;
    o.faults = f;
    auto c = std::make_unique<http_client>(ioc, o, sc.name);
    if (shutdown_at) {
        f->observe([&](std::uint64_t n, fc::op) {
            if (n == shutdown_at) boost::asio::post(ioc, [&] { c->shutdown(); });
        });
    }
    out.answers.resize(sc.reqs.size());
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < sc.reqs.size(); ++i) {
        http::request req = sc.reqs[i].req;
        if (m.deadline || f->kind() == fc::error::deadline) req.deadline = t0 + 30s;
        c->start(std::move(req), [&, i](http::response r) {
            answer& a = out.answers[i];
            ++a.callbacks;
            a.err = r.err;
            a.exact = r.err == 0 && sc.reqs[i].exact(r);
        });
    }
    ioc.run_for(10s);  // returns when nothing is left to do: no operation, no timer
    out.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    out.ran_dry = ioc.stopped();
    out.exchanges_after = f->live_exchanges();
    c->shutdown();
    c.reset();
    ioc.restart();
    ioc.run_for(2s);
    f->observe(nullptr);
    out.exchanges_end = f->live_exchanges();
    out.connections_end = f->live_connections();
    return out;
}

std::vector<client_scenario> client_scenarios(const origins& o) {
    std::vector<client_scenario> v;
    const std::string& data = o.data;
    // opts.url as a fetcher would set it: a plain-http client makes its TLS context only when a
    // redirect takes it to https.
    auto range = [&](const std::string& u, std::uint64_t off, std::uint64_t len) {
        client_request c;
        c.req.what = http::request::kind::fetch;
        c.req.target = url(u);
        c.req.off = off;
        c.req.len = len;
        c.exact = [&data, off, len](const http::response& r) {
            return r.data && r.data->filled == len &&
                   std::string(reinterpret_cast<const char*>(r.data->data()), len) == data.substr(off, len);
        };
        return c;
    };
    auto fetch = [&](std::string name, std::string u, std::uint64_t off, std::uint64_t len, http_options opts) {
        opts.url = u;
        return client_scenario{std::move(name), std::move(opts), {range(u, off, len)}};
    };
    auto stat = [&](std::string name, std::string u, http_options opts) {
        opts.url = u;
        client_request c;
        c.req.what = http::request::kind::stat;
        c.req.target = url(u);
        c.exact = [&data](const http::response& r) { return r.size == data.size(); };
        return client_scenario{std::move(name), std::move(opts), {std::move(c)}};
    };
    v.push_back(fetch("range GET, 206 (raw body)", o.web.url("/blob"), 4096, 40000, quick()));
    v.push_back(fetch("range GET, 200 (whole body)", o.web.url("/whole"), 1000, 3000, quick()));
    v.push_back(fetch("redirects, same then other origin", o.web.url("/r1"), 0, 50000, quick()));
    // The second request waits in the pool for the first one's connection (or a new one, when
    // the first one's failed).
    auto one_connection = quick();
    one_connection.url = o.web.url("/blob");
    one_connection.max_connections = 1;
    v.push_back({"two range GETs, one connection", one_connection,
                 {range(o.web.url("/blob"), 0, 20000), range(o.web.url("/blob"), 30000, 20000)}});
    v.push_back(stat("stat, HEAD", o.web.url("/blob"), quick()));
    v.push_back(stat("stat, HEAD 405 then probe", o.web.url("/probe"), quick()));
    v.push_back(fetch("https range GET, 206", o.tls.url("/blob"), 100, 30000, quick(o.tls.ca_file())));
    v.push_back(stat("https stat, HEAD", o.tls.url("/blob"), quick(o.tls.ca_file())));
    v.push_back(fetch("redirect, http to https", o.web.url("/up"), 7, 9000, quick(o.tls.ca_file())));
    return v;
}

// The operations each client scenario must count (its steps), and which kinds must show up.
struct expectation {
    unsigned min_ops;
    std::set<fc::op> required;
};
const std::map<std::string, expectation> client_expectations = {
    {"range GET, 206 (raw body)", {4, {fc::op::resolve, fc::op::connect, fc::op::write, fc::op::read_header}}},
    {"range GET, 200 (whole body)", {5, {fc::op::read_header, fc::op::read_body}}},
    {"redirects, same then other origin", {11, {fc::op::drain_body, fc::op::read_header}}},
    {"two range GETs, one connection", {6, {fc::op::read_header}}},
    {"stat, HEAD", {4, {fc::op::read_header}}},
    {"stat, HEAD 405 then probe", {7, {fc::op::drain_body}}},
    {"https range GET, 206", {5, {fc::op::handshake}}},
    {"https stat, HEAD", {5, {fc::op::handshake}}},
    {"redirect, http to https", {9, {fc::op::handshake}}},
};

// ---- OCI: a registry with bearer tokens, and blob storage ------------------------------------

const std::string repo = "library/app";
const std::string hex(64, 'e');

struct registry {
    const std::string data = random_bytes(48 * KiB + 5, 13);
    std::atomic<bool> redirect{false};  // blobs answer 307 to storage
    http_server storage{[this](const http_request& r, http_conn& c) {
        if (!r.target.starts_with("/blobs/" + hex + "?sig=")) return void(c.send(response_head(404, {{"Content-Length", "0"}})));
        serve(r, c, data);
    }};
    http_server server{[this](const http_request& r, http_conn& c) { handle(r, c); }};

    void handle(const http_request& r, http_conn& c) {
        if (r.target.starts_with("/token?")) {
            const std::string body = nlohmann::json{{"token", "tok-1"}, {"expires_in", 300}}.dump();
            return void(c.send(response_head(200, {{"Content-Type", "application/json"},
                                                   {"Content-Length", std::to_string(body.size())}}) + body));
        }
        if (r.target != "/v2/" + repo + "/blobs/sha256:" + hex) {
            return void(c.send(response_head(404, {{"Content-Length", "0"}})));
        }
        if (r.header("authorization") != "Bearer tok-1") {
            const std::string json = R"({"errors":[{"code":"UNAUTHORIZED"}]})";
            const std::string body = r.method == "HEAD" ? "" : json;  // HEAD: the length, no body
            const std::string challenge = "Bearer realm=\"" + server.url("/token") +
                                          "\",service=\"fake\",scope=\"repository:" + repo + ":pull\"";
            return void(c.send(response_head(401, {{"WWW-Authenticate", challenge},
                                                   {"Content-Length", std::to_string(json.size())}}) + body));
        }
        if (redirect) {
            return void(c.send(response_head(307, {{"Location", storage.url("/blobs/" + hex + "?sig=S")},
                                                   {"Content-Length", "0"}})));
        }
        serve(r, c, data);
    }
};

// One OCI operation (stat, or fetch of [off, off+len)) on a fresh oci_fetcher, loop and net thread.
run_result run_oci(const registry& reg, bool is_fetch, std::uint64_t off, std::uint64_t len,
                   const std::shared_ptr<fc>& f, const mode& m) {
    oci_options o;
    o.registry = reg.server.url();
    o.repository = repo;
    o.http = quick();
    // The oci_fetcher leaves http.url empty, so its client makes the TLS context (44 ms with the
    // system store) at construction; with the plain-http registry's URL here it does not, which
    // keeps each run of the matrix at a few milliseconds. Nothing else reads it.
    o.http.url = reg.server.url();
    o.http.retries = m.retries;
    o.http.faults = f;
    run_result out;
    out.answers.resize(1);
    answer& a = out.answers[0];
    const auto t0 = std::chrono::steady_clock::now();
    {
        blobd::test::oci_driver d(o);
        const deadline due =
            m.deadline || f->kind() == fc::error::deadline ? std::chrono::steady_clock::now() + 30s : no_deadline;
        if (is_fetch) {
            d.f->fetch(blob_ref{"d", "sha256:" + hex}, off, len, due, [&](result<buffer_ptr, int> r) {
                ++a.callbacks;
                a.err = r ? 0 : r.error();
                a.exact = r && (*r)->filled == len &&
                            std::string(reinterpret_cast<const char*>((*r)->data()), len) == reg.data.substr(off, len);
            });
        } else {
            d.f->stat(blob_ref{"d", "sha256:" + hex}, due, [&](result<std::uint64_t, int> r) {
                ++a.callbacks;
                a.err = r ? 0 : r.error();
                a.exact = r && *r == reg.data.size();
            });
        }
        d.run_until([&] { return a.callbacks > 0; }, 10s);
        out.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
        // The exchanges end on the net thread soon after their last callback.
        out.ran_dry = d.run_until([&] { return f->live_exchanges() == 0; }, 2s);
        for (int i = 0; i < 3; ++i) d.loop.run_once(1ms);  // a second callback would come now
        out.exchanges_after = f->live_exchanges();
    }
    out.exchanges_end = f->live_exchanges();
    out.connections_end = f->live_connections();
    return out;
}

// The "system" CA store of OpenSSL as the clients of this process see it: just the TLS proxy's
// certificate. Loading the real one costs 44 to 140 ms per client, and every run has a new
// client; verification stays on all the same (and ca_file names the same certificate).
struct trust_only {
    explicit trust_only(const std::string& pem) {
        ::setenv("SSL_CERT_FILE", pem.c_str(), 1);
        ::setenv("SSL_CERT_DIR", "/nonexistent/blobd-faults", 1);
    }
    ~trust_only() {
        ::unsetenv("SSL_CERT_FILE");
        ::unsetenv("SSL_CERT_DIR");
    }
};

// Thousands of failed requests: errors only (and those are rate-limited).
struct quiet_logs {
    log::level before = log::max_level();
    quiet_logs() { log::set_max_level(log::level::err); }
    ~quiet_logs() { log::set_max_level(before); }
};

}  // namespace

// Description: every client scenario through the whole matrix (see the top of this file).
TEST_CASE("fault matrix: the HTTP client", "[http][faults]") {
    quiet_logs quiet;
    origins o;
    trust_only trust(o.tls.ca_file());
    for (const auto& sc : client_scenarios(o)) {
        const auto& e = client_expectations.at(sc.name);
        run_matrix(sc.name, e.min_ops, e.required,
                   [&](std::shared_ptr<fc> f, const mode& m) { return run_client(sc, f, m); });
    }
}

// Description: the client shut down while its n-th operation is in flight, for every n: no
// callback (the contract after shutdown), nothing pending, no exchange or connection left.
TEST_CASE("fault matrix: shutdown in flight", "[http][faults]") {
    quiet_logs quiet;
    origins o;
    trust_only trust(o.tls.ca_file());
    for (const auto& sc : client_scenarios(o)) {
        const auto& e = client_expectations.at(sc.name);
        std::uint64_t n = 1;
        for (;; ++n) {
            INFO(sc.name << ": shutdown during operation " << n);
            REQUIRE(n <= max_ops);
            auto f = std::make_shared<fc>(0);
            const run_result r = run_client(sc, f, modes[0], n);
            INFO("trace: " << describe(f->trace()));
            REQUIRE(r.ran_dry);
            REQUIRE(r.exchanges_after == 0);
            REQUIRE(r.exchanges_end == 0);
            REQUIRE(r.connections_end == 0);
            REQUIRE(r.took < 3s);
            int answered = 0;
            for (const auto& a : r.answers) {
                REQUIRE(a.callbacks <= 1);
                if (a.callbacks == 1) REQUIRE(a.exact);  // done before the shutdown
                answered += a.callbacks;
            }
            if (f->count() < n) {  // done before operation n: the requests ran to their end
                REQUIRE(answered == static_cast<int>(r.answers.size()));
                break;
            }
            REQUIRE(answered < static_cast<int>(r.answers.size()));  // none after the shutdown
        }
        CHECK(n > e.min_ops);
        std::printf("fault matrix: %-34s shut down in flight at each of %zu operations\n", sc.name.c_str(),
                    static_cast<std::size_t>(n - 1));
    }
}

// Description: the OCI token flow through the oci_fetcher: anonymous request, 401 with a Bearer
// challenge (its body drained), token request to the realm, the request again with the token;
// with the blob answered by the registry or by a 307 to storage (no token sent there).
TEST_CASE("fault matrix: OCI bearer token flow", "[oci][faults]") {
    quiet_logs quiet;
    registry reg;
    const std::set<fc::op> flow = {fc::op::write, fc::op::read_header, fc::op::read_body, fc::op::drain_body};
    // HEAD 401: resolve connect write header; token: write header body; HEAD: write header.
    run_matrix("oci: bearer token, stat", 9, {fc::op::write, fc::op::read_header, fc::op::read_body},
               [&](std::shared_ptr<fc> f, const mode& m) { return run_oci(reg, false, 0, 0, f, m); });
    run_matrix("oci: bearer token, fetch", 10, flow,
               [&](std::shared_ptr<fc> f, const mode& m) { return run_oci(reg, true, 512, 30000, f, m); });
    reg.redirect = true;
    // GET 401: resolve connect write header drain; token: write header body; GET: write header;
    // ... then to storage: resolve connect write header.
    run_matrix("oci: bearer token, fetch via 307", 14, flow,
               [&](std::shared_ptr<fc> f, const mode& m) { return run_oci(reg, true, 512, 30000, f, m); });
}
