// base/metrics: declaration tables render to the documented JSON shape and to exact Prometheus
// text; label values are escaped; the daemon's declarations clash nowhere, pass promtool (when it
// is installed) and are all listed in docs/operations.md.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "base/metrics.hpp"
#include "core/registry.hpp"
#include "daemon/app.hpp"
#include "fetchers/breaker.hpp"
#include "fetchers/cas_fetcher.hpp"
#include "fetchers/fetcher.hpp"
#include "fetchers/http/http_client.hpp"
#include "fetchers/oci/oci_fetcher.hpp"

using namespace blobd;
namespace m = blobd::metrics;

namespace {

struct demo_stats {
    std::uint64_t hits = 0, read = 0, open = 0;
};
constexpr auto demo_metrics = m::make_table(
    m::group{"", {}, ""},
    m::counter(&demo_stats::hits, "hits", "Requests served."),
    m::counter(&demo_stats::read, "read", "Bytes read.", m::unit::bytes),
    m::gauge(&demo_stats::open, "open_files", "Files open now.").json("files_open"));

constexpr double wait_bounds[] = {0.25, 1, 2.5};
constexpr std::string_view peer_labels[] = {"peer"};
struct peer_stats {
    std::uint64_t requests = 0;
    m::histogram wait{wait_bounds};
};
constexpr auto peer_metrics = m::make_table(
    m::group{"peer", peer_labels, "peers"},
    m::counter(&peer_stats::requests, "requests", "Requests sent to the peer."),
    m::histogram_of(&peer_stats::wait, "wait", "Time to the first byte.", m::unit::seconds));

struct disk_stats {
    std::uint64_t free = 0;
};
constexpr auto disk_metrics =
    m::make_table(m::group{"disk", {}, "disk"}, m::gauge(&disk_stats::free, "free", "Free space.", m::unit::bytes));

m::snapshot demo_snapshot() {
    m::snapshot s;
    s.add(demo_metrics, demo_stats{3, 4096, 2});
    peer_stats a;
    a.requests = 5;
    for (double v : {0.5, 0.25, 4.0}) a.wait.observe(v);
    s.add(peer_metrics, a, {"http://a"});
    peer_stats b;
    b.requests = 1;
    s.add(peer_metrics, b, {"we\"ird\\path\n"});
    s.add(disk_metrics, disk_stats{100});
    return s;
}

// Every table the daemon renders (daemon/app.cpp, app::snapshot), with two sources: a new table
// there belongs here too.
m::snapshot daemon_snapshot() {
    m::snapshot s;
    s.add(daemon_metrics, daemon_stats{});
    s.add(registry_metrics, registry_stats{});
    s.add(engine_metrics, engine_stats{});
    s.add(cachefiles_metrics, cachefiles_stats{});
    s.add(fanotify_metrics, fanotify_stats{});
    s.add(source_metrics, source_stats{}, {"local:/srv/blobs"});
    s.add(breaker_metrics, breaker_stats{}, {"local:/srv/blobs"});
    s.add(source_metrics, source_stats{}, {"oci:https://registry.example/library/app"});
    s.add(http_client_metrics, http_client_stats{}, {"oci:https://registry.example/library/app"});
    s.add(oci_metrics, oci_stats{}, {"oci:https://registry.example/library/app"});
    s.add(breaker_metrics, breaker_stats{}, {"oci:https://registry.example/library/app"});
    s.add(store_metrics, cas_store::stats_t{});
    s.add(keeper_metrics, keeper_stats{});
    s.add(volume_metrics, volume_usage{}, {"d1"});
    return s;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// `promtool check metrics` on `text`: its exit status, or -1 when promtool is not installed.
int promtool_check(const std::string& text, std::string& output) {
    if (std::FILE* probe = std::fopen("/usr/bin/promtool", "r")) {
        std::fclose(probe);
    } else {
        return -1;
    }
    char in_path[] = "/tmp/blobd-metrics-XXXXXX";
    const int fd = ::mkstemp(in_path);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
    const std::string cmd = std::string("/usr/bin/promtool check metrics < ") + in_path + " 2>&1";
    std::FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p);
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) output += buf;
    const int status = ::pclose(p);
    ::unlink(in_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

// Description: names are checked at compile time; these are the rules make_table applies.
TEST_CASE("metric names", "[metrics]") {
    CHECK(m::valid_name("fetch_errors"));
    CHECK(m::valid_name("x2"));
    CHECK_FALSE(m::valid_name(""));
    CHECK_FALSE(m::valid_name("Fetches"));
    CHECK_FALSE(m::valid_name("2x"));
    CHECK_FALSE(m::valid_name("a__b"));
    CHECK_FALSE(m::valid_name("trailing_"));
    CHECK_FALSE(m::valid_name("fetched_bytes"));   // the unit is the renderer's to add
    CHECK_FALSE(m::valid_name("reads_total"));
    CHECK_FALSE(m::valid_name("wait_count"));
    CHECK_FALSE(m::valid_name("with-dash"));
    CHECK(m::prometheus_name(peer_metrics.where, peer_metrics.fields[1].decl) == "erofs_blobd_peer_wait_seconds");
    CHECK(m::prometheus_name(demo_metrics.where, demo_metrics.fields[1].decl, "") == "read_bytes_total");
    CHECK(m::json_key(demo_metrics.fields[1].decl) == "read_bytes");
    CHECK(m::json_key(demo_metrics.fields[2].decl) == "files_open");
}

// Description: the JSON shape: top-level keys, an object per unlabelled group, an array of objects
// (one per label values) per labelled group, histograms as count, sum and cumulative buckets.
TEST_CASE("tables render to the documented JSON", "[metrics]") {
    const auto s = demo_snapshot();
    CHECK(m::problems(s).empty());
    CHECK(m::to_json(s).dump() ==
          R"({"hits":3,"read_bytes":4096,"files_open":2,)"
          R"("peers":[{"peer":"http://a","requests":5,"wait_seconds":{"count":3,"sum":4.75,"buckets":)"
          R"([{"le":0.25,"count":1},{"le":1.0,"count":2},{"le":2.5,"count":2}]}},)"
          R"({"peer":"we\"ird\\path\n","requests":1,"wait_seconds":{"count":0,"sum":0.0,"buckets":)"
          R"([{"le":0.25,"count":0},{"le":1.0,"count":0},{"le":2.5,"count":0}]}}],)"
          R"("disk":{"free_bytes":100}})");
}

// Description: the exact text exposition: one HELP and TYPE per family with all its samples
// together, _total on counters, unit suffixes, escaped label values, histogram series.
TEST_CASE("tables render to exact Prometheus text", "[metrics]") {
    const std::string want = R"(# HELP erofs_blobd_hits_total Requests served.
# TYPE erofs_blobd_hits_total counter
erofs_blobd_hits_total 3
# HELP erofs_blobd_read_bytes_total Bytes read.
# TYPE erofs_blobd_read_bytes_total counter
erofs_blobd_read_bytes_total 4096
# HELP erofs_blobd_open_files Files open now.
# TYPE erofs_blobd_open_files gauge
erofs_blobd_open_files 2
# HELP erofs_blobd_peer_requests_total Requests sent to the peer.
# TYPE erofs_blobd_peer_requests_total counter
erofs_blobd_peer_requests_total{peer="http://a"} 5
erofs_blobd_peer_requests_total{peer="we\"ird\\path\n"} 1
# HELP erofs_blobd_peer_wait_seconds Time to the first byte.
# TYPE erofs_blobd_peer_wait_seconds histogram
erofs_blobd_peer_wait_seconds_bucket{peer="http://a",le="0.25"} 1
erofs_blobd_peer_wait_seconds_bucket{peer="http://a",le="1"} 2
erofs_blobd_peer_wait_seconds_bucket{peer="http://a",le="2.5"} 2
erofs_blobd_peer_wait_seconds_bucket{peer="http://a",le="+Inf"} 3
erofs_blobd_peer_wait_seconds_sum{peer="http://a"} 4.75
erofs_blobd_peer_wait_seconds_count{peer="http://a"} 3
erofs_blobd_peer_wait_seconds_bucket{peer="we\"ird\\path\n",le="0.25"} 0
erofs_blobd_peer_wait_seconds_bucket{peer="we\"ird\\path\n",le="1"} 0
erofs_blobd_peer_wait_seconds_bucket{peer="we\"ird\\path\n",le="2.5"} 0
erofs_blobd_peer_wait_seconds_bucket{peer="we\"ird\\path\n",le="+Inf"} 0
erofs_blobd_peer_wait_seconds_sum{peer="we\"ird\\path\n"} 0
erofs_blobd_peer_wait_seconds_count{peer="we\"ird\\path\n"} 0
# HELP erofs_blobd_disk_free_bytes Free space.
# TYPE erofs_blobd_disk_free_bytes gauge
erofs_blobd_disk_free_bytes 100
)";
    const auto got = m::to_prometheus(demo_snapshot());
    CHECK(got == want);
    std::string out;
    const int rc = promtool_check(got, out);
    if (rc < 0) WARN("promtool not installed (apt-get install prometheus): the text was not checked by it");
    if (rc >= 0) {
        INFO(out);
        CHECK(rc == 0);
    }
}

// Description: label values escape backslash, double quote and newline, and nothing else.
TEST_CASE("label value escaping", "[metrics]") {
    CHECK(m::escape_label_value("plain:/a b\tc") == "plain:/a b\tc");
    CHECK(m::escape_label_value("a\\b") == "a\\\\b");
    CHECK(m::escape_label_value("say \"hi\"") == "say \\\"hi\\\"");
    CHECK(m::escape_label_value("two\nlines") == "two\\nlines");
    CHECK(m::escape_label_value("\\\"\n") == "\\\\\\\"\\n");
}

// Description: problems() finds what would render wrongly: a series twice, missing label values,
// a JSON key two tables both put at the top level.
TEST_CASE("problems are found", "[metrics]") {
    m::snapshot twice;
    twice.add(peer_metrics, peer_stats{}, {"a"});
    twice.add(peer_metrics, peer_stats{}, {"a"});
    CHECK_FALSE(m::problems(twice).empty());

    m::snapshot unlabelled;
    unlabelled.add(peer_metrics, peer_stats{});
    CHECK_FALSE(m::problems(unlabelled).empty());

    struct other_stats {
        std::uint64_t n = 0;
    };
    static constexpr auto clash = m::make_table(
        m::group{"other", {}, ""}, m::counter(&other_stats::n, "n", "A counter whose JSON key is taken.").json("hits"));
    m::snapshot keys;
    keys.add(demo_metrics, demo_stats{});
    keys.add(clash, other_stats{});
    const auto p = m::problems(keys);
    REQUIRE(p.size() == 1);
    CHECK(p[0].find("hits") != std::string::npos);
}

// Description: the daemon's declarations: no clash, every Prometheus family once, the JSON keys
// that scripts and tests read, valid text for promtool.
TEST_CASE("the daemon's counters are declared once", "[metrics]") {
    const auto s = daemon_snapshot();
    const auto p = m::problems(s);
    INFO((p.empty() ? std::string() : p.front()));
    CHECK(p.empty());

    const auto text = m::to_prometheus(s);
    std::set<std::string> families;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("# TYPE ", 0) != 0) continue;
        const auto name = line.substr(7, line.find(' ', 7) - 7);
        CHECK(families.insert(name).second);
    }
    CHECK(families.count("erofs_blobd_fetched_bytes_total"));
    CHECK(families.count("erofs_blobd_source_received_bytes_total"));
    CHECK(families.count("erofs_blobd_http_requests_sent_total"));
    CHECK(families.count("erofs_blobd_oci_endpoints_cooling"));

    const auto j = m::to_json(s);
    for (const char* key : {"opens", "open_failures", "closes", "objects_open", "blobs", "reads", "reads_failed",
                            "bytes_fetched", "fetch_errors", "fetch_joins", "chunks_fetched", "chunks_written",
                            "write_errors", "bad_messages", "prefetch_chunks", "upstream_bytes", "uptime_s",
                            "chunk_size", "write_waits", "writes_per_file_peak"}) {
        INFO(key);
        CHECK(j.contains(key));
    }
    REQUIRE(j["sources"].size() == 2);
    CHECK(j["sources"][0]["source"] == "local:/srv/blobs");
    CHECK(j["sources"][0].contains("bytes"));
    CHECK(j["sources"][1].contains("token_requests"));
    CHECK(j["sources"][1].contains("connections_opened"));
    for (const char* key : {"hits", "bytes_saved", "stored_bytes", "store_errors", "verified", "integrity_failures",
                            "disk_bytes", "max_bytes", "evicted_files", "evicted_bytes"}) {
        INFO(key);
        CHECK(j["store"].contains(key));
    }

    std::string out;
    const int rc = promtool_check(text, out);
    if (rc >= 0) {
        INFO(out);
        CHECK(rc == 0);
    }
}

// Description: docs/operations.md lists every counter by its JSON key and its Prometheus name.
TEST_CASE("every counter is documented", "[metrics]") {
    const std::string doc = read_file(std::string(BLOBD_SOURCE_DIR) + "/docs/operations.md");
    REQUIRE_FALSE(doc.empty());
    const auto snap = daemon_snapshot();
    for (const auto& smp : snap.samples()) {
        const auto key = "`" + m::json_key(*smp.decl) + "`";
        const auto prom = "`" + m::prometheus_name(*smp.where, *smp.decl) + "`";
        INFO(key << " " << prom);
        CHECK(doc.find(key) != std::string::npos);
        CHECK(doc.find(prom) != std::string::npos);
    }
}
