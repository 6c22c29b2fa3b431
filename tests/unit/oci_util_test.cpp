// The OCI fetcher's pure rules (protocol/oci/oci_util.hpp) and the `oci` source config.
#include "protocol/oci/oci_util.hpp"

#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "base/digest.hpp"
#include "config/config.hpp"
#include "sources/kinds.hpp"

using namespace blobd;
using namespace blobd::oci;
using json = nlohmann::json;

namespace {

const std::string hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

http::url url_of(std::string_view s) {
    auto u = http::parse_url(s);
    REQUIRE(u);
    return *u;
}

challenge ch(std::string scheme, std::map<std::string, std::string> params, std::string t68 = "") {
    return challenge{std::move(scheme), std::move(params), std::move(t68)};
}

json doc_with(json source) {
    return {{"cache", {{"dir", "/var/cache/blobd"}}}, {"sources", json::array({std::move(source)})}};
}

json oci_min() { return {{"type", "oci"}, {"registry", "https://reg.example:5000"}, {"repository", "library/app"}}; }

void require_error(const json& doc, const std::string& path, const std::string& fragment) {
    const auto r = sources::parse_config(doc.dump());
    REQUIRE_FALSE(r.has_value());
    INFO(r.error().what());
    CHECK(r.error().path == path);
    CHECK(r.error().message.find(fragment) != std::string::npos);
}

}  // namespace

// Description: digest names (base/digest.hpp, used by the OCI fetcher and the blob store) are
// recognised only in their exact forms.
TEST_CASE("digest names", "[oci][cas]") {
    CHECK(sha256_of_name(hex64) == hex64);
    CHECK(sha256_of_name("sha256:" + hex64) == hex64);
    CHECK(sha256_of_name("sha256:" + hex64.substr(1)).empty());
    CHECK(sha256_of_name(hex64 + "0").empty());
    CHECK(sha256_of_name(std::string(64, 'A')).empty());  // upper case is not a digest name
    CHECK(sha256_of_name("sha512:" + hex64).empty());
    CHECK(sha256_of_name("blob1").empty());
    CHECK(sha256_of_name("").empty());
}

TEST_CASE("oci: repository names", "[oci]") {
    for (const char* ok : {"app", "library/app", "a/b/c", "my-app", "my--app", "a.b", "a_b", "a__b", "x0/9y", "0"}) {
        INFO(ok);
        CHECK_FALSE(repository_error(ok));
    }
    for (const char* bad : {"", "App", "/app", "app/", "a//b", "a..b", "a___b", "-a", "a-", "a_", "a b", "a/.b",
                            "a?b", "a%2fb", "a:b", "../x"}) {
        INFO(bad);
        CHECK(repository_error(bad));
    }
    CHECK(repository_error(std::string(256, 'a')));
    CHECK_FALSE(repository_error(std::string(255, 'a')));
}

TEST_CASE("oci: blob and token URLs", "[oci]") {
    CHECK(blob_url(url_of("https://reg:5000"), "library/app", hex64).target() ==
          "/v2/library/app/blobs/sha256:" + hex64);
    CHECK(blob_url(url_of("https://reg:5000/"), "a", hex64).redacted() == "https://reg:5000/v2/a/blobs/sha256:" + hex64);
    CHECK(blob_url(url_of("http://m.example/prefix/"), "a/b", hex64).redacted() ==
          "http://m.example/prefix/v2/a/b/blobs/sha256:" + hex64);
    CHECK(pull_scope("library/app") == "repository:library/app:pull");

    auto t = token_url("https://auth.example/token", "registry.example", "repository:library/app:pull");
    REQUIRE(t);
    CHECK(t->target() == "/token?service=registry.example&scope=repository%3Alibrary%2Fapp%3Apull");
    auto q = token_url("https://auth.example/token?x=1", "", "repository:a:pull");
    REQUIRE(q);
    CHECK(q->target() == "/token?x=1&scope=repository%3Aa%3Apull");
    auto sp = token_url("http://a/t", "svc with space&more", "s");
    REQUIRE(sp);
    CHECK(sp->query == "service=svc%20with%20space%26more&scope=s");
    CHECK_FALSE(token_url("/relative/token", "s", "s"));
    CHECK_FALSE(token_url("ftp://a/token", "s", "s"));
    CHECK_FALSE(token_url("", "s", "s"));

    CHECK_FALSE(registry_url_error("https://reg:5000"));
    CHECK_FALSE(registry_url_error("http://127.0.0.1:1/sub/path"));
    CHECK(registry_url_error("https://reg/?x=1"));
    CHECK(registry_url_error("reg.example:5000"));
    CHECK(registry_url_error("https://user:pw@reg/"));
}

TEST_CASE("oci: WWW-Authenticate parsing", "[oci]") {
    using v = std::vector<challenge>;
    CHECK(parse_challenges(R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull")") ==
          v{ch("bearer", {{"realm", "https://auth.example/token"},
                          {"service", "registry.example"},
                          {"scope", "repository:a/b:pull"}})});
    CHECK(parse_challenges(R"(Basic realm="Registry Realm")") == v{ch("basic", {{"realm", "Registry Realm"}})});
    // Case-insensitive scheme and parameter names, spaces around '=' and after commas, tokens unquoted.
    CHECK(parse_challenges("BEARER  Realm = \"r\" ,  Service=svc") ==
          v{ch("bearer", {{"realm", "r"}, {"service", "svc"}})});
    // Commas and escaped quotes inside quoted strings; a scope listing two repositories.
    CHECK(parse_challenges(R"(Bearer realm="a,b",scope="repository:x:pull,push",error="say \"hi\" \\ ok")") ==
          v{ch("bearer", {{"realm", "a,b"}, {"scope", "repository:x:pull,push"}, {"error", "say \"hi\" \\ ok"}})});
    // Several challenges in one value.
    CHECK(parse_challenges(R"(Basic realm="b", Bearer realm="t",service="s")") ==
          v{ch("basic", {{"realm", "b"}}), ch("bearer", {{"realm", "t"}, {"service", "s"}})});
    CHECK(parse_challenges("Negotiate, Basic realm=x") == v{ch("negotiate", {}), ch("basic", {{"realm", "x"}})});
    // token68 forms.
    CHECK(parse_challenges("Negotiate abc+/def==") == v{ch("negotiate", {}, "abc+/def==")});
    CHECK(parse_challenges("Custom abc=, Basic realm=\"r\"") ==
          v{ch("custom", {}, "abc="), ch("basic", {{"realm", "r"}})});
    // Empty list elements are allowed.
    CHECK(parse_challenges(" , ,Basic realm=\"r\",, ") == v{ch("basic", {{"realm", "r"}})});
    // Duplicate parameters keep the first value.
    CHECK(parse_challenges(R"(Bearer realm="first", realm="second")") == v{ch("bearer", {{"realm", "first"}})});
    // Malformed: what was complete before the problem is kept, the rest dropped.
    CHECK(parse_challenges(R"(Basic realm="r", Bearer realm="unterminated)") == v{ch("basic", {{"realm", "r"}})});
    CHECK(parse_challenges(R"(Bearer realm="r" service="s")").empty());
    CHECK(parse_challenges("").empty());
    CHECK(parse_challenges("   ").empty());
    CHECK(parse_challenges("=").empty());
    CHECK(parse_challenges("\"quoted\"").empty());
    CHECK(parse_challenges("Bearer realm=").size() <= 1);
}

TEST_CASE("oci: WWW-Authenticate parser survives random input", "[oci][fuzz]") {
    // Random mixes of the characters that matter to the grammar, and truncations of valid values:
    // no crash, no hang, and every challenge it returns has a scheme.
    std::mt19937 rng(1234);
    const std::string alphabet = "aB= ,\"\\\t=rz/+_-.;:\x01\xff";
    const std::string valid = R"(Bearer realm="https://a/t",service="s",scope="repository:a:pull", Basic realm="x\"y")";
    for (int i = 0; i < 20000; ++i) {
        std::string s;
        if (i % 3 == 0) {
            s = valid.substr(0, rng() % (valid.size() + 1));
            if (!s.empty()) s[rng() % s.size()] = alphabet[rng() % alphabet.size()];
        } else {
            const std::size_t len = rng() % 48;
            for (std::size_t k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
        }
        for (const auto& c : parse_challenges(s)) CHECK_FALSE(c.scheme.empty());
    }
}

TEST_CASE("oci: token answers", "[oci]") {
    auto t = parse_token_response(R"({"token":"abc.def","expires_in":300,"issued_at":"2024-01-02T03:04:05Z"})");
    REQUIRE(t);
    CHECK(t->token == "abc.def");
    CHECK(t->expires_in == 300);
    CHECK(t->issued_at == 1704164645);
    auto a = parse_token_response(R"({"access_token":"xyz"})");
    REQUIRE(a);
    CHECK(a->token == "xyz");
    CHECK(a->expires_in == 60);
    CHECK_FALSE(a->issued_at);
    // "token" wins over "access_token"; an empty "token" falls back to "access_token".
    CHECK(parse_token_response(R"({"token":"t","access_token":"a"})")->token == "t");
    CHECK(parse_token_response(R"({"token":"","access_token":"a"})")->token == "a");
    CHECK(parse_token_response(R"({"token":"t","expires_in":0})")->expires_in == 60);
    CHECK(parse_token_response(R"({"token":"t","expires_in":-5})")->expires_in == 60);
    CHECK(parse_token_response(R"({"token":"t","expires_in":99999999})")->expires_in == 86400);

    for (const char* bad : {"", "not json", "[]", "{}", R"({"token":5})", R"({"token":""})",
                            R"({"token":"a b"})", "{\"token\":\"a\\r\\nX-Injected: 1\"}", R"({"token":"t","expires_in":"60"})",
                            R"({"token":"t","expires_in":1.5})", R"({"token":"t","issued_at":"yesterday"})",
                            R"({"token":"t","issued_at":5})"}) {
        INFO(bad);
        auto r = parse_token_response(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().find("X-Injected") == std::string::npos);  // the token is never echoed
    }
}

TEST_CASE("oci: RFC 3339 and token lifetimes", "[oci]") {
    CHECK(parse_rfc3339("1970-01-01T00:00:00Z") == 0);
    CHECK(parse_rfc3339("2024-01-02T03:04:05.123456789Z") == 1704164645);
    CHECK(parse_rfc3339("2024-01-02T05:04:05+02:00") == 1704164645);
    CHECK(parse_rfc3339("2024-01-02T01:04:05-02:00") == 1704164645);
    CHECK(parse_rfc3339("2000-02-29t12:00:00z") == 951825600);
    for (const char* bad : {"", "2024-01-02", "2024-01-02T03:04:05", "2024-13-02T03:04:05Z", "2024-01-02 03:04:05Z",
                            "2024-01-02T03:04:05.Z", "2024-01-02T03:04:05+0200", "2024-01-02T03:04:05Zjunk"}) {
        INFO(bad);
        CHECK_FALSE(parse_rfc3339(bad));
    }
    // Days that do not exist in their month (found by fuzz_rfc3339: "2024-04-31T00:00:00Z" was
    // read as May 1st).
    for (const char* bad : {"2024-04-31T00:00:00Z", "2023-02-29T12:00:00Z", "1900-02-29T00:00:00Z",
                            "2024-02-30T00:00:00Z", "2024-06-31T00:00:00Z", "2024-01-00T00:00:00Z"}) {
        INFO(bad);
        CHECK_FALSE(parse_rfc3339(bad));
    }
    CHECK(parse_rfc3339("2024-02-29T00:00:00Z") == 1709164800);
    CHECK(parse_rfc3339("2024-12-31T23:59:59Z") == 1735689599);
    CHECK(parse_rfc3339("2016-12-31T23:59:60Z") == 1483228800);  // a leap second: the next one
    using ms = std::chrono::milliseconds;
    token_response t;
    t.expires_in = 300;
    CHECK(token_cache_time(t, 1000) == ms(290'000));  // margin capped at 10 s
    t.expires_in = 1;
    CHECK(token_cache_time(t, 1000) == ms(750));  // a quarter of a short lifetime
    t.expires_in = 300;
    t.issued_at = 900;  // 100 s old on arrival
    CHECK(token_cache_time(t, 1000) == ms(190'000));
    t.issued_at = 100;  // older than its lifetime: the clocks disagree; the age is ignored
    CHECK(token_cache_time(t, 1000) == ms(290'000));
    t.issued_at = 5000;  // in the future: likewise
    CHECK(token_cache_time(t, 1000) == ms(290'000));
}

TEST_CASE("oci: base64 and Basic credentials", "[oci]") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foob") == "Zm9vYg==");
    CHECK(base64_encode(std::string("\xff\x00\xfe", 3)) == "/wD+");
    CHECK(basic_authorization({"Aladdin", "open sesame"}) == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    for (const std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "user:p@ss:w0rd"}) {
        CHECK(base64_decode(base64_encode(s)) == s);
    }
    CHECK(base64_decode("Zm9vYg") == "foob");  // padding optional
    CHECK_FALSE(base64_decode("Zm9v Yg=="));
    CHECK_FALSE(base64_decode("Z"));
    CHECK_FALSE(base64_decode("Zm9v*"));
}

TEST_CASE("oci: docker auth files", "[oci]") {
    auto r = parse_auth_file(R"({
      "auths": {
        "reg.example:5000": {"auth": "dTE6cDE="},
        "https://Mirror.Example/v1/": {"username": "u2", "password": "p:2"},
        "tokens.example": {"identitytoken": "xyz"},
        "empty.example": {"auth": ""}
      },
      "credsStore": "desktop",
      "HttpHeaders": {"X": "y"}
    })");
    REQUIRE(r);
    CHECK(r->size() == 2);
    CHECK(r->at("reg.example:5000") == credentials{"u1", "p1"});
    CHECK(r->at("mirror.example") == credentials{"u2", "p:2"});
    CHECK(credentials_for(*r, url_of("https://reg.example:5000")) == credentials{"u1", "p1"});
    CHECK_FALSE(credentials_for(*r, url_of("https://reg.example")));
    CHECK(credentials_for(*r, url_of("https://mirror.example/x")) == credentials{"u2", "p:2"});
    CHECK_FALSE(credentials_for(*r, url_of("https://mirror.example:8443")));
    // A default port spelled out in the file matches the URL without it, and the other way round.
    auto p = parse_auth_file(R"({"auths":{"a.example:443":{"auth":"dTE6cDE="},"[::1]:5000":{"auth":"dTE6cDE="}}})");
    REQUIRE(p);
    CHECK(credentials_for(*p, url_of("https://a.example/")));
    CHECK(credentials_for(*p, url_of("http://[::1]:5000/")));
    CHECK(parse_auth_file("{}")->empty());

    for (const char* bad : {"", "[]", R"({"auths":[]})", R"({"auths":{"h":"x"}})", R"({"auths":{"h":{"auth":5}}})",
                            R"({"auths":{"h":{"auth":"!!!"}}})", R"({"auths":{"h":{"auth":"bm9jb2xvbg=="}}})",
                            R"({"auths":{"h":{"username":"u"}}})", R"({"auths":{"h":{"username":"u","password":5}}})",
                            R"({"auths":{"h":{"username":"a:b","password":"SECRETPW"}}})"}) {
        INFO(bad);
        auto e = parse_auth_file(bad);
        REQUIRE_FALSE(e);
        CHECK(e.error().find("SECRETPW") == std::string::npos);
    }
}

TEST_CASE("oci sources: config defaults and every key", "[config][oci]") {
    auto c = sources::parse_config(doc_with(oci_min()).dump());
    REQUIRE(c);
    REQUIRE(c->sources[0].as<sources::oci_settings>());
    const auto& o = *c->sources[0].as<sources::oci_settings>();
    CHECK(o.registry == "https://reg.example:5000");
    CHECK(o.repository == "library/app");
    CHECK(o.mirrors.empty());
    CHECK(o.username.empty());
    CHECK(o.auth_file.empty());
    CHECK(o.net.timeout_ms == 30000);
    CHECK(o.net.retries == 3);
    CHECK(o.net.max_connections == 4);
    CHECK_FALSE(o.net.insecure);

    json full = oci_min();
    full["mirrors"] = {"https://m1.example", "http://127.0.0.1:9000/sub"};
    full["username"] = "user";
    full["password"] = "s3cret";
    full["ca_file"] = "/etc/ca.pem";
    full["insecure"] = true;
    full["timeout_ms"] = 1000;
    full["retries"] = 0;
    full["max_connections"] = 2;
    auto f = sources::parse_config(doc_with(full).dump());
    REQUIRE(f);
    REQUIRE(f->sources[0].as<sources::oci_settings>());
    const auto& g = *f->sources[0].as<sources::oci_settings>();
    CHECK(g.mirrors == std::vector<std::string>{"https://m1.example", "http://127.0.0.1:9000/sub"});
    CHECK(g.username == "user");
    CHECK(g.password == "s3cret");
    CHECK(g.net.ca_file == "/etc/ca.pem");
    CHECK(g.net.insecure);
    CHECK(g.net.timeout_ms == 1000);
    CHECK(g.net.retries == 0);
    CHECK(g.net.max_connections == 2);

    // to_json: every key, the password redacted.
    const json out = cfg::to_json(*f)["sources"][0];
    CHECK(out["password"] == "***");
    CHECK(out["username"] == "user");
    CHECK(out.dump().find("s3cret") == std::string::npos);
    CHECK(out["mirrors"] == full["mirrors"]);
    const json min_out = cfg::to_json(*c)["sources"][0];
    CHECK(min_out == json{{"type", "oci"},           {"registry", "https://reg.example:5000"},
                          {"repository", "library/app"}, {"mirrors", json::array()},
                          {"ca_file", ""},           {"insecure", false},
                          {"timeout_ms", 30000},     {"retries", 3},
                          {"max_connections", 4}});
    CHECK(sources::parse_config(cfg::to_json(*c).dump()));  // the output loads back

    json af = oci_min();
    af["auth_file"] = "/etc/erofs-blobd/auth.json";
    auto a = sources::parse_config(doc_with(af).dump());
    REQUIRE(a);
    REQUIRE(a->sources[0].as<sources::oci_settings>());
    CHECK(a->sources[0].as<sources::oci_settings>()->auth_file == "/etc/erofs-blobd/auth.json");
    CHECK(cfg::to_json(*a)["sources"][0]["auth_file"] == "/etc/erofs-blobd/auth.json");
}

TEST_CASE("oci sources: bad values name their path", "[config][oci]") {
    auto with = [](const char* key, json value) {
        json s = oci_min();
        s[key] = std::move(value);
        return doc_with(s);
    };
    auto without = [](const char* key) {
        json s = oci_min();
        s.erase(key);
        return doc_with(s);
    };
    require_error(without("registry"), "$.sources[0].registry", "required key missing");
    require_error(without("repository"), "$.sources[0].repository", "required key missing");
    require_error(with("registry", "reg.example"), "$.sources[0].registry", "expected an http:// or https:// URL");
    require_error(with("registry", "https://reg/?token=SECRET"), "$.sources[0].registry", "must not have a query");
    require_error(with("registry", 5), "$.sources[0].registry", "expected a string");
    require_error(with("repository", "Library/App"), "$.sources[0].repository", "invalid repository name");
    require_error(with("repository", ""), "$.sources[0].repository", "must not be empty");
    require_error(with("mirrors", "https://m"), "$.sources[0].mirrors", "expected an array of URLs");
    require_error(with("mirrors", {"https://m", "ftp://x"}), "$.sources[0].mirrors[1]", "unsupported scheme");
    require_error(with("username", "u"), "$.sources[0].password", "give both or neither");
    require_error(with("password", "SECRET"), "$.sources[0].username", "give both or neither");
    json both = oci_min();
    both["username"] = "a:b";
    both["password"] = "SECRET";
    require_error(doc_with(both), "$.sources[0].username", "without ':'");
    both["username"] = "u";
    both["password"] = 5;
    require_error(doc_with(both), "$.sources[0].password", "expected a string");
    both["password"] = "SECRET";
    both["auth_file"] = "/x.json";
    require_error(doc_with(both), "$.sources[0].auth_file", "not both");
    require_error(with("auth_file", "auth.json"), "$.sources[0].auth_file", "expected an absolute path");
    require_error(with("timeout_ms", 0), "$.sources[0].timeout_ms", "from 1 to 3600000");
    require_error(with("retries", 11), "$.sources[0].retries", "from 0 to 10");
    require_error(with("max_connections", 0), "$.sources[0].max_connections", "from 1 to 64");
    require_error(with("insecure", "no"), "$.sources[0].insecure", "expected a boolean");
    require_error(with("repo", "x"), "$.sources[0].repo", "unknown key");
    require_error(with("mirror", json::array()), "$.sources[0].mirror", "did you mean \"mirrors\"?");
    // No message ever shows a password.
    json pw = oci_min();
    pw["username"] = "u";
    pw["password"] = "SECRET";
    pw["retries"] = 99;
    const auto r = sources::parse_config(doc_with(pw).dump());
    REQUIRE_FALSE(r);
    CHECK(r.error().what().find("SECRET") == std::string::npos);
}
