// Integration tests of the HTTP client's forward-proxy support (http_options::proxy): the client
// on an io_context run by the test's thread, origins from tests/support/http_test_server (plain)
// and tls_proxy (https in front of one), and tests/support/forward_proxy.py as the proxy, which
// logs every request it got (method, target, Proxy-Authorization, whether Authorization came).
// Also the "proxy" config key (its errors and --check-config's masking) and http::parse_proxy.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "fetchers/http/http_client.hpp"
#include "protocol/http/http_util.hpp"
#include "sources/kinds.hpp"
#include "tests/support/forward_proxy.hpp"
#include "tests/support/http_test_server.hpp"
#include "tests/support/test_util.hpp"
#include "tests/support/tls_proxy.hpp"

using namespace blobd;
using namespace std::chrono_literals;
using blobd::test::http_conn;
using blobd::test::http_request;
using blobd::test::http_server;
using blobd::test::random_bytes;
using blobd::test::response_head;
using blobd::test::serve_blob;
using blobd::test::slurp;
using blobd::test::test_proxy;

namespace {

// An http_client on the test's own io_context.
struct client_run {
    boost::asio::io_context io;
    http_client c;
    explicit client_run(http_options o) : c(io, std::move(o), "test") {}
    ~client_run() { c.shutdown(); }
    http::response run(const std::string& target, http::request::kind what, std::uint64_t off = 0,
                       std::uint64_t len = 0, std::string authorization = "") {
        http::request r;
        r.what = what;
        auto u = http::parse_url(target);
        REQUIRE(u);
        r.target = *u;
        r.off = off;
        r.len = len;
        r.authorization = std::move(authorization);
        std::optional<http::response> out;
        c.start(std::move(r), [&](http::response x) { out = std::move(x); });
        const auto end = std::chrono::steady_clock::now() + 20s;
        io.restart();
        while (!out && std::chrono::steady_clock::now() < end) io.run_one_for(50ms);
        REQUIRE(out);
        return std::move(*out);
    }
};

http_options opts(const std::string& proxy) {
    http_options o;
    o.timeout = 3000ms;
    o.retries = 1;
    o.backoff = 10ms;
    o.proxy = proxy;
    return o;
}

std::string bytes_of(const http::response& r) {
    REQUIRE(r.data);
    return std::string(reinterpret_cast<const char*>(r.data->data()), r.data->filled);
}

// A server that records what reached it.
struct origin {
    const std::string data = random_bytes(200 * 1024 + 7, 5);
    std::mutex mu;
    std::vector<http_request> seen;
    http_server s{[this](const http_request& r, http_conn& c) {
        {
            std::lock_guard lk(mu);
            seen.push_back(r);
        }
        if (r.target == "/b/blob") return serve_blob(r, c, data);
        c.send(response_head(404, {{"Content-Length", "0"}}));
    }};
    std::vector<http_request> requests() {
        std::lock_guard lk(mu);
        return seen;
    }
};

}  // namespace

// Description: an http origin through the proxy: absolute-form targets to the proxy (what a
// caching proxy needs), the proxy's Basic credentials to the proxy only (the origin never sees
// Proxy-Authorization), the bytes exact.
TEST_CASE("http origin through a forward proxy: absolute-form", "[proxy]") {
    origin o;
    test_proxy px(BLOBD_TEST_SUPPORT, "pu:pp");
    client_run cl(opts(px.url("pu:pp")));
    const std::string blob = o.s.url("/b/blob");
    auto st = cl.run(blob, http::request::kind::stat);
    REQUIRE(st.err == 0);
    CHECK(st.size == o.data.size());
    auto got = cl.run(blob, http::request::kind::fetch, 4096, 65536);
    REQUIRE(got.err == 0);
    CHECK((bytes_of(got) == o.data.substr(4096, 65536)));
    const auto log = px.log();
    REQUIRE(log.size() == 2);
    for (const auto& e : log) {
        CHECK(e.at("target") == blob);  // absolute form
        CHECK(e.at("proxy_authorization") == "Basic cHU6cHA=");
        CHECK(e.at("status").get<int>() / 100 == 2);
    }
    CHECK(log[0].at("method") == "HEAD");
    CHECK(log[1].at("method") == "GET");
    for (const auto& r : o.requests()) {
        CHECK(r.target == "/b/blob");
        CHECK(!r.header("proxy-authorization"));
    }
}

// Description: an https origin through the proxy: a CONNECT tunnel to the origin's host:port,
// TLS with the origin (its certificate checked against ca_file and the origin's address) inside
// it. The proxy sees neither the path nor the origin's Authorization; the origin gets the
// Authorization and never the proxy's credentials.
TEST_CASE("https origin through a forward proxy: CONNECT tunnel", "[proxy]") {
    origin o;
    blobd::test::tls_proxy tls{o.s.port()};
    test_proxy px(BLOBD_TEST_SUPPORT, "pu:pp");
    auto op = opts(px.url("pu:pp"));
    op.ca_file = tls.ca_file();
    client_run cl(op);
    const std::string blob = tls.url("/b/blob");
    auto st = cl.run(blob, http::request::kind::stat, 0, 0, "Bearer origin-secret");
    REQUIRE(st.err == 0);
    CHECK(st.size == o.data.size());
    auto got = cl.run(blob, http::request::kind::fetch, 100000, 50000, "Bearer origin-secret");
    REQUIRE(got.err == 0);
    CHECK((bytes_of(got) == o.data.substr(100000, 50000)));
    const auto log = px.log();
    REQUIRE(log.size() >= 1);
    for (const auto& e : log) {
        CHECK(e.at("method") == "CONNECT");
        CHECK(e.at("target") == "127.0.0.1:" + std::to_string(tls.port()));
        CHECK(e.at("authorization") == false);
        CHECK(e.at("proxy_authorization") == "Basic cHU6cHA=");
        CHECK(slurp((px.dir.path / "log").string()).find("/b/blob") == std::string::npos);
    }
    CHECK(log.size() == 1);  // the tunnel is kept alive and reused for the second request
    const auto seen = o.requests();
    REQUIRE(seen.size() == 2);
    for (const auto& r : seen) {
        CHECK(r.header("authorization") == "Bearer origin-secret");
        CHECK(!r.header("proxy-authorization"));
    }
}

// Description: a proxy that wants credentials: without them (and with wrong ones) the request
// fails with EACCES at once (no retry), for https (407 to CONNECT) and http origins alike; with
// them it works.
TEST_CASE("proxy authentication: 407 fails cleanly", "[proxy]") {
    origin o;
    blobd::test::tls_proxy tls{o.s.port()};
    test_proxy px(BLOBD_TEST_SUPPORT, "pu:pp");
    for (const std::string cred : {"", "pu:wrong"}) {
        auto op = opts(px.url(cred));
        op.ca_file = tls.ca_file();
        client_run cl(op);
        const auto before = px.log().size();
        auto r1 = cl.run(tls.url("/b/blob"), http::request::kind::fetch, 0, 10);
        CHECK(r1.err == -EACCES);
        auto r2 = cl.run(o.s.url("/b/blob"), http::request::kind::fetch, 0, 10);
        CHECK(r2.err == -EACCES);
        const auto log = px.log();
        CHECK(log.size() - before == 2);  // one each: a 407 is not retried
        for (std::size_t i = before; i < log.size(); ++i) CHECK(log[i].at("status") == 407);
    }
    CHECK(o.requests().empty());
    client_run ok(opts(px.url("pu:pp")));
    CHECK(ok.run(o.s.url("/b/blob"), http::request::kind::fetch, 0, 10).err == 0);
}

// Description: a proxy that is not there fails fast with ECONNREFUSED (after the configured
// retry); a CONNECT to an origin the proxy cannot reach (502) fails with EIO after its retry.
TEST_CASE("proxy down, and CONNECT refused by the proxy", "[proxy]") {
    origin o;
    std::uint16_t dead = 0;
    {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        dead = ntohs(a.sin_port);
        ::close(fd);  // bound, never listening, now closed: connections are refused
    }
    client_run down(opts("http://127.0.0.1:" + std::to_string(dead)));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(down.run(o.s.url("/b/blob"), http::request::kind::fetch, 0, 10).err == -ECONNREFUSED);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    CHECK(o.requests().empty());

    test_proxy px(BLOBD_TEST_SUPPORT);
    client_run cl(opts(px.url()));
    auto r = cl.run("https://127.0.0.1:" + std::to_string(dead) + "/b/blob", http::request::kind::fetch, 0, 10);
    CHECK(r.err == -EIO);
    const auto log = px.log();
    REQUIRE(log.size() == 2);  // the first attempt and its one retry
    CHECK(log[0].at("status") == 502);
}

// Description: the "proxy" key of http and oci sources: a bad URL is refused with its JSON path
// (and without repeating a password); --check-config's printout masks the password.
TEST_CASE("proxy config key", "[proxy][config]") {
    auto conf = [](const nlohmann::json& src) {
        return nlohmann::json{{"cache", {{"dir", "/var/cache/x"}}}, {"sources", nlohmann::json::array({src})}}.dump();
    };
    nlohmann::json h = {{"type", "http"}, {"url", "http://h/b"}, {"proxy", "http://u:topsecret@proxy:3128"}};
    auto ok = sources::parse_config(conf(h));
    REQUIRE(ok);
    CHECK(ok->sources[0].to_json().at("proxy") == "http://u:***@proxy:3128");
    CHECK(ok->sources[0].to_json().dump().find("topsecret") == std::string::npos);
    nlohmann::json oci = {{"type", "oci"}, {"registry", "https://r"}, {"repository", "a/b"}, {"proxy", "http://p:8080"}};
    REQUIRE(sources::parse_config(conf(oci)));
    for (const std::string bad : {"https://p:3128", "p:3128", "http://u:topsecret@p:3128/path", "http://u:topsecret@",
                                  "http://p:99999"}) {
        h["proxy"] = bad;
        auto r = sources::parse_config(conf(h));
        REQUIRE(!r);
        const std::string msg = r.error().what();
        INFO(msg);
        CHECK(msg.find("$.sources[0].proxy: bad proxy URL") != std::string::npos);
        CHECK(msg.find("topsecret") == std::string::npos);
    }
}

TEST_CASE("parse_proxy", "[proxy]") {
    auto p = http::parse_proxy("http://alice:pw@Proxy.Example:3128/");
    REQUIRE(p);
    CHECK(p->host == "proxy.example");
    CHECK(p->port == 3128);
    CHECK(p->authorization == "Basic YWxpY2U6cHc=");
    CHECK(p->shown == "http://alice:***@proxy.example:3128");
    auto q = http::parse_proxy("http://[::1]");
    REQUIRE(q);
    CHECK(q->port == 80);
    CHECK(q->authorization.empty());
    CHECK(q->shown == "http://[::1]:80");
    CHECK(!http::parse_proxy("http://p:1?x=1"));
    CHECK(!http::parse_proxy("ftp://p"));
    CHECK(http::masked_proxy("garbage") == "***");
}
