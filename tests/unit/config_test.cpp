#include "config/config.hpp"
#include "config/reload.hpp"
#include "sources/kinds.hpp"

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_util.hpp"

using blobd::cfg::config;
using blobd::cfg::source;
using blobd::sources::http_settings;
using blobd::sources::local_settings;
using json = nlohmann::json;

namespace {

json one_source(const std::string& path) {
    return json::array({{{"type", "local"}, {"path", path}}});
}

json minimal() {
    return {{"cache", {{"dir", "/var/cache/blobd"}}}, {"sources", one_source("/srv/blobs")}};
}

// Every key set to a non-default value.
json full() {
    return {
        {"cache", {{"dir", "/var/cache/blobd"}, {"tag", "mytag"}, {"brun", 20}, {"bcull", 8}, {"bstop", 2}, {"frun", 10}, {"fcull", 7}, {"fstop", 3},
                   {"cull", false}, {"max_bytes", 5368709120}, {"check_interval_ms", 250}}},
        {"device", "/dev/cachefiles2"},
        {"chunk_size", 65536},
        {"sources", json::array({{{"type", "local"}, {"path", "/srv/a"}}, {{"type", "local"}, {"path", "/srv/b"}}})},
        {"domains", {{"d1", {{"sources", one_source("/srv/d1")}, {"prefetch", true}}},
                     {"fs.example", {{"sources", one_source("/srv/x")}}}}},
        {"control_socket", "/tmp/blobd.sock"},
        {"control_socket_group", "blobd-monitor"},
        {"log_level", "debug"},
        {"frontend", "fanotify"},
        {"fanotify", {{"read_ahead_kb", 256}}},
        {"prefetch", false},
        {"prefetch_concurrency", 3},
        {"failure_ttl_ms", 500},
        {"read_deadline_ms", 5000},
        {"breaker", {{"failures", 5}, {"backoff_ms", 500}, {"max_backoff_ms", 4000}}},
        {"metrics", {{"listen", "127.0.0.1:9477"}}},
        {"store", {{"enabled", true}, {"dir", "/srv/store"}, {"verify", false}, {"max_bytes", 10737418240}}},
    };
}

json with(json doc, const std::string& pointer, json value) {
    doc[json::json_pointer(pointer)] = std::move(value);
    return doc;
}

json without(json doc, const std::string& pointer) {
    const json::json_pointer p(pointer);
    doc[p.parent_pointer()].erase(p.back());
    return doc;
}

config parse_ok(const std::string& text) {
    INFO("document: " << text);
    auto r = blobd::sources::parse_config(text);
    if (!r) {
        FAIL("unexpected error: " << r.error().what());
    }
    return std::move(r).value();
}

void require_error(const std::string& text, const std::string& path, const std::string& fragment) {
    INFO("document: " << text);
    const auto r = blobd::sources::parse_config(text);
    REQUIRE_FALSE(r.has_value());
    INFO("error: " << r.error().what());
    CHECK(r.error().path == path);
    CHECK_THAT(r.error().message, Catch::Contains(fragment));
}

std::vector<std::string> paths(const std::vector<source>& sources) {
    std::vector<std::string> out;
    for (const source& s : sources) {
        REQUIRE(s.as<local_settings>());
        out.push_back(s.as<local_settings>()->path);
    }
    return out;
}

bool same(const config& a, const config& b) {
    if (a.domains.size() != b.domains.size()) {
        return false;
    }
    for (const auto& [name, d] : a.domains) {
        const auto it = b.domains.find(name);
        if (it == b.domains.end() || it->second.sources != d.sources) {
            return false;
        }
    }
    return a.cache_dir == b.cache_dir && a.cache_tag == b.cache_tag && a.device == b.device &&
           a.chunk_size == b.chunk_size && a.sources == b.sources && a.control_socket == b.control_socket &&
           a.control_socket_group == b.control_socket_group &&
           a.log_level == b.log_level && a.frontend == b.frontend && a.store.use == b.store.use && a.store.dir == b.store.dir &&
           a.store.verify == b.store.verify && a.store.max_bytes == b.store.max_bytes &&
           a.failure_ttl_ms == b.failure_ttl_ms && a.read_deadline_ms == b.read_deadline_ms && a.breaker == b.breaker &&
           a.cache_blocks == b.cache_blocks && a.cache_files == b.cache_files && a.cache_cull == b.cache_cull &&
           a.cache_max_bytes == b.cache_max_bytes && a.cache_check_interval_ms == b.cache_check_interval_ms &&
           a.metrics_listen == b.metrics_listen && a.fanotify == b.fanotify;
}

// The checkout root (from CMake), so the shipped configs can be loaded wherever the test binary
// runs. Not __FILE__: with ccache's base_dir the compiler sees a path relative to the build dir.
std::string source_root() { return std::string(BLOBD_SOURCE_DIR) + "/"; }

struct temp_file {
    std::string path;
    explicit temp_file(const std::string& content) {
        char name[] = "/tmp/config_test.XXXXXX";
        const int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = name;
        std::ofstream(path) << content;
    }
    ~temp_file() { ::unlink(path.c_str()); }
};

struct error_case {
    std::string pointer;
    json value;
    std::string path;
    std::string fragment;
};

void check_cases(const json& base, const std::vector<error_case>& cases) {
    for (const error_case& c : cases) {
        require_error(with(base, c.pointer, c.value).dump(), c.path, c.fragment);
    }
}

}  // namespace

TEST_CASE("minimal config gets every default", "[config]") {
    // Description: only cache.dir and one source given; everything else takes the documented default.
    const config c = parse_ok(minimal().dump());
    CHECK(c.cache_dir == "/var/cache/blobd");
    CHECK(c.cache_tag == "erofs-blobd");
    CHECK(c.device == "/dev/cachefiles");
    CHECK(c.chunk_size == 1048576);
    CHECK(paths(c.sources) == std::vector<std::string>{"/srv/blobs"});
    CHECK(c.domains.empty());
    CHECK(c.control_socket == "/run/erofs-blobd/control.sock");
    CHECK(c.log_level == "info");
    CHECK(c.frontend == "cachefiles");
}

TEST_CASE("full config keeps every value", "[config]") {
    // Description: every key set to a non-default value is read into the struct, order preserved.
    const config c = parse_ok(full().dump());
    CHECK(c.cache_dir == "/var/cache/blobd");
    CHECK(c.cache_tag == "mytag");
    CHECK(c.device == "/dev/cachefiles2");
    CHECK(c.chunk_size == 65536);
    CHECK(paths(c.sources) == std::vector<std::string>{"/srv/a", "/srv/b"});
    REQUIRE(c.domains.size() == 2);
    CHECK(paths(c.domains.at("d1").sources) == std::vector<std::string>{"/srv/d1"});
    CHECK(paths(c.domains.at("fs.example").sources) == std::vector<std::string>{"/srv/x"});
    CHECK(c.control_socket == "/tmp/blobd.sock");
    CHECK(c.control_socket_group == "blobd-monitor");
    CHECK(c.log_level == "debug");
    CHECK(c.frontend == "fanotify");
}

TEST_CASE("accepted edge values", "[config]") {
    // Description: boundary values that must be accepted: chunk sizes at both ends, every log level,
    // an empty control_socket, a 255-byte domain name, an empty top-level list when domains exist.
    for (const std::uint64_t size : {std::uint64_t{4096}, std::uint64_t{8192}, std::uint64_t{1} << 26}) {
        CHECK(parse_ok(with(minimal(), "/chunk_size", size).dump()).chunk_size == size);
    }
    for (const char* level : {"err", "warning", "notice", "info", "debug"}) {
        CHECK(parse_ok(with(minimal(), "/log_level", level).dump()).log_level == level);
    }
    CHECK(parse_ok(with(minimal(), "/control_socket", "").dump()).control_socket.empty());
    CHECK(parse_ok(minimal().dump()).control_socket_group.empty());
    CHECK(parse_ok(with(minimal(), "/control_socket_group", "erofs-blobd").dump()).control_socket_group == "erofs-blobd");
    CHECK(parse_ok(minimal().dump()).metrics_listen.empty());
    for (const char* l : {"127.0.0.1:9477", "127.1.2.3:0", "[::1]:65535", "localhost:80", ""}) {
        CHECK(parse_ok(with(minimal(), "/metrics", {{"listen", l}}).dump()).metrics_listen == l);
    }
    for (const char* fe : {"cachefiles", "fanotify", "auto"}) {
        CHECK(parse_ok(with(minimal(), "/frontend", fe).dump()).frontend == fe);
    }
    const std::string long_name(255, 'a');
    CHECK(parse_ok(with(minimal(), "/domains/" + long_name + "/sources", one_source("/x")).dump())
              .domains.count(long_name) == 1);
    const config only_domains = parse_ok(with(with(minimal(), "/sources", json::array()), "/domains/d1/sources",
                                              one_source("/d1"))
                                             .dump());
    CHECK(only_domains.sources.empty());
    CHECK(parse_ok(with(minimal(), "/domains", json::object()).dump()).domains.empty());
    CHECK(parse_ok(with(minimal(), "/cache/dir", "/").dump()).cache_dir == "/");
}

TEST_CASE("wrong types name the path and the expected type", "[config]") {
    // Description: each key given a value of the wrong JSON type is rejected at its exact path,
    // saying what was expected and what was found.
    check_cases(full(), {
                            {"/cache", 1, "$.cache", "expected an object, got 1"},
                            {"/cache/dir", 5, "$.cache.dir", "expected a string, got 5"},
                            {"/cache/tag", true, "$.cache.tag", "expected a string, got true"},
                            {"/device", nullptr, "$.device", "expected a string, got null"},
                            {"/chunk_size", "1048576", "$.chunk_size", "expected an integer, got \"1048576\""},
                            {"/sources", json::object(), "$.sources", "expected an array, got an object"},
                            {"/sources/1", "local", "$.sources[1]", "expected an object, got \"local\""},
                            {"/sources/0/type", 1, "$.sources[0].type", "expected a string, got 1"},
                            {"/sources/0/path", json::array(), "$.sources[0].path", "expected a string, got an array"},
                            {"/domains", json::array(), "$.domains", "expected an object, got an array"},
                            {"/domains/d1", "x", "$.domains.d1", "expected an object, got \"x\""},
                            {"/domains/d1/sources", 3, "$.domains.d1.sources", "expected an array, got 3"},
                            {"/domains/d1/sources/0", json::array(), "$.domains.d1.sources[0]", "expected an object"},
                            {"/domains/d1/sources/0/path", 7, "$.domains.d1.sources[0].path",
                             "expected a string, got 7"},
                            {"/domains/fs.example/sources", false, "$.domains[\"fs.example\"].sources",
                             "expected an array, got false"},
                            {"/control_socket", false, "$.control_socket", "expected a string, got false"},
                            {"/log_level", 3, "$.log_level", "expected a string, got 3"},
                        });
}

TEST_CASE("unknown keys are rejected at every level", "[config]") {
    // Description: an unknown key at the root, in cache, in a source and in a domain is an error at
    // its own path; near-misses get a did-you-mean hint, others the list of known keys.
    check_cases(full(), {
                            {"/cahce", 1, "$.cahce", "unknown key (did you mean \"cache\"?)"},
                            {"/log-level", "info", "$.log-level", "did you mean \"log_level\"?"},
                            {"/verbose", true, "$.verbose",
                             "unknown key (known keys: cache, device, chunk_size, sources, domains, "
                             "control_socket, control_socket_group, log_level, prefetch, prefetch_concurrency, failure_ttl_ms, "
                             "read_deadline_ms, "
                             "breaker, store, frontend, fanotify, metrics)"},
                            {"/cache/dri", "/x", "$.cache.dri", "did you mean \"dir\"?"},
                            {"/cache/size", 1, "$.cache.size", "known keys: dir, tag"},
                            {"/sources/0/pth", "/x", "$.sources[0].pth", "did you mean \"path\"?"},
                            {"/sources/1/mirror", "/x", "$.sources[1].mirror", "known keys: type, path"},
                            {"/domains/d1/source", json::array(), "$.domains.d1.source", "did you mean \"sources\"?"},
                            {"/domains/d1/sources/0/x", 1, "$.domains.d1.sources[0].x", "known keys: type, path"},
                        });
    // Without "type" the key list of every source type is used, so the typo still gets its hint.
    require_error(with(minimal(), "/sources/0", {{"typ", "local"}, {"path", "/x"}}).dump(), "$.sources[0].typ",
                  "did you mean \"type\"?");
    // Domain names are user data, not keys: no suggestion machinery applies to them.
    CHECK(parse_ok(with(minimal(), "/domains/cache/sources", one_source("/x")).dump()).domains.count("cache") == 1);
}

TEST_CASE("chunk_size must be a power of two from 4 KiB to 64 MiB", "[config]") {
    // Description: zero, just below the minimum, a non-power-of-two, above the maximum, negative,
    // fractional, string and overflowing values are all rejected at $.chunk_size.
    const std::string range = "expected a power of two from 4096 (4 KiB) to 67108864 (64 MiB), got ";
    check_cases(minimal(), {
                               {"/chunk_size", 0, "$.chunk_size", range + "0"},
                               {"/chunk_size", 4095, "$.chunk_size", range + "4095"},
                               {"/chunk_size", 3 * 4096, "$.chunk_size", range + "12288"},
                               {"/chunk_size", std::uint64_t{1} << 27, "$.chunk_size", range + "134217728"},
                               {"/chunk_size", -4096, "$.chunk_size", range + "-4096"},
                               {"/chunk_size", 4096.0, "$.chunk_size", "expected an integer, got 4096.0"},
                               {"/chunk_size", 1.5, "$.chunk_size", "expected an integer, got 1.5"},
                               {"/chunk_size", "4096", "$.chunk_size", "expected an integer, got \"4096\""},
                           });
    require_error(R"({"cache":{"dir":"/c"},"sources":[],"chunk_size":18446744073709551616})", "$.chunk_size",
                  "expected an integer");
    require_error(R"({"cache":{"dir":"/c"},"sources":[],"chunk_size":1e4})", "$.chunk_size", "expected an integer");
}

TEST_CASE("bad values of the right type", "[config]") {
    // Description: relative or empty paths, control characters in paths, bad tags, unknown log levels and source types,
    // and over-long socket paths are rejected with a message saying what is expected.
    check_cases(minimal(), {
                               {"/cache/dir", "var/cache", "$.cache.dir", "expected an absolute path, got \"var/cache\""},
                               {"/cache/dir", "", "$.cache.dir", "expected an absolute path, got \"\""},
                               {"/cache/dir", std::string("/a\0b", 4), "$.cache.dir",
                                "must not contain control characters (found 0x00 at byte 2)"},
                               // The kernel would bind "/var/cache/x" and then read "bind ondemand"
                               // as a second command.
                               {"/cache/dir", "/var/cache/x\nbind ondemand", "$.cache.dir",
                                "must not contain control characters (found 0x0a at byte 12)"},
                               {"/device", "/dev/cachefiles\r", "$.device", "control characters (found 0x0d"},
                               {"/control_socket", "/run/s\x7f.sock", "$.control_socket", "found 0x7f"},
                               {"/sources/0/path", "/srv/\tblobs", "$.sources[0].path", "found 0x09"},
                               {"/store/dir", "/srv/store\n", "$.store.dir", "control characters"},
                               {"/cache/tag", "", "$.cache.tag", "non-empty name"},
                               {"/cache/tag", "my tag", "$.cache.tag", "without spaces"},
                               {"/device", "cachefiles", "$.device", "expected an absolute path"},
                               {"/sources/0/path", "", "$.sources[0].path", "expected an absolute path, got \"\""},
                               {"/sources/0/path", "blobs", "$.sources[0].path", "expected an absolute path"},
                               {"/sources/0/type", "s3", "$.sources[0].type",
                                "unknown source type \"s3\" (known types: local, http, oci)"},
                               {"/control_socket", "control.sock", "$.control_socket", "expected an absolute path"},
                               {"/control_socket_group", "a:b", "$.control_socket_group", "expected a group name"},
                               {"/control_socket_group", "-x", "$.control_socket_group", "not starting with '-'"},
                               {"/control_socket_group", std::string(33, 'g'), "$.control_socket_group",
                                "at most 32"},
                               {"/control_socket", "/" + std::string(107, 's'), "$.control_socket",
                                "too long for a unix socket path (108 bytes, at most 107)"},
                               {"/metrics/listen", "0.0.0.0:9477", "$.metrics.listen",
                                "\"0.0.0.0\" is not a loopback address"},
                               {"/metrics/listen", "[::]:9477", "$.metrics.listen", "is not a loopback address"},
                               {"/metrics/listen", "192.168.1.2:80", "$.metrics.listen", "loopback only"},
                               {"/metrics/listen", "example.com:80", "$.metrics.listen", "expected \"HOST:PORT\""},
                               {"/metrics/listen", "127.0.0.1", "$.metrics.listen", "expected \"HOST:PORT\""},
                               {"/metrics/listen", "127.0.0.1:", "$.metrics.listen", "expected \"HOST:PORT\""},
                               {"/metrics/listen", "127.0.0.1:x1", "$.metrics.listen", "expected \"HOST:PORT\""},
                               {"/metrics/listen", "127.0.0.1:65536", "$.metrics.listen", "above 65535"},
                               {"/metrics/listen", "::1:80", "$.metrics.listen", "expected \"HOST:PORT\""},
                               {"/metrics/listen", "[::1]80", "$.metrics.listen", "expected \"HOST:PORT\""},
                               {"/metrics/listen", 9477, "$.metrics.listen", "expected a string"},
                               {"/metrics/port", 1, "$.metrics.port", "unknown key"},
                               {"/log_level", "verbose", "$.log_level",
                                "expected one of err, warning, notice, info, debug, got \"verbose\""},
                               {"/log_level", "INFO", "$.log_level", "expected one of"},
                               {"/frontend", "fuse", "$.frontend",
                                "expected \"cachefiles\", \"fanotify\" or \"auto\", got \"fuse\""},
                               {"/frontend", 1, "$.frontend", "expected a string, got 1"},
                           });
}

TEST_CASE("required keys", "[config]") {
    // Description: missing cache, cache.dir, source type, source path or a domain's sources is an
    // error at the path where the key should be.
    require_error(without(minimal(), "/cache").dump(), "$.cache", "required key missing");
    require_error(with(minimal(), "/cache", json::object()).dump(), "$.cache.dir", "required key missing");
    require_error(without(minimal(), "/sources/0/type").dump(), "$.sources[0].type",
                  "required key missing (known types: local, http, oci)");
    require_error(without(minimal(), "/sources/0/path").dump(), "$.sources[0].path", "required key missing");
    require_error(with(minimal(), "/domains/d1", json::object()).dump(), "$.domains.d1.sources",
                  "required key missing");
}

TEST_CASE("bad domain names", "[config]") {
    // Description: empty names, names with '/' or control characters and names over 255 bytes are rejected; the
    // path quotes names that are not plain identifiers.
    const json d = {{"sources", one_source("/x")}};
    require_error(with(minimal(), "/domains", {{"", d}}).dump(), "$.domains[\"\"]", "must not be empty");
    require_error(with(minimal(), "/domains", {{"a/b", d}}).dump(), "$.domains[\"a/b\"]", "must not contain '/'");
    require_error(with(minimal(), "/domains", {{std::string(256, 'a'), d}}).dump(),
                  "$.domains." + std::string(256, 'a'), "256 bytes long, at most 255");
    require_error(with(minimal(), "/domains", {{std::string("a\0b", 3), d}}).dump(), "$.domains[\"a\\u0000b\"]",
                  "must not contain control characters");
    require_error(with(minimal(), "/domains", {{"a\nb", d}}).dump(), "$.domains[\"a\\nb\"]",
                  "must not contain control characters");
}

TEST_CASE("empty source lists", "[config]") {
    // Description: a domain's own list must not be empty, and some source must exist overall.
    require_error(with(full(), "/domains/d1/sources", json::array()).dump(), "$.domains.d1.sources",
                  "must not be empty");
    require_error(with(minimal(), "/sources", json::array()).dump(), "$.sources", "at least one source is required");
    require_error(without(minimal(), "/sources").dump(), "$.sources", "at least one source is required");
    require_error(with(with(minimal(), "/sources", json::array()), "/domains", json::object()).dump(), "$.sources",
                  "at least one source is required");
}

TEST_CASE("root must be an object", "[config]") {
    // Description: any JSON value other than an object is rejected at "$".
    require_error("[]", "$", "expected an object, got an array");
    require_error("42", "$", "expected an object, got 42");
    require_error("\"cache\"", "$", "expected an object, got \"cache\"");
    require_error("null", "$", "expected an object, got null");
}

TEST_CASE("invalid JSON text", "[config]") {
    // Description: syntax errors are reported at "$" with the parser's position; nothing throws.
    require_error("", "$", "invalid JSON");
    require_error("{", "$", "invalid JSON: parse error at line 1, column 2");
    require_error("{\n  \"cache\": }", "$", "line 2, column 12");
    require_error(R"({"cache":{"dir":"/c"},})", "$", "invalid JSON");
    require_error("{} // comment", "$", "invalid JSON");
    require_error("{} {}", "$", "invalid JSON");
    require_error("{\"a\": \"\xff\"}", "$", "invalid JSON");
    require_error(R"({"chunk_size": 1e999})", "$", "invalid JSON");
}

TEST_CASE("duplicate keys are rejected", "[config]") {
    // Description: JSON libraries keep the last duplicate silently; the loader reports the repeated
    // key at its path instead, including inside arrays.
    require_error(R"({"log_level":"info","cache":{"dir":"/c"},"log_level":"debug"})", "$.log_level", "duplicate key");
    require_error(R"({"cache":{"dir":"/c"},"sources":[{"type":"local","path":"/a"},[1,{}],
                     {"type":"local","path":"/a","path":"/b"}]})",
                  "$.sources[2].path", "duplicate key");
    // The same key in sibling objects is fine.
    CHECK(parse_ok(R"({"cache":{"dir":"/c"},"sources":[{"type":"local","path":"/a"},{"type":"local","path":"/b"}]})")
              .sources.size() == 2);
}

TEST_CASE("load_file", "[config]") {
    // Description: a missing file, a directory or a FIFO is an error naming the file with an empty JSON path;
    // a readable file is parsed like parse() does, including its errors.
    auto missing = blobd::sources::load_config("/nonexistent/erofs-blobd.json");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().path.empty());
    CHECK(missing.error().what() == "/nonexistent/erofs-blobd.json: cannot open: No such file or directory");

    auto directory = blobd::sources::load_config("/tmp");
    REQUIRE_FALSE(directory.has_value());
    CHECK(directory.error().path.empty());
    CHECK(directory.error().message == "/tmp: not a regular file");

    // A FIFO would block the open (and so --check-config and the start) waiting for a writer.
    const blobd::test::temp_dir dir("config");
    const std::string fifo = (dir.path / "config.fifo").string();
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto pipe = blobd::sources::load_config(fifo);
    REQUIRE_FALSE(pipe.has_value());
    CHECK(pipe.error().message == fifo + ": not a regular file");

    const temp_file good(full().dump(2));
    auto loaded = blobd::sources::load_config(good.path);
    REQUIRE(loaded.has_value());
    CHECK(same(*loaded, parse_ok(full().dump())));

    const temp_file bad(with(minimal(), "/log_level", 1).dump());
    auto failed = blobd::sources::load_config(bad.path);
    REQUIRE_FALSE(failed.has_value());
    CHECK(failed.error().what() == "$.log_level: expected a string, got 1");

    const temp_file huge(std::string((1 << 20) + 1, ' '));
    auto too_big = blobd::sources::load_config(huge.path);
    REQUIRE_FALSE(too_big.has_value());
    CHECK_THAT(too_big.error().message, Catch::Contains("larger than 1 MiB"));
}

TEST_CASE("shipped configs are valid", "[config]") {
    // Description: config/example.json and packaging/config.json load and say what the docs claim.
    auto example = blobd::sources::load_config(source_root() + "config/example.json");
    INFO((example ? "" : example.error().what()));
    REQUIRE(example.has_value());
    CHECK(example->cache_dir == "/var/cache/erofs-blobd");
    CHECK(paths(example->sources) == std::vector<std::string>{"/var/lib/erofs-blobd/blobs"});
    CHECK(example->domains.size() == 1);

    auto packaged = blobd::sources::load_config(source_root() + "packaging/config.json");
    INFO((packaged ? "" : packaged.error().what()));
    REQUIRE(packaged.has_value());
    CHECK(packaged->cache_dir == "/var/cache/erofs-blobd");
    CHECK(paths(packaged->sources) == std::vector<std::string>{"/var/lib/erofs-blobd/blobs"});
    CHECK(packaged->domains.empty());
}

TEST_CASE("to_json round trip", "[config]") {
    // Description: to_json fills in every default in the same schema, and its output parses back to
    // an equal config (minimal, full, and with only domain sources and awkward domain names).
    const json minimal_out = blobd::cfg::to_json(parse_ok(minimal().dump()));
    CHECK(minimal_out == json{
                             {"cache",
                              {{"dir", "/var/cache/blobd"},
                               {"tag", "erofs-blobd"},
                               {"brun", 10},
                               {"bcull", 7},
                               {"bstop", 3},
                               {"frun", 10},
                               {"fcull", 7},
                               {"fstop", 3},
                               {"cull", true},
                               {"max_bytes", 0},
                               {"check_interval_ms", 5000}}},
                             {"device", "/dev/cachefiles"},
                             {"frontend", "cachefiles"},
                             {"fanotify", {{"read_ahead_kb", 1024}}},
                             {"chunk_size", 1048576},
                             {"sources", one_source("/srv/blobs")},
                             {"domains", json::object()},
                             {"control_socket", "/run/erofs-blobd/control.sock"},
                             {"control_socket_group", ""},
                             {"log_level", "info"},
                             {"prefetch", false},
                             {"prefetch_concurrency", 2},
                             {"failure_ttl_ms", 2000},
                             {"read_deadline_ms", 6000},
                             {"breaker", {{"failures", 3}, {"backoff_ms", 1000}, {"max_backoff_ms", 10000}}},
                             {"metrics", {{"listen", ""}}},
                             {"store",
                              {{"enabled", "remote"}, {"dir", "/var/cache/blobd/blobd-store"}, {"verify", true},
                               {"max_bytes", 0}}},
                         });
    CHECK(blobd::cfg::to_json(parse_ok(full().dump())) == full());

    const json odd = with(with(with(minimal(), "/sources", json::array()), "/domains/a b.c", {{"sources", one_source("/1")}}),
                          "/control_socket", "");
    for (const json& doc : {minimal(), full(), odd}) {
        const config first = parse_ok(doc.dump());
        const config second = parse_ok(blobd::cfg::to_json(first).dump(2));
        CHECK(same(first, second));
        CHECK(blobd::cfg::to_json(second) == blobd::cfg::to_json(first));
    }
}

TEST_CASE("sources_for picks the domain's list or the default", "[config]") {
    // Description: a configured domain gets its own list, any other domain (and "") the top-level one.
    const config c = parse_ok(full().dump());
    CHECK(paths(c.sources_for("d1")) == std::vector<std::string>{"/srv/d1"});
    CHECK(paths(c.sources_for("fs.example")) == std::vector<std::string>{"/srv/x"});
    CHECK(paths(c.sources_for("other")) == std::vector<std::string>{"/srv/a", "/srv/b"});
    CHECK(paths(c.sources_for("")) == std::vector<std::string>{"/srv/a", "/srv/b"});
    CHECK(&c.sources_for("d2") == &c.sources);

    const config only_domains =
        parse_ok(with(with(minimal(), "/sources", json::array()), "/domains/d1/sources", one_source("/d1")).dump());
    CHECK(paths(only_domains.sources_for("d1")) == std::vector<std::string>{"/d1"});
    CHECK(only_domains.sources_for("d2").empty());
}

namespace {

json with_http(json source) {
    json doc = minimal();
    doc["sources"] = json::array({std::move(source)});
    return doc;
}

json http_full() {
    return {{"type", "http"},        {"url", "https://blobs.example:8443/v1/blobs?token=x"},
            {"ca_file", "/etc/ca.pem"}, {"insecure", true},
            {"timeout_ms", 1500},    {"retries", 0},
            {"max_connections", 64}};
}

// http_full() without its query string: --check-config masks a query ("?***"), so only such a URL
// prints back as it was given.
json http_full_unsigned() {
    json j = http_full();
    j["url"] = "https://blobs.example:8443/v1/blobs";
    return j;
}

}  // namespace

TEST_CASE("http sources: defaults and every key", "[config]") {
    // Description: an http source needs only its URL; every other key has the documented default,
    // and every key given is read.
    const config c = parse_ok(with_http({{"type", "http"}, {"url", "http://127.0.0.1:8080/blobs"}}).dump());
    REQUIRE(c.sources.size() == 1);
    REQUIRE(c.sources[0].as<http_settings>());
    const auto& h = *c.sources[0].as<http_settings>();
    CHECK(h.url == "http://127.0.0.1:8080/blobs");
    CHECK(h.net.ca_file.empty());
    CHECK_FALSE(h.net.insecure);
    CHECK(h.net.timeout_ms == 30000);
    CHECK(h.net.retries == 3);
    CHECK(h.net.max_connections == 4);

    const config f = parse_ok(with_http(http_full()).dump());
    REQUIRE(f.sources[0].as<http_settings>());
    CHECK(*f.sources[0].as<http_settings>() ==
          http_settings{"https://blobs.example:8443/v1/blobs?token=x", {"/etc/ca.pem", true, 1500, 0, 64, ""}});
    // Mixed lists keep their order; equal http sources compare equal (the app shares their fetcher).
    json mixed = minimal();
    mixed["sources"].push_back({{"type", "http"}, {"url", "https://[::1]/b"}, {"ca_file", ""}});
    const config m = parse_ok(mixed.dump());
    REQUIRE(m.sources.size() == 2);
    CHECK(m.sources[0].as<local_settings>());
    http_settings v6;
    v6.url = "https://[::1]/b";
    CHECK(m.sources[1] == blobd::sources::source_of(v6));
    for (const char* url : {"HTTP://host", "https://h", "http://a.b-c_d~e:1/p%20q?x=1&y", "http://h:65535"}) {
        CHECK(parse_ok(with_http({{"type", "http"}, {"url", url}}).dump()).sources.size() == 1);
    }
}

TEST_CASE("http sources: bad values name their path", "[config]") {
    // Description: a missing or unusable URL, bad numbers, a relative ca_file, a non-boolean
    // insecure and unknown keys are rejected at the exact path; URL errors do not echo the URL.
    const json base = with_http(http_full());
    const std::string url = "expected an http:// or https:// URL with a host: ";
    check_cases(base, {
                          {"/sources/0/url", 5, "$.sources[0].url", "expected a string, got 5"},
                          {"/sources/0/url", "ftp://host/x", "$.sources[0].url", url + "unsupported scheme \"ftp\""},
                          {"/sources/0/url", "/srv/blobs", "$.sources[0].url", url},
                          {"/sources/0/url", "https://", "$.sources[0].url", url + "missing host"},
                          {"/sources/0/url", "https:///path", "$.sources[0].url", url + "missing host"},
                          {"/sources/0/url", "https://user:secret@host/", "$.sources[0].url",
                           url + "credentials in the URL (user@host) are not supported"},
                          {"/sources/0/url", "https://host/p#frag", "$.sources[0].url", url + "a URL fragment"},
                          {"/sources/0/url", "https://host:0/", "$.sources[0].url", url + "invalid port \"0\""},
                          {"/sources/0/url", "https://host:65536/", "$.sources[0].url", "invalid port"},
                          {"/sources/0/url", "https://host:/", "$.sources[0].url", url + "empty port"},
                          {"/sources/0/url", "https://host/a b", "$.sources[0].url", url + "must not contain spaces"},
                          {"/sources/0/url", "https://h\u00e9st/", "$.sources[0].url", "non-ASCII"},
                          {"/sources/0/url", "https://[::1/", "$.sources[0].url", url + "unterminated IPv6"},
                          {"/sources/0/ca_file", "ca.pem", "$.sources[0].ca_file", "expected an absolute path"},
                          {"/sources/0/ca_file", false, "$.sources[0].ca_file", "expected a string, got false"},
                          {"/sources/0/insecure", "yes", "$.sources[0].insecure", "expected a boolean, got \"yes\""},
                          {"/sources/0/timeout_ms", 0, "$.sources[0].timeout_ms",
                           "expected an integer from 1 to 3600000, got 0"},
                          {"/sources/0/timeout_ms", 3600001, "$.sources[0].timeout_ms", "from 1 to 3600000"},
                          {"/sources/0/timeout_ms", -5, "$.sources[0].timeout_ms", "got -5"},
                          {"/sources/0/timeout_ms", 1.5, "$.sources[0].timeout_ms", "expected an integer, got 1.5"},
                          {"/sources/0/timeout_ms", "30", "$.sources[0].timeout_ms", "expected an integer"},
                          {"/sources/0/retries", 11, "$.sources[0].retries", "expected an integer from 0 to 10, got 11"},
                          {"/sources/0/max_connections", 0, "$.sources[0].max_connections",
                           "expected an integer from 1 to 64, got 0"},
                          {"/sources/0/max_connections", 65, "$.sources[0].max_connections", "from 1 to 64"},
                          {"/sources/0/urll", "http://h", "$.sources[0].urll", "did you mean \"url\"?"},
                          {"/sources/0/path", "/x", "$.sources[0].path",
                           "known keys: type, url, ca_file, insecure, timeout_ms, retries, max_connections"},
                      });
    // The query string (which may carry a token) never appears in an error.
    const auto r = blobd::sources::parse_config(with(base, "/sources/0/url", "https://host/a b?token=SECRET").dump());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().what().find("SECRET") == std::string::npos);
    require_error(without(base, "/sources/0/url").dump(), "$.sources[0].url", "required key missing");
    // Without a type, keys of every source type are known, so typos still get their hint.
    require_error(with_http({{"ulr", "http://h"}}).dump(), "$.sources[0].ulr", "did you mean \"url\"?");
}

TEST_CASE("http sources: to_json round trip", "[config]") {
    // Description: to_json writes every http key with its default filled in, and loads back equal.
    const config c = parse_ok(with_http({{"type", "http"}, {"url", "http://h/b"}}).dump());
    CHECK(blobd::cfg::to_json(c)["sources"] == json::array({{{"type", "http"},
                                                             {"url", "http://h/b"},
                                                             {"ca_file", ""},
                                                             {"insecure", false},
                                                             {"timeout_ms", 30000},
                                                             {"retries", 3},
                                                             {"max_connections", 4}}}));
    for (const json& doc : {with_http(http_full_unsigned()), with_http({{"type", "http"}, {"url", "http://h/b"}})}) {
        const config first = parse_ok(doc.dump());
        const config second = parse_ok(blobd::cfg::to_json(first).dump(2));
        CHECK(same(first, second));
    }
    CHECK(blobd::cfg::to_json(parse_ok(with_http(http_full_unsigned()).dump()))["sources"][0] == http_full_unsigned());
}

TEST_CASE("http sources: to_json masks the query string", "[config]") {
    // Description: a signed URL carries its secret in the query: --check-config prints "?***"
    // instead, while the loaded config keeps the whole URL for the fetcher.
    const config c = parse_ok(with_http({{"type", "http"}, {"url", "https://h/b?X-Amz-Signature=s3cr3t&e=1"}}).dump());
    const std::string printed = blobd::cfg::to_json(c).dump();
    CHECK(printed.find("s3cr3t") == std::string::npos);
    CHECK(blobd::cfg::to_json(c)["sources"][0]["url"] == "https://h/b?***");
    REQUIRE(c.sources[0].as<blobd::sources::http_settings>());
    CHECK(c.sources[0].as<blobd::sources::http_settings>()->url == "https://h/b?X-Amz-Signature=s3cr3t&e=1");
}

TEST_CASE("prefetch settings", "[config]") {
    // Description: prefetch is off by default, on globally or per domain, and its concurrency is
    // bounded; so is failure_ttl_ms (the negative cache, 2 s by default).
    CHECK_FALSE(parse_ok(minimal().dump()).prefetch_for("any"));
    auto j = full();
    const config c = parse_ok(j.dump());
    CHECK(c.prefetch_for("d1"));
    CHECK_FALSE(c.prefetch_for("fs.example"));
    CHECK(c.prefetch_concurrency == 3);
    CHECK(c.failure_ttl_ms == 500);
    CHECK(parse_ok(minimal().dump()).failure_ttl_ms == 2000);
    check_cases(full(), {
                            {"/prefetch", "yes", "$.prefetch", "expected a boolean"},
                            {"/prefetch_concurrency", 0, "$.prefetch_concurrency", "from 1 to 64"},
                            {"/prefetch_concurrency", 65, "$.prefetch_concurrency", "from 1 to 64"},
                            {"/failure_ttl_ms", 60001, "$.failure_ttl_ms", "from 0 to 60000"},
                            {"/failure_ttl_ms", "2s", "$.failure_ttl_ms", "expected an integer"},
                            {"/domains/d1/prefetch", 1, "$.domains.d1.prefetch", "expected a boolean"},
                        });
}

TEST_CASE("fanotify settings", "[config]") {
    // Description: fanotify.read_ahead_kb defaults to 1024 (the bdi readahead set after each
    // fanotify mount), 0 means the kernel's default, and it is bounded and type-checked.
    CHECK(parse_ok(minimal().dump()).fanotify.read_ahead_kb == 1024);
    CHECK(parse_ok(full().dump()).fanotify.read_ahead_kb == 256);
    CHECK(parse_ok(with(minimal(), "/fanotify", {{"read_ahead_kb", 0}}).dump()).fanotify.read_ahead_kb == 0);
    CHECK(parse_ok(with(minimal(), "/fanotify", json::object()).dump()).fanotify.read_ahead_kb == 1024);
    check_cases(full(), {
                            {"/fanotify/read_ahead_kb", 65537, "$.fanotify.read_ahead_kb", "from 0 to 65536"},
                            {"/fanotify/read_ahead_kb", "1M", "$.fanotify.read_ahead_kb", "expected an integer"},
                            {"/fanotify", 1024, "$.fanotify", "expected an object"},
                            {"/fanotify/readahead_kb", 1, "$.fanotify.readahead_kb", "did you mean \"read_ahead_kb\"?"},
                        });
}

TEST_CASE("culling limits", "[config]") {
    // Description: brun/bcull/bstop and frun/fcull/fstop default to cachefilesd's 10/7/3 %, are read
    // as percentages and must be ordered stop < cull < run < 100.
    const config d = parse_ok(minimal().dump());
    CHECK(d.cache_blocks == blobd::proto::cull_limits{10, 7, 3});
    CHECK(d.cache_files == blobd::proto::cull_limits{10, 7, 3});
    auto j = with(with(with(minimal(), "/cache/brun", 20), "/cache/bcull", 15), "/cache/fstop", 0);
    const config c = parse_ok(j.dump());
    CHECK(c.cache_blocks == blobd::proto::cull_limits{20, 15, 3});
    CHECK(c.cache_files == blobd::proto::cull_limits{10, 7, 0});
    check_cases(minimal(), {
                               {"/cache/brun", 100, "$.cache.brun", "from 0 to 99"},
                               {"/cache/bcull", "7%", "$.cache.bcull", "expected an integer"},
                               {"/cache/bcull", 10, "$.cache.bcull", "blocks limits: expected bstop < bcull < brun"},
                               {"/cache/fstop", 7, "$.cache.fcull", "files limits: expected fstop < fcull < frun"},
                           });
}

TEST_CASE("space keeper settings", "[config]") {
    // Description: cache.cull (on by default), cache.max_bytes (no budget by default) and
    // cache.check_interval_ms (5 s, 100 ms to 10 min) are read and bounded.
    const config d = parse_ok(minimal().dump());
    CHECK(d.cache_cull);
    CHECK(d.cache_max_bytes == 0);
    CHECK(d.cache_check_interval_ms == 5000);
    const config c = parse_ok(full().dump());
    CHECK_FALSE(c.cache_cull);
    CHECK(c.cache_max_bytes == 5368709120u);
    CHECK(c.cache_check_interval_ms == 250);
    check_cases(minimal(), {
                               {"/cache/cull", "yes", "$.cache.cull", "expected a boolean"},
                               {"/cache/max_bytes", -1, "$.cache.max_bytes", "0 or more"},
                               {"/cache/check_interval_ms", 99, "$.cache.check_interval_ms", "from 100 to 600000"},
                               {"/cache/check_interval_ms", 600001, "$.cache.check_interval_ms", "from 100 to 600000"},
                           });
}

TEST_CASE("fail-fast settings: read deadline and circuit breaker", "[config]") {
    // Description: read_deadline_ms (6 s by default, 0 = none) and the breaker's failures, backoff
    // and its cap are read and bounded; the cap may not be below the first backoff.
    const config d = parse_ok(minimal().dump());
    CHECK(d.read_deadline_ms == 6000);
    CHECK(d.breaker.failures == 3);
    CHECK(d.breaker.backoff_ms == 1000);
    CHECK(d.breaker.max_backoff_ms == 10000);
    const config c = parse_ok(full().dump());
    CHECK(c.read_deadline_ms == 5000);
    CHECK(c.breaker == config::breaker_config{5, 500, 4000});
    CHECK(parse_ok(with(minimal(), "/read_deadline_ms", 0).dump()).read_deadline_ms == 0);
    CHECK(parse_ok(with(minimal(), "/breaker", {{"failures", 0}}).dump()).breaker.failures == 0);
    check_cases(full(), {
                            {"/read_deadline_ms", 600001, "$.read_deadline_ms", "from 0 to 600000"},
                            {"/read_deadline_ms", -1, "$.read_deadline_ms", "from 0 to 600000"},
                            {"/breaker", 3, "$.breaker", "expected an object"},
                            {"/breaker/failure", 3, "$.breaker.failure", "did you mean \"failures\"?"},
                            {"/breaker/failures", 1001, "$.breaker.failures", "from 0 to 1000"},
                            {"/breaker/backoff_ms", 5, "$.breaker.backoff_ms", "from 10 to 600000"},
                            {"/breaker/max_backoff_ms", 100, "$.breaker.max_backoff_ms",
                             "must not be below backoff_ms (500)"},
                        });
}

TEST_CASE("store settings", "[config]") {
    // Description: the blob store is on for remote sources only by default, in <cache.dir>/blobd-store;
    // "enabled" and a domain's "store" switch it for all sources or none; the dir must stay out of
    // cachefiles' own trees; "max_bytes" limits its size (0, the default: no limit); bad values name
    // their path.
    using blobd::cfg::store_use;
    const source local = blobd::sources::source_of(local_settings{"/srv/blobs"});
    http_settings h;
    h.url = "http://example.com/b";
    const source remote = blobd::sources::source_of(h);
    const config d = parse_ok(minimal().dump());
    CHECK(d.store.use == store_use::remote);
    CHECK(d.store.dir == "/var/cache/blobd/blobd-store");
    CHECK(d.store.verify);
    CHECK(d.store.max_bytes == 0);  // no limit
    CHECK(parse_ok(with(minimal(), "/store/max_bytes", 10737418240).dump()).store.max_bytes == 10737418240);
    CHECK(blobd::cfg::is_remote(remote));
    CHECK_FALSE(blobd::cfg::is_remote(local));
    CHECK(d.store_for("any", remote));
    CHECK_FALSE(d.store_for("any", local));

    const config all = parse_ok(with(minimal(), "/store", {{"enabled", true}}).dump());
    CHECK(all.store_for("x", local));
    CHECK(all.store.dir == "/var/cache/blobd/blobd-store");
    const config off = parse_ok(with(minimal(), "/store", {{"enabled", false}}).dump());
    CHECK_FALSE(off.store_for("x", remote));

    // A domain's "store" wins over "enabled", either way.
    json doc = with(minimal(), "/store", {{"enabled", false}});
    doc = with(doc, "/domains/on", {{"sources", one_source("/a")}, {"store", true}});
    doc = with(doc, "/domains/remote", {{"sources", one_source("/a")}, {"store", "remote"}});
    doc = with(doc, "/domains/none", {{"sources", one_source("/a")}, {"store", false}});
    const config per = parse_ok(doc.dump());
    CHECK(per.store_for("on", local));
    CHECK(per.store_for("remote", remote));
    CHECK_FALSE(per.store_for("remote", local));
    CHECK_FALSE(per.store_for("none", remote));
    CHECK_FALSE(per.store_for("other", remote));
    const config back = parse_ok(blobd::cfg::to_json(per).dump());
    CHECK(blobd::cfg::to_json(back) == blobd::cfg::to_json(per));
    CHECK(blobd::cfg::to_json(per)["domains"]["remote"]["store"] == "remote");

    // Allowed: anywhere but cachefiles' own trees and the cache dir itself.
    CHECK(parse_ok(with(minimal(), "/store/dir", "/var/cache/blobd/cache-store").dump()).store.dir ==
          "/var/cache/blobd/cache-store");
    CHECK(parse_ok(with(minimal(), "/store/dir", "/var/cache").dump()).store.dir == "/var/cache");

    check_cases(minimal(), {
                               {"/store", true, "$.store", "expected an object"},
                               {"/store/enabled", "yes", "$.store.enabled", "expected true, false or \"remote\""},
                               {"/store/enabled", 1, "$.store.enabled", "expected true, false or \"remote\""},
                               {"/store/verify", "no", "$.store.verify", "expected a boolean"},
                               {"/store/dir", "rel/dir", "$.store.dir", "absolute path"},
                               {"/store/dir", 5, "$.store.dir", "expected a string"},
                               {"/store/dir", "/var/cache/blobd", "$.store.dir", "must not be the cache dir"},
                               {"/store/dir", "/var/cache/blobd/", "$.store.dir", "must not be the cache dir"},
                               {"/store/dir", "/var/cache/blobd/./", "$.store.dir", "must not be the cache dir"},
                               {"/store/dir", "/var/cache/blobd/cache", "$.store.dir", "cachefiles owns"},
                               {"/store/dir", "/var/cache/blobd/cache/x", "$.store.dir", "cachefiles owns"},
                               {"/store/dir", "/var/cache/blobd/x/../graveyard/y", "$.store.dir", "cachefiles owns"},
                               {"/store/verfy", true, "$.store.verfy", "did you mean \"verify\""},
                               {"/store/max_bytes", -1, "$.store.max_bytes", "0 or more"},
                               {"/store/max_bytes", "10G", "$.store.max_bytes", "expected an integer (bytes)"},
                               {"/store/max_bytes", 1.5, "$.store.max_bytes", "expected an integer (bytes)"},
                           });
    check_cases(with(minimal(), "/domains/d1/sources", one_source("/a")),
                {{"/domains/d1/store", "all", "$.domains.d1.store", "expected true, false or \"remote\""}});
}

namespace {

// A kind that config/ has never heard of, to show that the table it is given is all it knows.
struct fake_settings {
    std::string x;
    bool operator==(const fake_settings&) const = default;
    json to_json() const { return {{"x", x}}; }
};
constexpr std::array<std::string_view, 2> fake_keys{"type", "x"};
blobd::result<std::shared_ptr<const blobd::cfg::source_settings>, blobd::cfg::config_error> read_fake(
    const json& v, const std::string&) {
    return std::shared_ptr<const blobd::cfg::source_settings>(
        std::make_shared<const blobd::cfg::settings_of<fake_settings>>(fake_settings{v.value("x", "")}));
}
const blobd::cfg::source_kind fake_kind{"fake", fake_keys, read_fake, nullptr, true};
const std::array<const blobd::cfg::source_kind*, 1> fake_table{&fake_kind};

// A self-signed CA certificate (EC P-256), so that a good ca_file needs no openssl at test time.
constexpr const char* test_ca_pem = R"(-----BEGIN CERTIFICATE-----
MIIBgjCCASegAwIBAgIUWb/oMHynf29FfRJyUfiKzwbmKiowCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKYmxvYmQtdGVzdDAgFw0yNjEyMDEyMjI3MjFaGA8yMTI2MTEw
NzIyMjcyMVowFTETMBEGA1UEAwwKYmxvYmQtdGVzdDBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABFIRRiPnmBnl3X/GraJ4VJ+LSGrdt2idJGxl7Uo3/Qfry7ZcBKLE
wXf8UASUc2IE1tHn/K5hFMQ4LP1gmjOE+k6jUzBRMB0GA1UdDgQWBBSAw6nbri0R
7C25likTAZ2L7DefEjAfBgNVHSMEGDAWgBSAw6nbri0R7C25likTAZ2L7DefEjAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCEViKM/CVdcNrjraZx
5m8eNc9fI8j1pRCi+l0TIiRd5AIhAKmZStSgzPxmTpGebvfqZSQ1p8FUpkuouCMr
FoAMR5mA
-----END CERTIFICATE-----
)";

json oci_source_json(const std::string& auth_file) {
    return {{"type", "oci"}, {"registry", "https://reg.example"}, {"repository", "app"}, {"auth_file", auth_file}};
}

}  // namespace

TEST_CASE("the table of kinds drives source parsing", "[config]") {
    // Description: config/ knows only the kinds it is handed: the daemon's table lists local, http
    // and oci in that order; with another table, "known types" and the accepted types follow it.
    std::vector<std::string_view> types;
    for (const auto* k : blobd::sources::kinds()) types.push_back(k->type);
    CHECK(types == std::vector<std::string_view>{"local", "http", "oci"});
    REQUIRE(blobd::sources::config_kinds().size() == blobd::sources::kinds().size());

    const auto r = blobd::cfg::parse(minimal().dump(), fake_table);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().what() == "$.sources[0].type: unknown source type \"local\" (known types: fake)");
    const auto missing = blobd::cfg::parse(with(minimal(), "/sources/0", {{"x", "1"}}).dump(), fake_table);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().what() == "$.sources[0].type: required key missing (known types: fake)");
    // The kind's key list is checked before its reader runs.
    const auto key = blobd::cfg::parse(with(minimal(), "/sources/0", {{"type", "fake"}, {"xx", 1}}).dump(), fake_table);
    REQUIRE_FALSE(key.has_value());
    CHECK(key.error().what() == "$.sources[0].xx: unknown key (did you mean \"x\"?)");

    const auto ok = blobd::cfg::parse(with(minimal(), "/sources/0", {{"type", "fake"}, {"x", "v"}}).dump(), fake_table);
    REQUIRE(ok.has_value());
    REQUIRE(ok->sources.size() == 1);
    CHECK(&ok->sources[0].kind() == &fake_kind);
    CHECK(ok->sources[0].as<fake_settings>()->x == "v");
    CHECK(ok->sources[0].as<local_settings>() == nullptr);
    CHECK(blobd::cfg::is_remote(ok->sources[0]));
    CHECK(ok->sources[0].to_json() == json{{"type", "fake"}, {"x", "v"}});
    CHECK_FALSE(blobd::cfg::check_files(*ok));  // a kind without a file check
    // A source read with another table is no kind of the daemon's: make_source would refuse it.
    CHECK(blobd::sources::kind_of(ok->sources[0]) == nullptr);
}

TEST_CASE("every kind round-trips through to_json", "[config]") {
    // Description: for each kind, a source's to_json (type included, defaults filled in) parses
    // back to an equal source; sources of different kinds or settings are not equal.
    const std::vector<json> docs{
        {{"type", "local"}, {"path", "/srv/blobs"}},
        {{"type", "http"}, {"url", "http://h/b"}},
        http_full_unsigned(),
        {{"type", "oci"}, {"registry", "https://reg.example"}, {"repository", "app"}},
        {{"type", "oci"},
         {"registry", "https://reg.example"},
         {"repository", "library/app"},
         {"mirrors", {"https://m.example"}},
         {"auth_file", "/etc/auth.json"},
         {"ca_file", "/etc/ca.pem"},
         {"insecure", true},
         {"timeout_ms", 5},
         {"retries", 1},
         {"max_connections", 2}},
    };
    std::vector<source> read;
    for (const json& doc : docs) {
        INFO(doc.dump());
        const config first = parse_ok(with_http(doc).dump());
        const json out = first.sources[0].to_json();
        CHECK(out.value("type", json()) == doc.at("type"));
        for (auto it = doc.begin(); it != doc.end(); ++it) CHECK(out.value(it.key(), json()) == it.value());
        const config second = parse_ok(with_http(out).dump());
        CHECK(second.sources[0] == first.sources[0]);
        CHECK(second.sources[0].to_json() == out);
        CHECK(blobd::sources::kind_of(first.sources[0]) != nullptr);
        read.push_back(first.sources[0]);
    }
    for (std::size_t i = 0; i < read.size(); ++i) {
        for (std::size_t j = 0; j < read.size(); ++j) CHECK((read[i] == read[j]) == (i == j));
    }
    // Built in code, a source equals the same source read from JSON.
    CHECK(read[0] == blobd::sources::source_of(local_settings{"/srv/blobs"}));
}

TEST_CASE("load_config checks ca_file and auth_file", "[config]") {
    // Description: parse reads no file, but load_config (--check-config, the daemon's start) checks
    // every ca_file (a PEM file OpenSSL loads) and auth_file (a docker config.json): an unreadable
    // or garbage file is an error naming the key's JSON path and the file, never a secret in it.
    const blobd::test::temp_dir dir("config-files");
    auto write = [&](const std::string& name, const std::string& text) {
        const std::string p = (dir.path / name).string();
        std::ofstream(p) << text;
        return p;
    };
    const std::string good_ca = write("ca.pem", test_ca_pem);
    const std::string bad_ca = write("garbage.pem", "not a certificate\n");
    const std::string good_auth = write("auth.json", R"({"auths":{"reg.example":{"auth":"dTpw"}}})");
    const std::string bad_auth = write("bad-auth.json", R"({"auths":{"h":{"username":"a:b","password":"SECRETPW"}}})");
    const std::string missing = (dir.path / "none.json").string();
    const std::string fifo = (dir.path / "ca.fifo").string();
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);

    auto load = [&](const json& doc) {
        const temp_file f(doc.dump());
        return blobd::sources::load_config(f.path);
    };
    auto require_file_error = [&](const json& doc, const std::string& path, const std::string& file) {
        INFO(doc.dump());
        CHECK(blobd::sources::parse_config(doc.dump()).has_value());  // parse alone reads no file
        const auto r = load(doc);
        REQUIRE_FALSE(r.has_value());
        INFO(r.error().what());
        CHECK(r.error().path == path);
        CHECK_THAT(r.error().message, Catch::StartsWith(file + ": "));
        CHECK(r.error().what().find("SECRETPW") == std::string::npos);
    };

    json http = {{"type", "http"}, {"url", "https://h/b"}, {"ca_file", good_ca}};
    CHECK(load(with_http(http)).has_value());
    CHECK(load(with_http(oci_source_json(good_auth))).has_value());
    require_file_error(with_http(with(http, "/ca_file", bad_ca)), "$.sources[0].ca_file", bad_ca);
    require_file_error(with_http(with(http, "/ca_file", missing)), "$.sources[0].ca_file", missing);
    require_file_error(with_http(with(http, "/ca_file", fifo)), "$.sources[0].ca_file", fifo);  // does not block
    // Checked even when insecure (which loads no CA): switching verification back on must not
    // uncover a broken file.
    require_file_error(with_http(with(with(http, "/ca_file", bad_ca), "/insecure", true)), "$.sources[0].ca_file",
                       bad_ca);
    require_file_error(with_http(oci_source_json(bad_auth)), "$.sources[0].auth_file", bad_auth);
    require_file_error(with_http(oci_source_json(missing)), "$.sources[0].auth_file", missing);
    require_file_error(with_http(with(oci_source_json(good_auth), "/ca_file", bad_ca)), "$.sources[0].ca_file",
                       bad_ca);
    // In a domain's list, and after a good source.
    json doc = with(minimal(), "/domains/d1/sources", json::array({http, oci_source_json(bad_auth)}));
    require_file_error(doc, "$.domains.d1.sources[1].auth_file", bad_auth);
}

// Description: the reload decision. Keys the bind fixed are refused (named), the rest are listed
// as changed, and an identical config is a reload with nothing to do.
TEST_CASE("reload_plan: reloadable keys change, bind-time keys are refused by name", "[config][reload]") {
    const config running = parse_ok(full().dump());
    SECTION("the same config changes nothing") {
        const auto p = blobd::cfg::reload_plan(running, parse_ok(full().dump()));
        CHECK(p.ok());
        CHECK(p.changed.empty());
    }
    SECTION("sources, domains, log level, prefetch, deadlines, breaker and store reload") {
        json j = full();
        j["sources"] = one_source("/srv/other");
        j["domains"] = {{"d9", {{"sources", one_source("/srv/d9")}}}};
        j["log_level"] = "notice";
        j["prefetch"] = true;
        j["prefetch_concurrency"] = 7;
        j["failure_ttl_ms"] = 11;
        j["read_deadline_ms"] = 1234;
        j["breaker"]["failures"] = 9;
        j["store"]["max_bytes"] = 4096;
        j["fanotify"]["read_ahead_kb"] = 512;
        const auto p = blobd::cfg::reload_plan(running, parse_ok(j.dump()));
        CHECK(p.ok());
        CHECK(p.refused.empty());
        const std::vector<std::string> want = {"sources", "domains", "log_level", "prefetch", "prefetch_concurrency",
                                               "failure_ttl_ms", "read_deadline_ms", "breaker.failures", "store.max_bytes",
                                               "fanotify.read_ahead_kb"};
        for (const auto& k : want) {
            INFO(k);
            CHECK(std::find(p.changed.begin(), p.changed.end(), k) != p.changed.end());
        }
        CHECK(p.changed.size() == want.size());
    }
    SECTION("each bind-time key is refused, named") {
        struct change {
            const char* pointer;
            json value;
            const char* key;
        };
        const std::vector<change> changes = {
            {"/cache/dir", "/var/cache/other", "cache.dir"},  {"/cache/tag", "othertag", "cache.tag"},
            {"/cache/brun", 30, "cache.brun"},                {"/cache/fstop", 1, "cache.fstop"},
            {"/cache/cull", true, "cache.cull"},              {"/cache/max_bytes", 1, "cache.max_bytes"},
            {"/device", "/dev/null", "device"},               {"/frontend", "cachefiles", "frontend"},
            {"/chunk_size", 131072, "chunk_size"},             {"/control_socket", "/tmp/x.sock", "control_socket"},
            {"/metrics/listen", "127.0.0.1:9478", "metrics.listen"},
        };
        for (const auto& c : changes) {
            INFO(c.key);
            json j = full();
            j[json::json_pointer(c.pointer)] = c.value;
            j["log_level"] = "notice";  // a reloadable change alongside does not make it pass
            const auto p = blobd::cfg::reload_plan(running, parse_ok(j.dump()));
            CHECK_FALSE(p.ok());
            CHECK(p.refused == c.key);
            CHECK_FALSE(blobd::cfg::reloadable(c.key));
        }
    }
}
