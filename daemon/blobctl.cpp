// erofs-blobctl: talks to a running erofs-blobd over its control socket.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>
#include <cstdlib>
#include <climits>
#include <algorithm>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "daemon/control/control_client.hpp"
#include "sources/kinds.hpp"

namespace {

constexpr const char* usage = R"(Usage: erofs-blobctl [--socket PATH | --config FILE] [--json] COMMAND [ARGS]
       erofs-blobctl --version | --help

Commands (read-only ones for anyone who can open the socket; mount, umount, cull and reload
only for root or the daemon's own user):
  status  a table: version, uptime, frontend, cache dir; per domain blobs, open objects, bytes
          fetched and on disk; per source health and bytes; the blob store's use
  domains one line per domain: blobs, open objects, bytes fetched, bytes on disk
  blobs [DOMAIN]
          one line per blob the daemon has open (or in flight), of DOMAIN or of all: size,
          bytes cached in this run, open objects
  stats   the daemon's counters (opens, reads, bytes fetched and written, per-source figures)
  metrics the same counters in the Prometheus text format (for node_exporter's textfile
          collector: erofs-blobctl metrics > F.tmp && mv F.tmp DIR/erofs-blobd.prom)
  ping    check that the daemon answers
  reload  make the daemon re-read its config file (as SIGHUP does): prints the keys that changed,
          or the error (a key that needs a restart, a bad config with its JSON path) and exits 1;
          on an error the daemon keeps running with the config it had
  mount [--domain D] FSID MOUNTPOINT
          ("frontend": "fanotify" only) fetch bootstrap FSID from domain D's sources (default
          domain: FSID itself), mark its blobs' cache files and mount it read-only at MOUNTPOINT;
          waits until mounted (up to --timeout), prints the error and exits 1 if it failed
  umount MOUNTPOINT
          unmount what the daemon mounted at MOUNTPOINT
  cull --domain D [--blob NAME]
          ("frontend": "cachefiles") delete domain D's cache files, or only blob NAME's, to free
          their space (what a snapshotter does when it deletes an image); files the kernel holds
          (mounted images) are kept: prints what was culled and exits 1 if any was in use
  usage --domain D
          ("frontend": "cachefiles") disk space of domain D's cache files, per blob (files of
          mounted images appear once unmounted: the kernel links them into the cache then)

Options:
  --socket PATH   the control socket (default /run/erofs-blobd/control.sock)
  --config FILE   take the control socket path from the daemon's config
  --json          print the daemon's JSON reply as it came, on one line (any command; --raw is
                  the same)
  --get KEY       print only the field KEY of the reply (for scripts); "store.hits" reaches
                  into objects
  --timeout SECS  how long to wait for the reply (default 5; mount, umount, cull, usage: 120)
  --version       print the version and exit

Exit status:
  0  the command succeeded
  1  the command failed (the daemon said why), or the command line is wrong
  2  cannot reach the daemon: no socket at the path, not a socket, or nobody listening on it
     (a stale socket left by a daemon that is gone)
  3  permission denied: the socket (run as root or as a member of control_socket_group), or a
     command that changes state from a user other than root or the daemon's
  4  the daemon did not answer within --timeout, or its answer was not JSON
)";

// Exit codes (the usage text above is their documentation).
constexpr int exit_failed = 1, exit_unreachable = 2, exit_denied = 3, exit_no_answer = 4;

std::string human_bytes(std::uint64_t n) {
    static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(n);
    std::size_t u = 0;
    while (v >= 1024 && u + 1 < std::size(units)) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    if (u == 0) {
        std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
    } else {
        std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    }
    return buf;
}

// A JSON figure as a table cell: bytes get units, null (not known) is "-".
std::string cell(const nlohmann::json& o, const char* key, bool bytes) {
    if (!o.is_object() || !o.contains(key) || o[key].is_null()) return "-";
    const auto& v = o[key];
    if (v.is_number_unsigned()) return bytes ? human_bytes(v.get<std::uint64_t>()) : std::to_string(v.get<std::uint64_t>());
    if (v.is_string()) return v.get<std::string>();
    return v.dump();
}

// Prints rows as columns, each as wide as its widest cell; the first row is the header.
void print_table(const std::vector<std::vector<std::string>>& rows, const char* indent = "") {
    std::vector<std::size_t> width;
    for (const auto& r : rows) {
        if (width.size() < r.size()) width.resize(r.size(), 0);
        for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    }
    for (const auto& r : rows) {
        std::string line = indent;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        std::printf("%s\n", line.c_str());
    }
}

std::string duration(std::uint64_t s) {
    char buf[64];
    if (s >= 86400) {
        std::snprintf(buf, sizeof buf, "%llud %02lluh %02llum", static_cast<unsigned long long>(s / 86400),
                      static_cast<unsigned long long>(s / 3600 % 24), static_cast<unsigned long long>(s / 60 % 60));
    } else {
        std::snprintf(buf, sizeof buf, "%02lluh %02llum %02llus", static_cast<unsigned long long>(s / 3600),
                      static_cast<unsigned long long>(s / 60 % 60), static_cast<unsigned long long>(s % 60));
    }
    return buf;
}

std::vector<std::vector<std::string>> domain_rows(const nlohmann::json& j) {
    std::vector<std::vector<std::string>> rows{{"DOMAIN", "BLOBS", "OPEN", "FETCHED", "ON DISK", "FILES"}};
    if (j.contains("domains") && j["domains"].is_array()) {
        for (const auto& d : j["domains"]) {
            rows.push_back({cell(d, "domain", false), cell(d, "blobs", false), cell(d, "objects_open", false),
                            cell(d, "fetched_bytes", true), cell(d, "cache_bytes", true), cell(d, "cache_files", false)});
        }
    }
    return rows;
}

void print_status(const nlohmann::json& j) {
    std::printf("erofs-blobd %s, up %s\n", cell(j, "version", false).c_str(),
                duration(j.contains("uptime_s") && j["uptime_s"].is_number_unsigned() ? j["uptime_s"].get<std::uint64_t>() : 0)
                    .c_str());
    std::vector<std::vector<std::string>> head{
        {"frontend:", cell(j, "frontend", false)},
        {"cache dir:", cell(j, "cache_dir", false)},
        {"chunk size:", cell(j, "chunk_size", true)},
        {"open:", cell(j, "objects_open", false) + " objects of " + cell(j, "blobs", false) + " blobs"},
        {"fetched:", cell(j, "bytes_fetched", true) + " into cache files, " + cell(j, "reads", false) + " reads (" +
                         cell(j, "reads_failed", false) + " failed)"}};
    if (j.contains("space") && j["space"].is_object()) {
        const auto& sp = j["space"];
        head.push_back({"cache use:", cell(sp, "cache_bytes", true) + " in " + cell(sp, "cache_files", false) + " files, " +
                                          cell(sp, "fs_free_bytes", true) + " free" +
                                          (sp.value("culling", false) ? ", culling" : "")});
    }
    print_table(head);
    std::printf("\nDomains:\n");
    auto rows = domain_rows(j);
    if (rows.size() == 1) {
        std::printf("  (none seen yet)\n");
    } else {
        print_table(rows, "  ");
    }
    std::printf("\nSources:\n");
    std::vector<std::vector<std::string>> src{{"SOURCE", "HEALTH", "BYTES", "FETCHES", "ERRORS", "STORE"}};
    if (j.contains("sources") && j["sources"].is_array()) {
        for (const auto& s : j["sources"]) {
            std::string health = cell(s, "health", false);
            if (s.contains("endpoints_cooling") && s["endpoints_cooling"].is_number_unsigned() &&
                s["endpoints_cooling"].get<std::uint64_t>() > 0) {
                health += ", " + cell(s, "endpoints_cooling", false) + " mirrors cooling down";
            }
            src.push_back({cell(s, "source", false), health, cell(s, "bytes", true), cell(s, "fetches", false),
                           cell(s, "fetch_errors", false), s.value("via_store", false) ? "yes" : "no"});
        }
    }
    if (src.size() == 1) {
        std::printf("  (none)\n");
    } else {
        print_table(src, "  ");
    }
    const auto& st = j.contains("store") && j["store"].is_object() ? j["store"] : nlohmann::json::object();
    if (st.value("enabled", false)) {
        const std::string max = cell(st, "max_bytes", false) == "0" ? "no limit" : "limit " + cell(st, "max_bytes", true);
        std::printf("\nStore: %s, %s on disk (%s), %s hits saved %s\n", cell(st, "dir", false).c_str(),
                    cell(st, "disk_bytes", true).c_str(), max.c_str(), cell(st, "hits", false).c_str(),
                    cell(st, "bytes_saved", true).c_str());
    } else {
        std::printf("\nStore: off\n");
    }
}


}  // namespace

int main(int argc, char** argv) {
    std::string socket_path = "/run/erofs-blobd/control.sock", command;
    bool raw = false;
    std::string get, domain, blob;
    std::vector<std::string> args;
    int timeout = 0;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            std::fputs(usage, stdout);
            return 0;
        } else if (a == "--version") {
            std::printf("erofs-blobctl %s\n", BLOBD_VERSION);
            return 0;
        } else if ((a == "--socket" || a == "--config") && i + 1 < argc) {
            if (a == "--socket") {
                socket_path = argv[++i];
            } else {
                // The daemon's own parse (same table of kinds), without checking the files the
                // sources name: an auth_file is usually readable by root only, and the socket path
                // does not depend on it.
                auto c = blobd::cfg::load_file(argv[++i], blobd::sources::config_kinds());
                if (!c) {
                    std::fprintf(stderr, "erofs-blobctl: %s\n", c.error().what().c_str());
                    return 1;
                }
                socket_path = c->control_socket;
            }
        } else if (a == "--get" && i + 1 < argc) {
            get = argv[++i];
        } else if (a == "--raw" || a == "--json") {
            raw = true;
        } else if (a == "--domain" && i + 1 < argc) {
            domain = argv[++i];
        } else if (a == "--blob" && i + 1 < argc) {
            blob = argv[++i];
        } else if (a == "--timeout" && i + 1 < argc) {
            timeout = std::atoi(argv[++i]);
            if (timeout <= 0) {
                std::fprintf(stderr, "erofs-blobctl: --timeout needs a positive number of seconds\n");
                return 1;
            }
        } else if (command.empty() && !a.empty() && a[0] != '-') {
            command = a;
        } else if ((command == "mount" || command == "umount" || command == "blobs") && !a.empty() && a[0] != '-') {
            args.emplace_back(a);
        } else {
            std::fprintf(stderr, "erofs-blobctl: unexpected argument '%s'\n%s", argv[i], usage);
            return 1;
        }
    }
    if (command.empty()) {
        std::fputs(usage, stderr);
        return 1;
    }
    nlohmann::json request{{"cmd", command}};
    if (command == "mount") {
        if (args.size() != 2) {
            std::fprintf(stderr, "erofs-blobctl: mount needs FSID and MOUNTPOINT\n%s", usage);
            return 1;
        }
        request["fsid"] = args[0];
        request["domain"] = domain;
        // The daemon needs the path as the kernel will see it.
        char* abs = ::realpath(args[1].c_str(), nullptr);
        request["mountpoint"] = abs ? std::string(abs) : args[1];
        std::free(abs);
    } else if (command == "umount") {
        if (args.size() != 1) {
            std::fprintf(stderr, "erofs-blobctl: umount needs MOUNTPOINT\n%s", usage);
            return 1;
        }
        char* abs = ::realpath(args[0].c_str(), nullptr);
        request["mountpoint"] = abs ? std::string(abs) : args[0];
        std::free(abs);
    } else if (command == "usage") {
        if (domain.empty()) {
            std::fprintf(stderr, "erofs-blobctl: usage needs --domain D\n%s", usage);
            return 1;
        }
        request["domain"] = domain;
    } else if (command == "cull") {
        if (domain.empty()) {
            std::fprintf(stderr, "erofs-blobctl: cull needs --domain D (and --blob NAME for one blob)\n%s", usage);
            return 1;
        }
        request["domain"] = domain;
        request["blob"] = blob;
    } else if (command == "blobs") {
        if (args.size() > 1 || (args.size() == 1 && !domain.empty())) {
            std::fprintf(stderr, "erofs-blobctl: blobs takes at most one DOMAIN\n%s", usage);
            return 1;
        }
        if (!args.empty()) domain = args[0];
        if (!domain.empty()) request["domain"] = domain;
    } else if (!domain.empty()) {
        std::fprintf(stderr, "erofs-blobctl: --domain is for mount, cull, usage and blobs\n");
        return 1;
    }
    if (!blob.empty() && command != "cull") {
        std::fprintf(stderr, "erofs-blobctl: --blob is for cull\n");
        return 1;
    }
    if (timeout == 0) timeout = command == "mount" || command == "umount" || command == "cull" || command == "usage" ? 120 : 5;
    auto answer = blobd::control::call(socket_path, request, timeout, "(try --timeout)");
    if (!answer) {
        using k = blobd::control::call_error::kind;
        const auto& e = answer.error();
        std::fprintf(stderr, "erofs-blobctl: %s\n", e.message.c_str());
        switch (e.what) {
            case k::bad_path: return exit_failed;
            case k::unreachable: return exit_unreachable;
            case k::denied: return exit_denied;
            case k::no_answer: return exit_no_answer;
        }
        return exit_failed;
    }
    const nlohmann::json& j = answer->json;
    const std::string& reply = answer->text;
    if (!get.empty()) {
        const nlohmann::json* at = &j;
        for (std::size_t pos = 0; at && pos <= get.size();) {
            const std::size_t dot = std::min(get.find('.', pos), get.size());
            const std::string key = get.substr(pos, dot - pos);
            at = at->is_object() && at->contains(key) ? &(*at)[key] : nullptr;
            pos = dot + 1;
        }
        if (!at) {
            std::fprintf(stderr, "erofs-blobctl: the reply has no field '%s'\n", get.c_str());
            return 1;
        }
        const auto& v = *at;
        std::printf("%s\n", v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
        return 0;
    }
    if (raw) {
        // As it came: the daemon's key order, not the sorted one of a re-dump.
        std::printf("%s\n", reply.c_str());
        return j.value("ok", false) ? 0 : exit_failed;
    }
    if (!j.value("ok", false) && (command == "status" || command == "domains" || command == "blobs")) {
        std::fprintf(stderr, "erofs-blobctl: %s: %s\n", command.c_str(), j.value("error", std::string("?")).c_str());
        return exit_failed;
    }
    if (command == "status") {
        print_status(j);
        return 0;
    }
    if (command == "domains") {
        print_table(domain_rows(j));
        return 0;
    }
    if (command == "blobs") {
        std::vector<std::vector<std::string>> rows{{"DOMAIN", "BLOB", "SIZE", "CACHED", "OPEN", "FETCHING"}};
        if (j.contains("blobs") && j["blobs"].is_array()) {
            for (const auto& b : j["blobs"]) {
                rows.push_back({cell(b, "domain", false), cell(b, "blob", false), cell(b, "size", true),
                                cell(b, "cached_bytes", true), cell(b, "objects_open", false), cell(b, "fetching_chunks", false)});
            }
        }
        print_table(rows);
        return 0;
    }
    if (command == "mount" || command == "umount") {
        if (j.value("ok", false)) return 0;
        std::fprintf(stderr, "erofs-blobctl: %s failed: %s\n", command.c_str(), j.value("error", std::string("?")).c_str());
        return 1;
    }
    if (command == "reload") {
        if (j.value("ok", false)) {
            std::string keys;
            for (const auto& k : j.value("changed", nlohmann::json::array())) {
                keys += (keys.empty() ? "" : ", ") + (k.is_string() ? k.get<std::string>() : k.dump());
            }
            std::printf("reloaded: %s\n", keys.empty() ? "nothing changed" : ("changed " + keys).c_str());
            return 0;
        }
        std::fprintf(stderr, "erofs-blobctl: reload refused: %s\n", j.value("error", std::string("?")).c_str());
        return exit_failed;
    }
    if (command == "cull") {
        if (j.contains("culled")) {
            std::printf("culled %s cache files (%s bytes)\n", j.value("culled", nlohmann::json()).dump().c_str(),
                        j.value("culled_bytes", nlohmann::json()).dump().c_str());
        }
        if (j.value("ok", false)) return 0;
        std::fprintf(stderr, "erofs-blobctl: cull: %s\n", j.value("error", std::string("?")).c_str());
        return 1;
    }
    if (command == "metrics") {
        if (!j.value("ok", false) || !j.contains("text") || !j["text"].is_string()) {
            std::fprintf(stderr, "erofs-blobctl: metrics: %s\n", j.value("error", std::string("no metrics in the reply")).c_str());
            return 1;
        }
        std::fputs(j["text"].get_ref<const std::string&>().c_str(), stdout);
        return 0;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return j.value("ok", false) ? 0 : exit_failed;
}
