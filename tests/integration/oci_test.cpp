// Integration tests of the OCI fetcher: the real event_loop and net_thread against an in-process
// fake registry (built on tests/support/http_test_server) that speaks the /v2 blob API with no
// auth, bearer tokens from its own /token realm, or Basic auth, can redirect blobs to a separate
// "storage" server, and can misbehave; plus the whole daemon (app + fake kernel) with an oci source.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "daemon/app.hpp"
#include "base/log.hpp"
#include "io/event_loop.hpp"
#include "io/net_thread.hpp"
#include "fetchers/oci/oci_fetcher.hpp"
#include "sources/make_source.hpp"
#include "tests/support/fake_kernel.hpp"
#include "tests/support/fetch_driver.hpp"
#include "tests/support/http_test_server.hpp"

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
const std::string repo = "library/app";

std::string hex_of(char c) { return std::string(64, c); }

void send_empty(http_conn& c, int status, std::vector<std::pair<std::string, std::string>> headers = {}) {
    headers.emplace_back("Content-Length", "0");
    c.send(response_head(status, headers));
}

void send_json(http_conn& c, int status, const std::string& body,
               std::vector<std::pair<std::string, std::string>> headers = {}) {
    headers.emplace_back("Content-Type", "application/json");
    headers.emplace_back("Content-Length", std::to_string(body.size()));
    c.send(response_head(status, headers) + body);
}

// A /v2 registry with blobs keyed by hex digest. Thread-safe: the server's threads run handle().
struct fake_registry {
    enum class auth { none, bearer, basic };
    auth mode;
    std::map<std::string, std::string> blobs;
    std::string user = "alice", pass = "wonder-land";
    bool token_needs_creds = false;         // the realm wants Basic credentials
    std::atomic<int> expires_in{300};
    std::atomic<bool> refuse_all_tokens{false};
    std::atomic<bool> lie_about_range{false};
    std::atomic<bool> creds_changed{false};  // the password changed: the configured one is refused
    std::string storage;                    // when set: blobs answer 307 to <storage>/storage/<hex>?sig=...
    std::atomic<int> token_requests{0}, blob_requests{0};
    std::mutex mu;
    std::set<std::string> valid_tokens;
    int next_token = 1;
    std::vector<std::string> seen;          // "METHOD target auth-scheme-or-none"
    std::vector<std::string> token_queries;
    http_server server;

    explicit fake_registry(auth m, std::map<std::string, std::string> b = {})
        : mode(m), blobs(std::move(b)), server([this](const http_request& r, http_conn& c) { handle(r, c); }) {}

    std::string url() const { return server.url(); }
    std::string basic() const { return oci::basic_authorization({user, pass}); }
    void revoke_tokens() {
        std::lock_guard lk(mu);
        valid_tokens.clear();
    }
    std::vector<std::string> requests() {
        std::lock_guard lk(mu);
        return seen;
    }

    void handle(const http_request& r, http_conn& c) {
        const auto authz = r.header("authorization");
        {
            std::lock_guard lk(mu);
            seen.push_back(r.method + " " + r.target + " " +
                           (authz ? authz->substr(0, authz->find(' ')) : std::string("none")));
        }
        if (r.target.starts_with("/token?")) {
            ++token_requests;
            {
                std::lock_guard lk(mu);
                token_queries.push_back(r.target.substr(7));
            }
            if (token_needs_creds && (authz != basic() || creds_changed)) {
                return send_json(c, 401, R"({"errors":[{"code":"UNAUTHORIZED"}]})");
            }
            std::string tok;
            {
                std::lock_guard lk(mu);
                tok = "tok-" + std::to_string(next_token++);
                valid_tokens.insert(tok);
            }
            return send_json(c, 200, nlohmann::json{{"token", tok}, {"expires_in", expires_in.load()}}.dump());
        }
        const std::string prefix = "/v2/" + repo + "/blobs/sha256:";
        if (!r.target.starts_with(prefix)) return send_empty(c, 404);
        ++blob_requests;
        bool ok = true;
        if (mode == auth::bearer) {
            std::lock_guard lk(mu);
            ok = authz && authz->starts_with("Bearer ") && valid_tokens.contains(authz->substr(7)) &&
                 !refuse_all_tokens;
        } else if (mode == auth::basic) {
            ok = authz == basic() && !creds_changed;
        }
        if (!ok) {
            const std::string challenge =
                mode == auth::bearer
                    ? "Bearer realm=\"" + server.url("/token") + "\",service=\"fake registry\",scope=\"repository:" +
                          repo + ":pull\""
                    : "Basic realm=\"fake, \\\"registry\\\"\"";
            return send_json(c, 401, R"({"errors":[{"code":"UNAUTHORIZED"}]})", {{"WWW-Authenticate", challenge}});
        }
        auto it = blobs.find(r.target.substr(prefix.size()));
        if (it == blobs.end()) return send_json(c, 404, R"({"errors":[{"code":"BLOB_UNKNOWN"}]})");
        if (!storage.empty()) {
            return send_empty(c, 307, {{"Location", storage + "/storage/" + it->first + "?sig=SIGNATURE"}});
        }
        if (lie_about_range && r.method == "GET") {
            const std::string body = it->second.substr(0, 10);
            c.send(response_head(206, {{"Content-Range", "bytes 0-9/" + std::to_string(it->second.size())},
                                       {"Content-Length", "10"}}) +
                   body);
            return;
        }
        serve_blob(r, c, it->second);
    }
};

oci_options quick(const std::string& registry, std::vector<std::string> mirrors = {}) {
    oci_options o;
    o.registry = registry;
    o.repository = repo;
    o.mirrors = std::move(mirrors);
    o.http.timeout = 2000ms;
    o.http.retries = 2;
    o.http.backoff = 10ms;
    return o;
}

// An oci_fetcher on a real loop and net thread, driven synchronously.
using driver = blobd::test::oci_driver;

}  // namespace

// Description: anonymous pulls: "sha256:<hex>" and bare "<hex>" names map to the /v2 blob URL;
// stat by HEAD, chunks by range GET, no Authorization header, no token request.
TEST_CASE("oci: anonymous registry", "[oci]") {
    const std::string data = random_bytes(300 * KiB + 7, 1);
    fake_registry reg(fake_registry::auth::none, {{hex_of('a'), data}});
    driver d(quick(reg.url()));
    CHECK(d.f->describe() == "oci:" + reg.url() + "/" + repo);
    auto size = d.stat("sha256:" + hex_of('a'));
    REQUIRE(size);
    CHECK(*size == data.size());
    auto got = d.fetch(hex_of('a'), 100 * KiB, 64 * KiB);
    REQUIRE(got);
    CHECK((*got == data.substr(100 * KiB, 64 * KiB)));
    CHECK(d.stat("sha256:" + hex_of('b')).error() == -ENOENT);  // 404 from the registry
    CHECK(reg.requests() == std::vector<std::string>{"HEAD /v2/library/app/blobs/sha256:" + hex_of('a') + " none",
                                                     "GET /v2/library/app/blobs/sha256:" + hex_of('a') + " none",
                                                     "HEAD /v2/library/app/blobs/sha256:" + hex_of('b') + " none"});
    CHECK(d.f->token_requests() == 0);
    CHECK(d.f->stats().bytes == 64 * KiB);
}

// Description: names that are not sha256 digests are not this source's: ENOENT at once, without
// a request, so the source chain moves on.
TEST_CASE("oci: non-digest names", "[oci]") {
    fake_registry reg(fake_registry::auth::none);
    driver d(quick(reg.url()));
    for (const std::string& name : std::vector<std::string>{"blob1", "sha256:" + hex_of('a').substr(1), std::string(64, 'A'), "sha512:" + hex_of('a')}) {
        CHECK(d.stat(name).error() == -ENOENT);
        CHECK(d.fetch(name, 0, 10).error() == -ENOENT);
    }
    CHECK(reg.server.requests() == 0);
}

// Description: bearer flow: the first request gets a 401, the token comes from the realm with the
// challenge's service and the repository's pull scope, and is reused for every later chunk; after
// it expires a new one is fetched; a token the registry revokes is replaced once.
TEST_CASE("oci: bearer tokens", "[oci]") {
    const std::string data = random_bytes(2 * MiB, 2);
    fake_registry reg(fake_registry::auth::bearer, {{hex_of('c'), data}});
    reg.expires_in = 1;  // cached for 750 ms
    driver d(quick(reg.url()));
    const std::string name = "sha256:" + hex_of('c');
    REQUIRE(d.stat(name).value() == data.size());
    for (std::uint64_t off = 0; off < 4 * 256 * KiB; off += 256 * KiB) {
        auto got = d.fetch(name, off, 256 * KiB);
        REQUIRE(got);
        CHECK((*got == data.substr(off, 256 * KiB)));
    }
    CHECK(reg.token_requests == 1);
    CHECK(d.f->token_requests() == 1);
    CHECK(reg.blob_requests == 6);  // 401 + HEAD + 4 GETs
    {
        std::lock_guard lk(reg.mu);
        REQUIRE(reg.token_queries.size() == 1);
        CHECK(reg.token_queries[0] == "service=fake%20registry&scope=repository%3Alibrary%2Fapp%3Apull");
    }
    const auto seen = reg.requests();
    CHECK(seen[0].ends_with(" none"));   // anonymous first
    CHECK(seen[1].starts_with("GET /token?"));
    CHECK(seen[2].ends_with(" Bearer"));

    std::this_thread::sleep_for(1100ms);  // past expiry: a new token before the request
    REQUIRE(d.fetch(name, 0, 4096));
    CHECK(reg.token_requests == 2);
    CHECK(reg.blob_requests == 7);  // no 401 this time: the token was renewed before the request

    reg.expires_in = 300;
    REQUIRE(d.fetch(name, 0, 4096));  // (the 1 s token may have expired meanwhile)
    const int tokens = reg.token_requests;
    reg.revoke_tokens();
    REQUIRE(d.fetch(name, 4096, 4096));  // 401 with the cached token -> a new one, once
    CHECK(reg.token_requests == tokens + 1);
}

// Description: concurrent requests that all need a token share one token request.
TEST_CASE("oci: one token request for concurrent fetches", "[oci]") {
    const std::string data = random_bytes(1 * MiB, 3);
    fake_registry reg(fake_registry::auth::bearer, {{hex_of('d'), data}});
    driver d(quick(reg.url()));
    int done = 0, good = 0;
    for (int i = 0; i < 8; ++i) {
        d.f->fetch(blob_ref{"d", hex_of('d')}, i * 64 * KiB, 64 * KiB, no_deadline, [&, i](result<buffer_ptr, int> r) {
            ++done;
            if (r && std::string(reinterpret_cast<const char*>((*r)->data()), 64 * KiB) == data.substr(i * 64 * KiB, 64 * KiB)) {
                ++good;
            }
        });
    }
    REQUIRE(d.run_until([&] { return done == 8; }));
    CHECK(good == 8);
    CHECK(reg.token_requests == 1);
}

// Description: the realm asks for Basic credentials: they are sent (to the realm) when configured;
// wrong ones fail with EACCES after one token request, with no loop; a registry that refuses every
// token fails with EACCES after one retry. Logs never show the password or a token.
TEST_CASE("oci: credentials for the token realm, and refusals", "[oci]") {
    const std::string data = random_bytes(100 * KiB, 4);
    fake_registry reg(fake_registry::auth::bearer, {{hex_of('e'), data}});
    reg.token_needs_creds = true;

    char path[] = "/tmp/blobd-oci-log-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    const int saved = ::dup(2);
    ::dup2(fd, 2);
    const auto level = log::max_level();
    log::set_max_level(log::level::debug);
    {
        auto o = quick(reg.url());
        o.credentials = oci::credentials{reg.user, reg.pass};
        driver d(o);
        REQUIRE(d.stat(hex_of('e')).value() == data.size());
        CHECK((d.fetch(hex_of('e'), 0, 100 * KiB).value() == data));
        CHECK(reg.token_requests == 1);
        {
            std::lock_guard lk(reg.mu);
            CHECK(std::count(reg.seen.begin(), reg.seen.end(), "GET " + std::string("/token?") +
                                                                  reg.token_queries[0] + " Basic") == 1);
        }
    }
    {
        auto o = quick(reg.url());
        o.credentials = oci::credentials{reg.user, "WRONGPASSWORD"};
        driver d(o);
        const int before = reg.blob_requests;
        CHECK(d.stat(hex_of('e')).error() == -EACCES);
        CHECK(d.fetch(hex_of('e'), 0, 10).error() == -EACCES);
        CHECK(d.f->token_requests() == 2);  // one per operation, each refused
        // The fetch asks for a token up front (the endpoint is known to want one): no second 401.
        CHECK(reg.blob_requests - before == 1);
    }
    {
        driver d(quick(reg.url()));  // no credentials at all
        CHECK(d.fetch(hex_of('e'), 0, 10).error() == -EACCES);
    }
    {
        reg.token_needs_creds = false;
        reg.refuse_all_tokens = true;  // tokens issued, then refused: one fresh token, then EACCES
        driver d(quick(reg.url()));
        const int before = reg.blob_requests, tokens_before = reg.token_requests;
        CHECK(d.fetch(hex_of('e'), 0, 10).error() == -EACCES);
        CHECK(reg.blob_requests - before == 2);
        CHECK(reg.token_requests - tokens_before == 1);
        reg.refuse_all_tokens = false;
    }
    log::set_max_level(level);
    ::dup2(saved, 2);
    ::close(saved);
    std::string logged(static_cast<std::size_t>(::lseek(fd, 0, SEEK_END)), '\0');
    REQUIRE(::pread(fd, logged.data(), logged.size(), 0) == static_cast<ssize_t>(logged.size()));
    ::close(fd);
    ::unlink(path);
    INFO(logged);
    CHECK(logged.find("access denied") != std::string::npos);  // the log was captured
    CHECK(logged.find(reg.pass) == std::string::npos);
    CHECK(logged.find("WRONGPASSWORD") == std::string::npos);
    CHECK(logged.find(oci::base64_encode(reg.user + ":" + reg.pass)) == std::string::npos);
    CHECK(logged.find("tok-") == std::string::npos);
}

// Description: Basic auth on the registry itself: anonymous first, then the credentials (and up
// front from then on); wrong or missing credentials are EACCES after one retry.
TEST_CASE("oci: basic auth", "[oci]") {
    const std::string data = random_bytes(50 * KiB, 5);
    fake_registry reg(fake_registry::auth::basic, {{hex_of('f'), data}});
    auto o = quick(reg.url());
    o.credentials = oci::credentials{reg.user, reg.pass};
    driver d(o);
    REQUIRE(d.stat(hex_of('f')).value() == data.size());
    CHECK((d.fetch(hex_of('f'), 10, 1000).value() == data.substr(10, 1000)));
    auto seen = reg.requests();
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].ends_with(" none"));
    CHECK(seen[1].ends_with(" Basic"));
    CHECK(seen[2].ends_with(" Basic"));

    auto wrong = quick(reg.url());
    wrong.credentials = oci::credentials{reg.user, "nope"};
    driver w(wrong);
    const int before = reg.blob_requests;
    CHECK(w.fetch(hex_of('f'), 0, 10).error() == -EACCES);
    CHECK(reg.blob_requests - before == 2);
    driver none(quick(reg.url()));
    CHECK(none.stat(hex_of('f')).error() == -EACCES);
}

// Description: credentials from a docker auth file, looked up per host: the registry's entry is
// used for the registry; a mirror without an entry gets none.
TEST_CASE("oci: auth file", "[oci]") {
    const std::string data = random_bytes(10 * KiB, 6);
    fake_registry reg(fake_registry::auth::basic, {{hex_of('1'), data}});
    fake_registry mirror(fake_registry::auth::basic, {{hex_of('1'), data}});
    char path[] = "/tmp/blobd-oci-auth-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    const std::string text = nlohmann::json{{"auths",
                                             {{"127.0.0.1:" + std::to_string(reg.server.port()),
                                               {{"auth", oci::base64_encode(reg.user + ":" + reg.pass)}}}}}}
                                 .dump();
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
    sources::oci_settings src;
    src.registry = reg.url();
    src.repository = repo;
    src.mirrors = {mirror.url()};
    src.auth_file = path;
    src.net.retries = 0;
    auto o = sources::oci_options_from(src);
    ::unlink(path);
    REQUIRE(o.auths.size() == 1);
    driver d(o);
    CHECK((d.fetch(hex_of('1'), 0, 10 * KiB).value() == data));
    CHECK(mirror.blob_requests == 1);  // refused (no credentials for it), then the registry
    CHECK(reg.blob_requests == 2);

    src.auth_file = "/nonexistent/auth.json";
    CHECK_THROWS_WITH(sources::oci_options_from(src), Catch::Contains("/nonexistent/auth.json"));
}

// Description: a registry that redirects blobs to another origin (pre-signed storage URLs): the
// storage never sees an Authorization header; later chunks go straight to the remembered storage
// URL; when that URL stops working (signature expired) the fetcher asks the registry again.
TEST_CASE("oci: redirects to blob storage", "[oci]") {
    const std::string data = random_bytes(1 * MiB, 7);
    std::atomic<int> storage_requests{0}, storage_with_auth{0};
    std::atomic<bool> expired{false};
    http_server storage([&](const http_request& r, http_conn& c) {
        ++storage_requests;
        if (r.header("authorization")) ++storage_with_auth;
        if (expired || r.target != "/storage/" + hex_of('7') + "?sig=SIGNATURE") return send_empty(c, 403);
        serve_blob(r, c, data);
    });
    fake_registry reg(fake_registry::auth::bearer, {{hex_of('7'), data}});
    reg.storage = storage.url();
    driver d(quick(reg.url()));
    REQUIRE(d.stat(hex_of('7')).value() == data.size());
    for (std::uint64_t off = 0; off < MiB; off += 256 * KiB) {
        CHECK((d.fetch(hex_of('7'), off, 256 * KiB).value() == data.substr(off, 256 * KiB)));
    }
    CHECK(storage_with_auth == 0);
    CHECK(storage_requests == 5);   // HEAD + 4 GETs
    CHECK(reg.blob_requests == 3);  // 401, HEAD, the first GET; later chunks skip the registry
    expired = true;
    CHECK(d.fetch(hex_of('7'), 0, 10).error() == -EACCES);  // storage 403 both ways
    expired = false;
    const int reg_before = reg.blob_requests;
    CHECK((d.fetch(hex_of('7'), 0, 10).value() == data.substr(0, 10)));
    CHECK(reg.blob_requests - reg_before == 1);  // the stale redirect was dropped: via the registry
    CHECK(storage_with_auth == 0);
}

// Description: mirrors are tried in order before the registry: a refused connection and a 404 move
// on; the endpoint that served a blob is asked first afterwards. A mirror that has the blob spares
// the registry.
TEST_CASE("oci: mirrors", "[oci]") {
    const std::string data = random_bytes(200 * KiB, 8);
    std::string dead_url;
    {
        http_server dead([](const http_request&, http_conn& c) { c.reset(); });
        dead_url = dead.url();
    }  // stopped: connection refused from now on
    fake_registry empty_mirror(fake_registry::auth::none);
    fake_registry failing_mirror(fake_registry::auth::none);
    fake_registry reg(fake_registry::auth::bearer, {{hex_of('9'), data}});
    http_server broken([](const http_request&, http_conn& c) { send_empty(c, 503); });
    driver d(quick(reg.url(), {dead_url, empty_mirror.url(), broken.url()}));
    REQUIRE(d.stat(hex_of('9')).value() == data.size());
    CHECK(empty_mirror.blob_requests == 1);
    CHECK(broken.requests() == 3);  // 1 + 2 retries
    CHECK((d.fetch(hex_of('9'), 0, 100 * KiB).value() == data.substr(0, 100 * KiB)));
    CHECK(empty_mirror.blob_requests == 1);  // remembered: the registry first now
    CHECK(broken.requests() == 3);

    fake_registry good_mirror(fake_registry::auth::none, {{hex_of('9'), data}});
    const int reg_before = reg.server.requests();
    driver m(quick(reg.url(), {dead_url, good_mirror.url()}));
    REQUIRE(m.stat(hex_of('9')).value() == data.size());
    CHECK((m.fetch(hex_of('9'), 1000, 1000).value() == data.substr(1000, 1000)));
    CHECK(good_mirror.blob_requests == 2);
    CHECK(reg.server.requests() == reg_before);

    // Every endpoint without the blob: the registry's answer (ENOENT) is the result.
    CHECK(m.stat(hex_of('0')).error() == -ENOENT);
}

// Description: a mirror that failed (here: every connection reset) is asked last, after the
// registry, until its cooldown ends, instead of first for every new blob; it is still asked when
// everything else fails (the registry's answer is the one reported); once the cooldown is over it
// is first again, and one that serves is healthy. A mirror without the blob (404) is no failure.
TEST_CASE("oci: a failing mirror is asked last during its cooldown", "[oci]") {
    const std::string data = random_bytes(64 * KiB, 11);
    std::atomic<bool> mirror_broken{true};
    fake_registry good(fake_registry::auth::none, {{hex_of('1'), data}, {hex_of('2'), data}, {hex_of('3'), data},
                                                   {hex_of('4'), data}});
    http_server mirror([&](const http_request& r, http_conn& c) {
        if (mirror_broken) return c.reset();
        good.handle(r, c);
    });
    fake_registry empty_mirror(fake_registry::auth::none);
    fake_registry reg(fake_registry::auth::none, {{hex_of('1'), data}, {hex_of('2'), data}, {hex_of('3'), data},
                                                  {hex_of('4'), data}});
    auto o = quick(reg.url(), {empty_mirror.url(), mirror.url()});
    o.endpoint_cooldown = 1500ms;  // long enough for the first three steps on a loaded machine
    driver d(o);

    // First blob: the empty mirror (404), the broken one (1 + 2 retries), then the registry.
    REQUIRE(d.stat(hex_of('1')).value() == data.size());
    CHECK(empty_mirror.blob_requests == 1);
    CHECK(mirror.requests() == 3);
    CHECK(reg.blob_requests == 1);
    CHECK(d.f->endpoint_cooldowns() == 1);  // the 404 mirror is not in a cooldown

    // A new blob: the empty mirror, then the registry; the broken mirror is not asked.
    REQUIRE(d.stat(hex_of('2')).value() == data.size());
    CHECK((d.fetch(hex_of('2'), 0, 4 * KiB).value() == data.substr(0, 4 * KiB)));
    CHECK(empty_mirror.blob_requests == 2);
    CHECK(mirror.requests() == 3);
    CHECK(reg.blob_requests == 3);

    // Unknown everywhere: the mirror in its cooldown is still asked, last, and the registry's
    // 404 is the answer, not the mirror's reset.
    CHECK(d.stat(hex_of('0')).error() == -ENOENT);
    CHECK(mirror.requests() == 6);
    CHECK(d.f->endpoint_cooldowns() == 1);  // still the same cooldown, extended

    // Cooldown over and the mirror repaired: it is asked in its place again and serves.
    mirror_broken = false;
    std::this_thread::sleep_for(1600ms);
    const int reg_before = reg.blob_requests;
    REQUIRE(d.stat(hex_of('3')).value() == data.size());
    CHECK(mirror.requests() == 7);
    CHECK(reg.blob_requests == reg_before);
    // Healthy again: a later blob goes to it before the registry, without waiting for anything.
    REQUIRE(d.stat(hex_of('4')).value() == data.size());
    CHECK(mirror.requests() == 8);
    CHECK(reg.blob_requests == reg_before);
    CHECK(d.f->endpoint_cooldowns() == 1);
}

// Description: the existing HTTP checks apply: a registry answering a range with the wrong bytes
// (a Content-Range for another range) is an error, never data.
TEST_CASE("oci: lying registry", "[oci]") {
    const std::string data = random_bytes(100 * KiB, 9);
    fake_registry reg(fake_registry::auth::none, {{hex_of('2'), data}});
    reg.lie_about_range = true;
    driver d(quick(reg.url()));
    CHECK(d.fetch(hex_of('2'), 4096, 4096).error() == -EIO);
}

// Description: the daemon with an oci source behind a local one: digest-named cookies come from
// the registry (bearer auth); when the registry starts refusing credentials, a READ completes with
// an error (exactly once, no hang).
TEST_CASE("daemon with an oci source", "[oci][daemon]") {
    const std::string data = random_bytes(3 * MiB + 100, 10);
    fake_registry reg(fake_registry::auth::bearer, {{hex_of('5'), data}});
    reg.token_needs_creds = true;
    test::fake_kernel k;
    event_loop loop;
    test::temp_dir cache("oci");   // the blob store (on for remote sources) lives in it
    cfg::config conf;
    conf.cache_dir = cache.path.string();
    conf.chunk_size = MiB;
    conf.control_socket = "";
    conf.sources.push_back(sources::source_of(sources::local_settings{"/nonexistent-blobd-dir"}));
    sources::oci_settings src;
    src.registry = reg.url();
    src.repository = repo;
    src.username = reg.user;
    src.password = reg.pass;
    src.net.retries = 0;
    src.net.timeout_ms = 2000;
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
    auto obj = k.open("erofs,d1", "sha256:" + hex_of('5'));
    REQUIRE(run_until([&] { return k.copen_result(obj).has_value(); }));
    REQUIRE(*k.copen_result(obj) == static_cast<std::int64_t>(data.size()));
    auto r1 = k.read(obj, 0, 4096);
    REQUIRE(run_until([&] { return k.read_done(r1); }));
    CHECK((k.cache_bytes(obj, 0, MiB) == data.substr(0, MiB)));

    reg.creds_changed = true;
    reg.revoke_tokens();
    auto r2 = k.read(obj, 2 * MiB, 4096);
    REQUIRE(run_until([&] { return k.read_done(r2); }));
    CHECK(k.completion_count(r2) == 1);
    CHECK(k.cache_bytes(obj, 2 * MiB, 4096) != data.substr(2 * MiB, 4096));

    auto other = k.open("erofs,d1", "not-a-digest");
    REQUIRE(run_until([&] { return k.copen_result(other).has_value(); }));
    CHECK(*k.copen_result(other) == -ENOENT);
    auto stats = nlohmann::json::parse(daemon->stats_json());
    CHECK(stats["sources"][1]["source"] == "oci:" + reg.url() + "/" + repo);
    CHECK(k.bad_completions() == 0);
    daemon->request_stop(200ms);
    REQUIRE(run_until([&] { return daemon->finished(); }));
    daemon.reset();
}
