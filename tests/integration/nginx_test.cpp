// Integration tests of the HTTP fetcher against a real nginx, which each test case starts on
// 127.0.0.1 (ephemeral ports) with a generated config in a temporary prefix, and stops at its end:
// plain HTTP with Range support, a location without Range support, a redirecting location, and
// HTTPS with a self-signed certificate made at test time by the openssl CLI (plus one whose name
// does not match). Without nginx or openssl the program exits 77 (skipped), or 1 when
// BLOBD_REQUIRE_SERVERS=1.
#define CATCH_CONFIG_EXTERNAL_INTERFACES  // Catch::TestEventListenerBase, for the skip check below
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "daemon/app.hpp"
#include "tests/support/fake_kernel.hpp"
#include "tests/support/fetch_driver.hpp"
#include "tests/support/nginx.hpp"
#include "tests/support/test_util.hpp"
#include "sources/kinds.hpp"

using namespace blobd;
using blobd::test::fetch_driver;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

using blobd::test::find_program;
using blobd::test::start_nginx;
using blobd::test::stop_process;
using blobd::test::write_nginx_conf;
using blobd::test::free_port;
using blobd::test::random_bytes;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * 1024;

// One nginx serving `blobs` from <prefix>/www/blobs, started for one test case.
struct nginx {
    fs::path dir;
    pid_t pid = -1;
    std::uint16_t http = 0, https = 0, wrong_name = 0;
    std::map<std::string, std::string> blobs;

    explicit nginx(std::map<std::string, std::string> b) : blobs(std::move(b)) {
        char t[] = "/tmp/blobd-nginx-XXXXXX";
        REQUIRE(::mkdtemp(t));
        dir = t;
        // Readable by every user, in case nginx ever drops privileges for its worker.
        fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                 fs::perms::others_read | fs::perms::others_exec);
        fs::create_directories(dir / "www" / "blobs");
        fs::create_directories(dir / "tmp");
        for (const auto& [name, data] : blobs) std::ofstream(dir / "www" / "blobs" / name, std::ios::binary) << data;
        make_cert("good", "IP:127.0.0.1");
        make_cert("wrong", "DNS:wrong-name.blobd.invalid");
        for (int attempt = 0; attempt < 5 && pid < 0; ++attempt) start();
        REQUIRE(pid > 0);
    }
    ~nginx() {
        stop_process(pid);
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string path(const std::string& name) const { return (dir / name).string(); }

    void make_cert(const std::string& name, const std::string& san) {
        const std::string cmd = find_program("openssl") +
                                " req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
                                " -subj /CN=blobd-test -addext subjectAltName=" +
                                san + " -keyout " + path(name + ".key") + " -out " + path(name + ".pem") +
                                " >/dev/null 2>&1";
        REQUIRE(std::system(cmd.c_str()) == 0);
    }

    void start() {
        http = free_port();
        https = free_port();
        wrong_name = free_port();
        const std::string d = dir.string();
        write_nginx_conf(d, "  keepalive_requests 1000;\n",
                         "  server {\n    listen 127.0.0.1:" + std::to_string(http) + ";\n    root " + d + "/www;\n"
                         "    location /noranges/ { alias " + d + "/www/blobs/; max_ranges 0; }\n"
                         "    location /moved/ { rewrite ^/moved/(.*)$ /blobs/$1 redirect; }\n"
                         "    location /up/ { rewrite ^/up/(.*)$ https://127.0.0.1:" + std::to_string(https) +
                         "/blobs/$1 redirect; }\n  }\n"
                         "  server {\n    listen 127.0.0.1:" + std::to_string(https) + " ssl;\n    root " + d + "/www;\n"
                         "    ssl_certificate " + d + "/good.pem;\n    ssl_certificate_key " + d + "/good.key;\n"
                         "    location /down/ { return 302 http://127.0.0.1:" + std::to_string(http) + "/blobs/; }\n  }\n"
                         "  server {\n    listen 127.0.0.1:" + std::to_string(wrong_name) + " ssl;\n    root " + d + "/www;\n"
                         "    ssl_certificate " + d + "/wrong.pem;\n    ssl_certificate_key " + d + "/wrong.key;\n  }\n");
        pid = start_nginx(d, {http, https, wrong_name});
    }

    std::string http_url(const std::string& p) const { return "http://127.0.0.1:" + std::to_string(http) + p; }
    std::string https_url(const std::string& p, std::uint16_t port = 0) const {
        return "https://127.0.0.1:" + std::to_string(port ? port : https) + p;
    }
};

http_options opts(const std::string& url) {
    http_options o;
    o.url = url;
    o.timeout = 5s;
    o.retries = 1;
    o.backoff = 10ms;
    return o;
}

}  // namespace

// Description: plain HTTP: HEAD sizes, exact 206 ranges (including the unaligned tail), one
// keep-alive connection for many requests, 404 as ENOENT, a location that ignores Range (the
// fetcher takes slices of the 200), and a location that redirects.
TEST_CASE("nginx over plain HTTP", "[nginx]") {
    nginx n({{"blob", random_bytes(2 * MiB + 777, 1)}, {"empty", ""}});
    const std::string& data = n.blobs.at("blob");
    fetch_driver c(opts(n.http_url("/blobs")));
    auto size = c.stat("blob");
    REQUIRE(size);
    CHECK(*size == data.size());
    for (std::uint64_t off = 0; off < data.size(); off += 256 * KiB) {
        const std::uint64_t len = std::min<std::uint64_t>(256 * KiB, data.size() - off);
        auto got = c.fetch("blob", off, len);
        REQUIRE(got);
        CHECK((*got == data.substr(off, len)));
    }
    CHECK(c.f->connections_opened() == 1);
    CHECK(c.stat("absent").error() == -ENOENT);
    CHECK(c.fetch("absent", 0, 4096).error() == -ENOENT);
    auto empty = c.stat("empty");
    REQUIRE(empty);
    CHECK(*empty == 0);

    fetch_driver whole(opts(n.http_url("/noranges")));
    REQUIRE(whole.stat("blob"));
    auto slice = whole.fetch("blob", MiB + 3, 5000);
    REQUIRE(slice);
    CHECK((*slice == data.substr(MiB + 3, 5000)));

    fetch_driver moved(opts(n.http_url("/moved")));
    auto msize = moved.stat("blob");
    REQUIRE(msize);
    CHECK(*msize == data.size());
    auto mgot = moved.fetch("blob", 4096, 4096);
    REQUIRE(mgot);
    CHECK((*mgot == data.substr(4096, 4096)));
    CHECK(moved.f->requests_sent() == 4);  // two requests, each redirected once
}

// Description: HTTPS: a self-signed certificate fails verification without ca_file, passes with
// ca_file pointing at it, and is accepted unverified with insecure: true; a certificate for
// another name fails even when its CA is trusted (host name verification); a redirect from https
// to plain http is refused; a plain-http source (whose TLS context is only made when a redirect
// to https first needs it) verifies the same way.
TEST_CASE("nginx over HTTPS", "[nginx]") {
    nginx n({{"blob", random_bytes(300 * KiB, 2)}});
    const std::string& data = n.blobs.at("blob");

    fetch_driver untrusted(opts(n.https_url("/blobs")));
    CHECK(untrusted.stat("blob").error() == -EIO);
    CHECK(untrusted.f->requests_sent() == 0);  // failed in the handshake: not a byte of HTTP
    CHECK(untrusted.f->connections_opened() == 1);  // and not retried

    auto o = opts(n.https_url("/blobs"));
    o.ca_file = n.path("good.pem");
    fetch_driver trusted(o);
    auto size = trusted.stat("blob");
    REQUIRE(size);
    CHECK(*size == data.size());
    for (std::uint64_t off : {std::uint64_t{0}, 100 * KiB, 299 * KiB}) {
        auto got = trusted.fetch("blob", off, KiB);
        REQUIRE(got);
        CHECK((*got == data.substr(off, KiB)));
    }
    CHECK(trusted.f->connections_opened() == 1);

    auto i = opts(n.https_url("/blobs"));
    i.insecure = true;
    fetch_driver insecure(i);
    auto got = insecure.fetch("blob", 5, 100);
    REQUIRE(got);
    CHECK((*got == data.substr(5, 100)));

    auto w = opts(n.https_url("/blobs", n.wrong_name));
    w.ca_file = n.path("wrong.pem");
    fetch_driver wrong_name(w);
    CHECK(wrong_name.stat("blob").error() == -EIO);
    w.insecure = true;
    fetch_driver wrong_name_insecure(w);
    CHECK(wrong_name_insecure.stat("blob"));

    // A plain-http source (no ca_file: its TLS context is made only when first needed) redirected
    // to https: the context made then verifies like any other, against the system store (this
    // certificate is not in it) or not at all with insecure.
    fetch_driver up_untrusted(opts(n.http_url("/up")));
    CHECK(up_untrusted.stat("blob").error() == -EIO);
    auto up = opts(n.http_url("/up"));
    up.insecure = true;
    fetch_driver up_insecure(up);
    REQUIRE(up_insecure.stat("blob").value() == data.size());
    auto up_got = up_insecure.fetch("blob", 1000, 2000);
    REQUIRE(up_got);
    CHECK((*up_got == data.substr(1000, 2000)));

    auto down = opts(n.https_url("/down"));
    down.ca_file = n.path("good.pem");
    fetch_driver downgrade(down);
    CHECK(downgrade.stat("blob").error() == -EIO);
    CHECK(downgrade.f->requests_sent() == 1);
}

// Description: a ca_file that cannot be loaded fails the fetcher's construction (startup), with
// the file named in the error.
TEST_CASE("unreadable ca_file fails at startup", "[nginx]") {
    event_loop loop;
    net_thread net;
    auto o = opts("https://127.0.0.1:1/blobs");
    o.ca_file = "/nonexistent/ca.pem";
    try {
        http_fetcher f(loop, net, o);
        FAIL("constructed with a missing ca_file");
    } catch (const std::system_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("/nonexistent/ca.pem"));
    }
}

// Description: the whole daemon over HTTPS: OPEN and READs through the fake kernel are served
// by nginx with a verified certificate; the cache files hold the blob's bytes.
TEST_CASE("daemon over HTTPS from nginx", "[nginx][daemon]") {
    nginx n({{"img", random_bytes(2 * MiB + 5000, 3)}});
    test::fake_kernel k;
    event_loop loop;
    cfg::config conf;
    conf.cache_dir = "/unused";
    conf.store.use = cfg::store_use::off;  // the fetcher's own bytes are counted here
    conf.chunk_size = 512 * KiB;
    conf.control_socket = "";
    sources::http_settings src;
    src.url = n.https_url("/blobs");
    src.net.ca_file = n.path("good.pem");
    conf.sources.push_back(sources::source_of(src));
    auto daemon = std::make_unique<app>(loop, k.dev(), std::make_shared<const cfg::config>(conf));
    REQUIRE(daemon->start());
    auto run_until = [&](auto pred) {
        const auto end = std::chrono::steady_clock::now() + 20s;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > end) return false;
            loop.run_once(10ms);
        }
        return true;
    };
    auto obj = k.open("erofs,d", "img");
    REQUIRE(run_until([&] { return k.copen_result(obj).has_value(); }));
    REQUIRE(*k.copen_result(obj) == static_cast<std::int64_t>(n.blobs.at("img").size()));
    int reads = 0;
    for (std::uint64_t off = 0; off < n.blobs.at("img").size(); off += 256 * KiB, ++reads) k.read(obj, off, 4096);
    REQUIRE(run_until([&] { return k.completed(obj) == reads; }));
    CHECK((k.cache_bytes(obj, 0, n.blobs.at("img").size()) == n.blobs.at("img")));
    CHECK(k.bad_completions() == 0);
    daemon->request_stop(200ms);
    REQUIRE(run_until([&] { return daemon->finished(); }));
    daemon.reset();
}

// Before any test runs: without the servers' programs, skip the whole program (exit 77, which
// ctest reports as skipped) unless BLOBD_REQUIRE_SERVERS=1 makes their absence a failure.
struct require_servers : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;
    void testRunStarting(const Catch::TestRunInfo&) override {
        const char* env = std::getenv("BLOBD_REQUIRE_SERVERS");
        const bool required = env && std::string(env) == "1";
        for (const char* tool : {"nginx", "openssl"}) {
            if (find_program(tool).empty()) {
                std::fprintf(stderr, "nginx_tests: %s not found%s\n", tool,
                             required ? " and BLOBD_REQUIRE_SERVERS=1: failing" : ": skipping (exit 77)");
                std::fflush(stderr);
                std::exit(required ? 1 : 77);
            }
        }
    }
};
CATCH_REGISTER_LISTENER(require_servers)
