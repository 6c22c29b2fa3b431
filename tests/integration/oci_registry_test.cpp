// Integration tests of the OCI fetcher against a real docker-registry (Debian's distribution 2.8)
// with token auth: each test case starts the registry and the test token server on 127.0.0.1 with
// tests/support/registry/start.sh (fresh key, storage and logs in a temporary directory), pushes
// random blobs with push.py, runs the whole daemon over the fake kernel with a single oci source
// built from the documented JSON config, and stops the servers at its end. Without docker-registry,
// openssl or python3 the program exits 77 (skipped), or 1 when BLOBD_REQUIRE_SERVERS=1.
//
// The token server logs one JSON line per token request (tests/support/registry/token_server.py),
// which is how "one token for many chunks" is counted; the registry's access log (Apache combined
// format) gives the bytes it served per blob. One case puts a second docker-registry, a pull-through
// mirror (start.sh --mirror-of), between several daemons and the origin.
#define CATCH_CONFIG_EXTERNAL_INTERFACES  // Catch::TestEventListenerBase, for the skip check below
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "daemon/app.hpp"
#include "tests/support/fake_kernel.hpp"
#include "tests/support/forward_proxy.hpp"
#include "tests/support/test_util.hpp"
#include "sources/kinds.hpp"

using namespace blobd;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

using blobd::test::find_program;
using blobd::test::random_bytes;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * 1024;
const std::string tools = BLOBD_REGISTRY_TOOLS;  // tests/support/registry in the source tree
const std::string repository = "blobd/test";

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string quote(const std::string& s) { return "'" + s + "'"; }  // paths made here: no quotes inside

// A docker-registry + token server pair from start.sh, with `blobs` pushed (name -> bytes), for one
// test case. Users: blobd (pull), and the pusher.
struct registry_server {
    fs::path dir;
    std::map<std::string, std::string> env;
    std::map<std::string, std::string> blobs;    // hex digest -> bytes
    std::size_t tokens_after_push = 0;
    std::size_t access_lines_after_push = 0;
    static constexpr const char* password = "blobd-reader-pw";

    /// `extra_args` go to start.sh, with "{dir}" replaced by the instance's directory.
    explicit registry_server(const std::vector<std::string>& contents, std::string extra_args = "") {
        char t[] = "/tmp/blobd-registry-XXXXXX";
        REQUIRE(::mkdtemp(t));
        dir = t;
        for (auto at = extra_args.find("{dir}"); at != std::string::npos; at = extra_args.find("{dir}"))
            extra_args.replace(at, 5, dir.string());
        const std::string start = tools + "/start.sh " + quote(dir.string()) + " --user blobd:" + password +
                                  " --user pusher:push-pw " + extra_args + " >" + quote((dir / "start.out").string()) +
                                  " 2>&1";
        if (std::system(start.c_str()) != 0) {
            FAIL("start.sh failed:\n" << read_file(dir / "start.out"));
        }
        std::istringstream lines(read_file(dir / "env"));
        for (std::string line; std::getline(lines, line);) {
            const auto eq = line.find('=');
            if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
        }
        REQUIRE(env.count("REGISTRY_URL"));
        std::string files;
        for (std::size_t i = 0; i < contents.size(); ++i) {
            const fs::path f = dir / ("blob" + std::to_string(i));
            std::ofstream(f, std::ios::binary) << contents[i];
            files += " " + quote(f.string());
        }
        if (!files.empty()) {
            const fs::path out = dir / "pushed";
            const std::string push = tools + "/push.py --registry " + env["REGISTRY_URL"] + " --repository " +
                                     repository + " --user pusher --password push-pw" + files + " >" +
                                     quote(out.string()) + " 2>&1";
            if (std::system(push.c_str()) != 0) FAIL("push.py failed:\n" << read_file(out));
            std::istringstream pushed(read_file(out));
            std::size_t i = 0;
            for (std::string digest, size, path; pushed >> digest >> size >> path; ++i) {
                REQUIRE(digest.rfind("sha256:", 0) == 0);
                blobs[digest.substr(7)] = contents.at(i);
            }
            REQUIRE(blobs.size() == contents.size());
        }
        tokens_after_push = tokens_issued();
        access_lines_after_push = access_log().size();
    }
    ~registry_server() {
        const std::string stop = tools + "/stop.sh " + quote(dir.string()) + " --clean >/dev/null 2>&1";
        if (std::system(stop.c_str()) != 0) std::fprintf(stderr, "stop.sh failed for %s\n", dir.c_str());
    }

    /// Tokens the token server issued (status 200), all users.
    std::size_t tokens_issued() const { return token_requests(200); }
    std::size_t token_requests(int status) const {
        std::istringstream lines(read_file(env.at("TOKEN_LOG")));
        std::size_t n = 0;
        for (std::string line; std::getline(lines, line);) {
            auto j = nlohmann::json::parse(line);
            if (j.at("status") == status) ++n;
        }
        return n;
    }
    std::vector<std::string> access_log() const {
        std::istringstream in(read_file(env.at("REGISTRY_ACCESS_LOG")));
        std::vector<std::string> v;
        for (std::string line; std::getline(in, line);) v.push_back(line);
        return v;
    }
    /// Body bytes the registry sent for successful GETs of blob `hex` since the push.
    std::uint64_t bytes_served(const std::string& hex) const {
        const auto lines = access_log();
        const std::string target = "\"GET /v2/" + repository + "/blobs/sha256:" + hex + " ";
        std::uint64_t n = 0;
        for (std::size_t i = access_lines_after_push; i < lines.size(); ++i) {
            const auto& l = lines[i];
            const auto at = l.find(target);
            if (at == std::string::npos) continue;
            const auto q = l.find("\" ", at + 1);
            REQUIRE(q != std::string::npos);
            std::istringstream rest(l.substr(q + 2));
            int status = 0;
            std::uint64_t bytes = 0;
            rest >> status >> bytes;
            if (status == 200 || status == 206) n += bytes;
        }
        return n;
    }

    /// Successful (200/206) GETs of blob `hex` since the push, and the body bytes they carried.
    std::pair<std::size_t, std::uint64_t> blob_gets(const std::string& hex) const {
        const auto lines = access_log();
        const std::string target = "\"GET /v2/" + repository + "/blobs/sha256:" + hex + " ";
        std::size_t n = 0;
        std::uint64_t bytes = 0;
        for (std::size_t i = access_lines_after_push; i < lines.size(); ++i) {
            const auto at = lines[i].find(target);
            if (at == std::string::npos) continue;
            std::istringstream rest(lines[i].substr(lines[i].find("\" ", at + 1) + 2));
            int status = 0;
            std::uint64_t b = 0;
            rest >> status >> b;
            if (status == 200 || status == 206) ++n, bytes += b;
        }
        return {n, bytes};
    }
    /// Tokens issued to `user`.
    std::size_t tokens_for(const std::string& user) const {
        std::istringstream lines(read_file(env.at("TOKEN_LOG")));
        std::size_t n = 0;
        for (std::string line; std::getline(lines, line);) {
            auto j = nlohmann::json::parse(line);
            if (j.at("status") == 200 && j.value("user", "") == user) ++n;
        }
        return n;
    }
    /// True once this (mirror) instance holds blob `hex` complete in its filesystem storage.
    bool stores(const std::string& hex, std::uint64_t size) const {
        std::error_code ec;
        const auto p = dir / "storage/docker/registry/v2/blobs/sha256" / hex.substr(0, 2) / hex / "data";
        return fs::file_size(p, ec) == size && !ec;
    }

    /// The oci source object of the documented config format.
    nlohmann::json source(const std::string& pw = password) const {
        return {{"type", "oci"}, {"registry", env.at("REGISTRY_URL")}, {"repository", repository},
                {"username", "blobd"}, {"password", pw}, {"timeout_ms", 5000}, {"retries", 1}};
    }
};

// The daemon over the fake kernel with one config, driven from the test's thread.
struct daemon_run {
    test::fake_kernel k;
    event_loop loop;
    test::temp_dir cache{"oci-registry"};  // fresh per run: the blob store (on for oci) lives in it
    std::unique_ptr<app> daemon;

    explicit daemon_run(const nlohmann::json& source, std::uint64_t chunk_size = 256 * KiB) {
        nlohmann::json conf = {{"cache", {{"dir", cache.path.string()}}},
                               {"chunk_size", chunk_size},
                               {"sources", nlohmann::json::array({source})},
                               {"control_socket", ""}};
        auto parsed = sources::parse_config(conf.dump());
        if (!parsed) FAIL("config refused: " << parsed.error().what());
        daemon = std::make_unique<app>(loop, k.dev(), std::make_shared<const cfg::config>(std::move(*parsed)));
        REQUIRE(daemon->start());
    }
    ~daemon_run() {
        daemon->request_stop(200ms);
        run_until([&] { return daemon->finished(); });
        daemon.reset();
    }
    template <class P>
    bool run_until(P pred, std::chrono::milliseconds limit = 30s) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > end) return false;
            loop.run_once(10ms);
        }
        return true;
    }
    std::uint64_t stat(const char* key) const {
        return nlohmann::json::parse(daemon->stats_json()).at(key).get<std::uint64_t>();
    }
    /// OPENs `cookie` in domain d and waits for the copen answer.
    std::pair<std::uint32_t, std::int64_t> open(const std::string& cookie) {
        const auto obj = k.open("erofs,d", cookie);
        REQUIRE(run_until([&] { return k.copen_result(obj).has_value(); }));
        CHECK(k.copen_count_for_msg(k.last_msg_id()) <= 1);
        return {obj, *k.copen_result(obj)};
    }
};

}  // namespace

// Description: blobs pushed to a token-auth registry are read through the daemon byte for byte,
// named as bare hex and as "sha256:<hex>": the size comes from the registry, every chunk of a
// 3 MiB blob is fetched with Range (the registry sent each byte once), and one token serves all of
// them.
TEST_CASE("daemon reads blobs from docker-registry with token auth", "[registry]") {
    const std::string big = random_bytes(3 * MiB + 777, 11), small = random_bytes(100 * KiB + 1, 12);
    registry_server r({big, small});
    std::string big_hex, small_hex;
    for (const auto& [hex, data] : r.blobs) (data == big ? big_hex : small_hex) = hex;
    daemon_run d(r.source());

    auto [big_obj, big_size] = d.open(big_hex);
    REQUIRE(big_size == static_cast<std::int64_t>(big.size()));
    auto [small_obj, small_size] = d.open("sha256:" + small_hex);
    REQUIRE(small_size == static_cast<std::int64_t>(small.size()));

    // One READ per chunk, all at once: many concurrent fetches, one token.
    int reads = 0;
    for (std::uint64_t off = 0; off < big.size(); off += 256 * KiB, ++reads) d.k.read(big_obj, off, 4096);
    d.k.read(small_obj, 0, 4096);
    REQUIRE(d.run_until([&] { return d.k.completed(big_obj) == reads && d.k.completed(small_obj) == 1; }));
    CHECK(reads == 13);
    CHECK((d.k.cache_bytes(big_obj, 0, big.size()) == big));
    CHECK((d.k.cache_bytes(small_obj, 0, small.size()) == small));
    CHECK(d.k.bad_completions() == 0);
    CHECK(d.stat("reads_failed") == 0);
    CHECK(d.stat("bytes_fetched") == big.size() + small.size());
    CHECK(r.bytes_served(big_hex) == big.size());
    CHECK(r.bytes_served(small_hex) == small.size());
    CHECK(r.tokens_issued() - r.tokens_after_push == 1);
    CHECK(r.token_requests(401) == 0);

    // Reading again is served from the cache file: no request at all.
    const auto lines = r.access_log().size();
    d.k.read(big_obj, MiB, 8192);
    REQUIRE(d.run_until([&] { return d.k.completed(big_obj) == reads + 1; }));
    CHECK(r.access_log().size() == lines);
}

// Description: a wrong password: the token server refuses it (401), the OPEN is answered once with
// an error and quickly (no retry storm, no hang), and nothing is read.
TEST_CASE("wrong password fails the OPEN cleanly", "[registry]") {
    registry_server r({random_bytes(64 * KiB, 21)});
    const std::string hex = r.blobs.begin()->first;
    daemon_run d(r.source("not-the-password"));
    const auto t0 = std::chrono::steady_clock::now();
    auto [obj, size] = d.open(hex);
    CHECK(size < 0);
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
    CHECK(r.tokens_issued() == r.tokens_after_push);
    CHECK(r.token_requests(401) >= 1);
    CHECK(r.token_requests(401) <= 4);  // the refusal is final, not retried in a loop
    CHECK(r.bytes_served(hex) == 0);
    CHECK(d.k.bad_copens() == 0);
}

// Description: credentials revoked while a blob is open: the token the daemon holds stops working
// at the registry (its exp is already inside the registry's 60 s leeway) and the token server now
// refuses the password, so a READ needing the registry completes once with an error, never hangs;
// READs of chunks fetched before keep working from the cache file.
TEST_CASE("revoked credentials fail a READ, never hang it", "[registry]") {
    const std::string data = random_bytes(2 * MiB, 31);
    registry_server r({data}, "--exp-in -56 --deny-file {dir}/deny");
    const std::string hex = r.blobs.begin()->first;
    daemon_run d(r.source());
    const auto issued = std::chrono::steady_clock::now();
    auto [obj, size] = d.open(hex);
    REQUIRE(size == static_cast<std::int64_t>(data.size()));
    const auto first = d.k.read(obj, 0, 4096);
    REQUIRE(d.run_until([&] { return d.k.read_done(first); }));
    // The registry accepts the token until its exp (whole seconds, now - 56) + 60 s: at least 3 s.
    REQUIRE(std::chrono::steady_clock::now() - issued < 3s);
    CHECK((d.k.cache_bytes(obj, 0, 4096) == data.substr(0, 4096)));
    const auto tokens_before = r.tokens_issued();

    std::ofstream(r.dir / "deny") << "revoked\n";
    std::this_thread::sleep_for(6s - (std::chrono::steady_clock::now() - issued));  // now refused
    const auto t0 = std::chrono::steady_clock::now();
    const auto late = d.k.read(obj, MiB + 4096, 4096);
    REQUIRE(d.run_until([&] { return d.k.read_done(late); }, 20s));
    CHECK(std::chrono::steady_clock::now() - t0 < 15s);
    CHECK(d.k.completion_count(late) == 1);
    CHECK(d.stat("reads_failed") == 1);
    CHECK(r.tokens_issued() == tokens_before);
    CHECK(r.token_requests(401) >= 1);  // it asked for a new token and was refused
    const auto again = d.k.read(obj, 0, 4096);  // cached: no registry needed
    REQUIRE(d.run_until([&] { return d.k.read_done(again); }));
    CHECK(d.stat("reads_failed") == 1);
    CHECK(d.k.bad_completions() == 0);
}

// Description: blobs the registry does not have: a well-formed digest it never saw fails the OPEN
// (404 BLOB_UNKNOWN), and so do cookie names that are not digests, without a request for them.
TEST_CASE("a blob not in the registry fails the OPEN cleanly", "[registry]") {
    registry_server r({random_bytes(10 * KiB, 41)});
    daemon_run d(r.source());
    const std::string absent(64, 'a');
    auto [obj, size] = d.open(absent);
    CHECK(size < 0);
    for (const std::string& bad : std::vector<std::string>{"not-a-digest", "sha256:xyz", std::string(63, 'b'),
                                                          "sha512:" + std::string(128, 'c')}) {
        auto [o, s] = d.open(bad);
        CHECK(s < 0);
    }
    for (const auto& line : r.access_log()) CHECK(line.find("not-a-digest") == std::string::npos);
    CHECK(d.stat("open_failures") == 5);
    CHECK(d.k.bad_copens() == 0);
    // The daemon still works for a blob that is there.
    auto [good, good_size] = d.open(r.blobs.begin()->first);
    CHECK(good_size == static_cast<std::int64_t>(10 * KiB));
}

// Description: credentials from a docker-style auth file ({"auths": {"host:port": {"auth":
// base64(user:password)}}}) instead of username/password work the same.
TEST_CASE("credentials from a docker auth file", "[registry]") {
    const std::string data = random_bytes(300 * KiB + 5, 51);
    registry_server r({data});
    const std::string hex = r.blobs.begin()->first;
    auto b64 = [](const std::string& in) {
        static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        std::string out;
        for (std::size_t i = 0; i < in.size(); i += 3) {
            std::uint32_t v = static_cast<std::uint8_t>(in[i]) << 16;
            if (i + 1 < in.size()) v |= static_cast<std::uint8_t>(in[i + 1]) << 8;
            if (i + 2 < in.size()) v |= static_cast<std::uint8_t>(in[i + 2]);
            out += t[(v >> 18) & 63];
            out += t[(v >> 12) & 63];
            out += i + 1 < in.size() ? t[(v >> 6) & 63] : '=';
            out += i + 2 < in.size() ? t[v & 63] : '=';
        }
        return out;
    };
    const std::string hostport = r.env.at("REGISTRY_URL").substr(std::string("http://").size());
    const nlohmann::json auth = {
        {"auths", {{hostport, {{"auth", b64(std::string("blobd:") + registry_server::password)}}}}}};
    std::ofstream(r.dir / "docker-config.json") << auth.dump();
    nlohmann::json src = r.source();
    src.erase("username");
    src.erase("password");
    src["auth_file"] = (r.dir / "docker-config.json").string();
    daemon_run d(src);
    auto [obj, size] = d.open(hex);
    REQUIRE(size == static_cast<std::int64_t>(data.size()));
    const auto m = d.k.read(obj, 256 * KiB, 4096);
    REQUIRE(d.run_until([&] { return d.k.read_done(m); }));
    CHECK((d.k.cache_bytes(obj, 256 * KiB, data.size() - 256 * KiB) == data.substr(256 * KiB)));
    CHECK(d.stat("reads_failed") == 0);
    CHECK(r.tokens_issued() - r.tokens_after_push == 1);
}

// Description: several daemons behind one pull-through mirror (a second docker-registry with
// `proxy.remoteurl` = the origin, anonymous to its clients, pulling with its own origin account)
// read the same blobs byte for byte through `mirrors`, and the origin's traffic does not grow with
// the number of daemons: distribution 2.8 answers the first miss of a blob by streaming it from
// the origin to the client while a goroutine copies it from the origin into its storage (two
// whole-blob GETs at the origin; the client may get a 200 with the whole blob to its ranged GET,
// of which the daemon takes its slice); once stored, the mirror serves every range itself. Here one daemon's
// first READ takes that miss alone; after the mirror holds the blob, three daemons (the first one
// and two fresh ones) read every chunk concurrently: the origin serves nothing more, the mirror
// serves every one of those GETs, and no daemon ever asks the origin's token service.
TEST_CASE("several daemons behind a pull-through mirror: the origin serves each blob to the mirror only", "[registry][mirror]") {
    const std::string big = random_bytes(3 * MiB + 333, 61), small = random_bytes(70 * KiB + 3, 62);
    registry_server origin({big, small}, "--user mirror:mirror-pw");
    std::string big_hex, small_hex;
    for (const auto& [hex, data] : origin.blobs) (data == big ? big_hex : small_hex) = hex;
    registry_server mirror({}, "--mirror-of " + origin.env.at("REGISTRY_URL") + " --mirror-user mirror:mirror-pw");

    nlohmann::json src = origin.source();
    src["mirrors"] = {mirror.env.at("REGISTRY_URL")};
    std::vector<std::unique_ptr<daemon_run>> daemons;
    daemons.push_back(std::make_unique<daemon_run>(src));

    // The first miss of each blob, alone: one OPEN (HEAD) and one READ of its first chunk.
    for (const auto& [hex, data] : origin.blobs) {
        auto& d = *daemons[0];
        auto [obj, size] = d.open(hex);
        REQUIRE(size == static_cast<std::int64_t>(data.size()));
        const auto r = d.k.read(obj, 0, 4096);
        REQUIRE(d.run_until([&] { return d.k.read_done(r); }));
        CHECK((d.k.cache_bytes(obj, 0, std::min<std::uint64_t>(data.size(), 256 * KiB)) ==
               data.substr(0, 256 * KiB)));
        REQUIRE(d.run_until([&] { return mirror.stores(hex, data.size()); }, 20s));
    }
    std::map<std::string, std::pair<std::size_t, std::uint64_t>> warm;  // origin GETs after the misses
    for (const auto& [hex, data] : origin.blobs) {
        warm[hex] = origin.blob_gets(hex);
        // Distribution 2.8's first miss: one copy into the mirror's store, one streamed through.
        // Measured: 2, and under load sometimes 3 (a request in the window before the store
        // finished is streamed from the origin too). Whole blobs each time.
        CHECK(warm[hex].first >= 2);
        CHECK(warm[hex].first <= 3);
        CHECK(warm[hex].second == warm[hex].first * data.size());
    }
    const auto mirror_gets_before = mirror.blob_gets(big_hex).first + mirror.blob_gets(small_hex).first;

    // Three daemons, every chunk of both blobs at once, all loops driven from this thread.
    daemons.push_back(std::make_unique<daemon_run>(src));
    daemons.push_back(std::make_unique<daemon_run>(src));
    struct opened {
        daemon_run* d;
        std::uint32_t obj;
        const std::string* data;
        int reads = 0;
    };
    std::vector<opened> objs;
    for (auto& d : daemons)
        for (const auto& [hex, data] : origin.blobs) {
            auto [obj, size] = d->open(d.get() == daemons[0].get() ? hex : "sha256:" + hex);
            REQUIRE(size == static_cast<std::int64_t>(data.size()));
            objs.push_back({d.get(), obj, &data});
        }
    std::size_t expected_fetches = 0;
    for (auto& o : objs) {
        for (std::uint64_t off = 0; off < o.data->size(); off += 256 * KiB, ++o.reads) o.d->k.read(o.obj, off, 4096);
        expected_fetches += o.reads - (o.d == daemons[0].get() ? 1 : 0);  // daemon 0 has chunk 0 already
    }
    CHECK(expected_fetches == 12 + 2 * 14);  // daemon 0 has both first chunks, the small blob is one
    const auto end = std::chrono::steady_clock::now() + 60s;
    auto all_done = [&] {
        for (auto& o : objs)
            if (o.d->k.completed(o.obj) < o.reads) return false;
        return true;
    };
    while (!all_done() && std::chrono::steady_clock::now() < end)
        for (auto& d : daemons) d->loop.run_once(2ms);
    REQUIRE(all_done());
    for (auto& o : objs) CHECK((o.d->k.cache_bytes(o.obj, 0, o.data->size()) == *o.data));
    for (auto& d : daemons) {
        CHECK(d->k.bad_completions() == 0);
        CHECK(d->stat("reads_failed") == 0);
    }
    CHECK(daemons[1]->stat("bytes_fetched") == big.size() + small.size());
    CHECK(daemons[2]->stat("bytes_fetched") == big.size() + small.size());

    for (const auto& [hex, data] : origin.blobs) CHECK(origin.blob_gets(hex) == warm[hex]);  // nothing more
    const auto mirror_gets = mirror.blob_gets(big_hex).first + mirror.blob_gets(small_hex).first;
    CHECK(mirror_gets - mirror_gets_before == expected_fetches);
    CHECK(origin.tokens_for("blobd") == 0);  // the daemons' own credentials never needed
    CHECK(origin.tokens_for("mirror") >= 1);
}

// Description: an oci source with "proxy": every request of the daemon (the registry's challenge,
// the token service, the blob's HEAD and ranges) goes through the forward proxy in absolute form
// with the proxy's credentials (checked in the proxy's log: one GET per chunk, one token), and the
// bytes are exact.
TEST_CASE("an oci source through a forward proxy", "[registry][proxy]") {
    const std::string data = random_bytes(600 * KiB + 9, 71);
    registry_server r({data});
    const std::string hex = r.blobs.begin()->first;
    test::test_proxy px(BLOBD_TEST_SUPPORT, "pu:pp");
    nlohmann::json src = r.source();
    src["proxy"] = px.url("pu:pp");
    daemon_run d(src);
    auto [obj, size] = d.open(hex);
    REQUIRE(size == static_cast<std::int64_t>(data.size()));
    int reads = 0;
    for (std::uint64_t off = 0; off < data.size(); off += 256 * KiB, ++reads) d.k.read(obj, off, 4096);
    REQUIRE(d.run_until([&] { return d.k.completed(obj) == reads; }));
    CHECK((d.k.cache_bytes(obj, 0, data.size()) == data));
    CHECK(d.stat("reads_failed") == 0);
    CHECK(r.bytes_served(hex) == data.size());
    const auto log = px.log();
    std::size_t blob_gets = 0, token_gets = 0;
    for (const auto& e : log) {
        const std::string target = e.at("target");
        CHECK(e.at("proxy_authorization") == "Basic cHU6cHA=");
        CHECK((target.rfind(r.env.at("REGISTRY_URL") + "/v2/", 0) == 0 || target.rfind(r.env.at("TOKEN_URL"), 0) == 0));
        if (target.find("/blobs/sha256:" + hex) != std::string::npos && e.at("method") == "GET") ++blob_gets;
        if (target.rfind(r.env.at("TOKEN_URL"), 0) == 0) ++token_gets;
    }
    CHECK(blob_gets == static_cast<std::size_t>(reads));
    CHECK(token_gets == 1);
    CHECK(r.tokens_issued() - r.tokens_after_push == 1);
}

// Before any test runs: without the servers' programs, skip the whole program (exit 77, which
// ctest reports as skipped) unless BLOBD_REQUIRE_SERVERS=1 makes their absence a failure.
struct require_servers : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;
    void testRunStarting(const Catch::TestRunInfo&) override {
        const char* env = std::getenv("BLOBD_REQUIRE_SERVERS");
        const bool required = env && std::string(env) == "1";
        const char* reg_env = std::getenv("DOCKER_REGISTRY");
        const bool have_registry = (reg_env && ::access(reg_env, X_OK) == 0) ||
                                   !find_program("docker-registry").empty();
        for (const char* tool : {"docker-registry", "openssl", "python3"}) {
            const bool found = std::string(tool) == "docker-registry" ? have_registry : !find_program(tool).empty();
            if (!found) {
                std::fprintf(stderr, "oci_registry_tests: %s not found%s\n", tool,
                             required ? " and BLOBD_REQUIRE_SERVERS=1: failing" : ": skipping (exit 77)");
                std::fflush(stderr);
                std::exit(required ? 1 : 77);
            }
        }
    }
};
CATCH_REGISTER_LISTENER(require_servers)
