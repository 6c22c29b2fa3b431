#include "daemon/app.hpp"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/log.hpp"
#include "config/reload.hpp"
#include "daemon/control/control_access.hpp"

namespace blobd {

namespace {
const log::logger lg{"daemon"};

engine_options engine_options_from(const std::shared_ptr<const cfg::config>& c) {
    engine_options o;
    o.chunk_size = c->chunk_size;
    o.prefetch_concurrency = c->prefetch_concurrency;
    o.prefetch_for = [c](std::string_view domain) { return c->prefetch_for(domain); };
    o.writes = c->frontend == "fanotify" ? fanotify_write_policy : cachefiles_write_policy;
    o.failure_ttl = std::chrono::milliseconds(c->failure_ttl_ms);
    o.read_deadline = std::chrono::milliseconds(c->read_deadline_ms);
    return o;
}
}  // namespace

app::app(event_loop& loop, device* dev, std::shared_ptr<const cfg::config> config)
    : loop_(loop), config_(std::move(config)) {
    sources_ = std::make_unique<sources::live_sources>(loop_, std::make_unique<sources::source_set>(loop_, *config_));
    engine_options eo = engine_options_from(config_);
    eo.on_write = [this](int res) {
        if (!keeper_) return;
        if (const cas_store* st = sources_->current().store()) keeper_->set_other_bytes(st->stats().disk_bytes);
        keeper_->wrote(res > 0 ? static_cast<std::uint64_t>(res) : 0, res == -ENOBUFS || res == -ENOSPC);
    };
    eo.on_close = [this] {
        if (keeper_) keeper_->released();
    };
    engine_ = std::make_unique<engine>(loop_, *sources_, std::move(eo));
    sources_->current().on_integrity_failure([this](const std::string& name) { engine_->refetch(name); });
    if (dev) {
        frontend_ = std::make_unique<cachefiles_frontend>(loop_, *dev, *engine_);
        if (config_->cache_cull) {
            keeper_options ko;
            ko.cache_dir = config_->cache_dir;
            ko.limits = {config_->cache_blocks, config_->cache_files, config_->cache_max_bytes};
            ko.interval = std::chrono::milliseconds(config_->cache_check_interval_ms);
            // The kernel serialises commands on the device (cachefiles_daemon_write); a write from
            // the keeper's thread is as good as one from the loop.
            keeper_ = std::make_unique<space_keeper>(loop_, std::move(ko),
                                                     [dev](std::string_view cmd) { return dev->send(cmd); });
            if (const cas_store* st = sources_->current().store()) {
                // One eviction order for cache and store files (docs/operations.md, "Culling").
                // The hooks run on the loop, where the store lives; the store is the current
                // source set's at the time of the call.
                store_hooks hooks;
                hooks.dir = st->dir();
                hooks.files = [this] {
                    std::vector<store_file> out;
                    if (const cas_store* cur = sources_->current().store()) {
                        for (auto& f : cur->files()) out.push_back({std::move(f.key), f.bytes, f.used_ns, f.in_use});
                    }
                    return out;
                };
                hooks.remove = [this](std::vector<std::string> keys, std::function<void(std::uint64_t, std::uint64_t)> done) {
                    cas_store* cur = sources_->current().store();
                    if (!cur) return done(0, 0);
                    cur->remove(keys, std::move(done));
                };
                keeper_->set_store(std::move(hooks));
            }
        }
    } else {
        fanotify_ = std::make_unique<fanotify_frontend>(loop_, *engine_, config_->cache_dir);
        fanotify_->set_read_ahead_kb(config_->fanotify.read_ahead_kb);
    }
}

app::~app() {
    // Nothing may run concurrently with the teardown, nor be posted afterwards.
    if (keeper_) keeper_->stop();
    sources_->stop_network();
}

result<bool, std::string> app::start() {
    if (!config_->control_socket.empty()) {
        control_server::options co;
        co.group = config_->control_socket_group;
        auto c = control_server::listen(
            loop_, config_->control_socket,
            [this](std::string_view req, control_server::reply_fn reply) { control(req, std::move(reply)); },
            std::move(co));
        if (!c) return unexpected{c.error()};
        control_ = std::move(*c);
    }
    if (!config_->metrics_listen.empty()) {
        auto m = metrics_listener::listen(loop_, config_->metrics_listen, [this] { return metrics_text(); });
        if (!m) return unexpected{m.error()};
        metrics_ = std::move(*m);
    }
    if (frontend_) {
        frontend_->start();
        if (keeper_) {
            if (const cas_store* st = sources_->current().store()) keeper_->set_other_bytes(st->stats().disk_bytes);
            keeper_->start();
        }
    } else if (auto f = fanotify_->start(); !f) {
        return unexpected{f.error()};
    }
    const std::string sources = sources_->current().describe_default();
    lg.info("serving: chunk size {} bytes, default sources: {}", config_->chunk_size, sources.empty() ? "(none)" : sources);
    return true;
}

void app::request_stop(std::chrono::milliseconds grace) {
    if (engine_->stopping() || stop_requested_) return;
    stop_requested_ = true;
    lg.info("stopping: finishing in-flight work");
    if (control_) control_->stop();
    if (metrics_) metrics_->stop();
    if (frontend_) {
        frontend_->stop();
        engine_->request_stop(grace);
        return;
    }
    // fanotify: unmount first, still answering the events the unmounts and their readers cause;
    // only then stop the engine (and, once finished, close the group: fail-open).
    fanotify_->stop();
    stop_engine_when_unmounted(grace);
}

void app::stop_engine_when_unmounted(std::chrono::milliseconds grace) {
    if (fanotify_->idle()) return engine_->request_stop(grace);
    loop_.after(std::chrono::milliseconds(50), [this, grace] { stop_engine_when_unmounted(grace); });
}

bool app::finished() const {
    return engine_->stopping() && !engine_->busy() && loop_.inflight() == 0 && (!fanotify_ || fanotify_->idle());
}

void app::run() {
    while (!finished()) loop_.run_once(std::chrono::milliseconds(1000));
    const auto& s = engine_->stats();
    lg.info("stopped: {} opens ({} failed), {} reads ({} failed), {} bytes fetched, {} bytes written, {} fetch joins",
            s.opens, s.open_failures, s.reads, s.reads_failed, s.bytes_fetched, s.bytes_written, s.fetch_joins);
}

void app::control(std::string_view request, control_server::reply_fn reply) {
    // The control server already refused state-changing commands from untrusted peers.
    const std::string cmd = control_command(request);
    auto j = nlohmann::json::parse(request, nullptr, false);
    auto fail = [&](const std::string& why) { reply(nlohmann::json{{"ok", false}, {"error", why}}.dump()); };
    // A string member of the request: "" when absent, nullopt when not a string.
    auto str = [&](const char* key) -> std::optional<std::string> {
        if (j.is_discarded() || !j.is_object() || !j.contains(key)) return std::string();
        if (!j[key].is_string()) return std::nullopt;
        return j[key].get<std::string>();
    };
    if (cmd == "stats") return reply(stats_json());
    if (cmd == "reload") {
        if (!reloader_) return fail("reload is not available here");
        auto r = reloader_();
        if (!r) return fail(r.error());
        return reply(nlohmann::json{{"ok", true}, {"changed", r.value()}}.dump());
    }
    if (cmd == "debug-stall") {
        // Test-only (docs/operations.md): blocks the loop thread on purpose, so that a test sees
        // the watchdog pings stop and the service manager act on it.
        if (!debug_stall_) return fail("unknown command (debug-stall needs BLOBD_DEBUG_STALL=1 in the daemon's environment)");
        const double secs = !j.is_discarded() && j.is_object() && j.contains("seconds") && j["seconds"].is_number()
                                ? j["seconds"].get<double>()
                                : -1;
        if (secs < 0 || secs > 3600) return fail("\"seconds\" must be a number 0..3600");
        lg.warn("debug-stall: blocking the event loop for {} s", secs);
        reply(R"({"ok":true})");
        std::this_thread::sleep_for(std::chrono::duration<double>(secs));
        return;
    }
    if (cmd == "ping") return reply(R"({"ok":true})");
    if (cmd == "metrics") return reply(nlohmann::json{{"ok", true}, {"text", metrics_text()}}.dump());
    if (cmd == "status" || cmd == "domains" || cmd == "blobs") {
        auto domain = str("domain");
        if (!domain) return fail("\"domain\" must be a string");
        return reply(status_json(cmd, *domain));
    }
    if (cmd == "mount" || cmd == "umount") {
        if (!fanotify_) return fail(cmd + " needs \"frontend\": \"fanotify\" (with cachefiles the kernel mounts: mount -t erofs -o fsid=...)");
        auto mp = str("mountpoint");
        if (!mp || mp->empty()) return fail("\"mountpoint\" must be a non-empty string");
        auto done = [reply](result<bool, std::string> r) {
            reply(r ? std::string(R"({"ok":true})") : nlohmann::json{{"ok", false}, {"error", r.error()}}.dump());
        };
        if (cmd == "umount") return fanotify_->umount(std::move(*mp), done);
        auto fsid = str("fsid");
        auto domain = str("domain");
        if (!fsid || fsid->empty()) return fail("\"fsid\" must be a non-empty string");
        if (!domain) return fail("\"domain\" must be a string");
        return fanotify_->mount(std::move(*domain), std::move(*fsid), std::move(*mp), done);
    }
    if (cmd == "usage") {
        if (!keeper_) return fail("usage needs the cachefiles frontend with \"cache\": {\"cull\": true}");
        auto domain = str("domain");
        if (!domain || domain->empty()) return fail("\"domain\" must be a non-empty string");
        return keeper_->usage(*domain, [reply, domain = *domain](cull_report r) {
            if (!r.error.empty()) return reply(nlohmann::json{{"ok", false}, {"error", r.error}}.dump());
            nlohmann::ordered_json out{{"ok", true}, {"domain", domain}, {"cache_bytes", r.bytes},
                                       {"cache_files", r.blobs.size()}, {"blobs", nlohmann::ordered_json::array()}};
            for (const auto& b : r.blobs) {
                nlohmann::ordered_json e{{"blob", b.name}, {"cache_bytes", b.bytes}};
                if (b.encoded) e["encoded"] = true;
                out["blobs"].push_back(std::move(e));
            }
            reply(out.dump());
        });
    }
    if (cmd == "cull") {
        if (!keeper_) {
            return fail(frontend_ ? "culling is off (\"cache\": {\"cull\": false})"
                                  : "cull serves the cachefiles frontend (with fanotify, umount releases a mount's files)");
        }
        auto domain = str("domain");
        auto blob = str("blob");
        if (!domain || domain->empty()) return fail("\"domain\" must be a non-empty string");
        if (!blob) return fail("\"blob\" must be a string");
        return keeper_->cull(std::move(*domain), std::move(*blob), [reply](cull_report r) {
            nlohmann::json out{{"ok", r.error.empty() && r.busy == 0 && r.errors == 0},
                               {"culled", r.culled},
                               {"culled_bytes", r.bytes},
                               {"in_use", r.busy},
                               {"errors", r.errors}};
            if (!r.error.empty()) {
                out["error"] = r.error;
            } else if (r.busy) {
                out["error"] = fmt::format("{} cache file{} in use (mounted) and kept: umount first", r.busy,
                                           r.busy == 1 ? " is" : "s are");
            } else if (r.errors) {
                out["error"] = fmt::format("{} cull{} failed (see the daemon's log)", r.errors, r.errors == 1 ? "" : "s");
            }
            reply(out.dump());
        });
    }
    fail("unknown command (try \"status\", \"domains\", \"blobs\", \"stats\", \"metrics\", \"ping\", \"reload\", "
         "\"mount\", \"umount\", \"cull\" or \"usage\")");
}

app::reload_result app::reload(std::shared_ptr<const cfg::config> next) {
    const cfg::reload_plan_t plan = cfg::reload_plan(*config_, *next);
    if (!plan.ok()) {
        return unexpected{fmt::format("{} cannot change on a reload (restart the daemon for it); the running config stays",
                                      plan.refused)};
    }
    if (plan.changed.empty()) return plan.changed;
    // Every source is built again, also when only the log level changed: a reload is also how a
    // rotated auth_file or ca_file is read again. Building may throw (an unreadable file); then
    // nothing was swapped yet.
    std::unique_ptr<sources::source_set> fresh;
    try {
        fresh = std::make_unique<sources::source_set>(loop_, *next, sources_->current().shared_store());
    } catch (const std::exception& e) {
        return unexpected{fmt::format("{}; the running config stays", e.what())};
    }
    fresh->on_integrity_failure([this](const std::string& name) { engine_->refetch(name); });
    sources_->replace(std::move(fresh));
    engine_->retune(engine_options_from(next));
    if (auto lvl = log::parse_level(next->log_level)) log::set_max_level(*lvl);
    if (fanotify_) fanotify_->set_read_ahead_kb(next->fanotify.read_ahead_kb);
    config_ = std::move(next);
    last_error_.clear();
    return plan.changed;
}

std::string app::status_line() const {
    const auto& s = engine_->stats();
    std::string line = fmt::format("{} on {}: {} domain{} configured, {} object{} open", config_->frontend,
                                   config_->cache_dir, config_->domains.size(), config_->domains.size() == 1 ? "" : "s",
                                   s.objects_open, s.objects_open == 1 ? "" : "s");
    if (sources_->retired()) line += fmt::format(", {} old source set(s) finishing", sources_->retired());
    if (!last_error_.empty()) line += "; last error: " + last_error_;
    return line;
}

metrics::snapshot app::snapshot() const {
    // One snapshot of every declared table, so that the JSON here and Prometheus text list the
    // same counters under the same declarations.
    metrics::snapshot snap;
    const auto& entries = sources_->current().entries();
    std::uint64_t upstream = 0;
    // "bytes" of a source is what it delivered (over the network for remote ones); the store's
    // bytes_saved is what it did not have to. bytes_fetched is what reached cache files.
    for (const auto& e : entries) upstream += e.upstream->stats().bytes;
    const daemon_stats d{
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count()),
        config_->chunk_size, upstream};
    snap.add(daemon_metrics, d);
    snap.add(build_metrics, build_info{}, {BLOBD_VERSION});
    snap.add(registry_metrics, engine_->stats());
    snap.add(engine_metrics, engine_->scheduling());
    snap.add(cachefiles_metrics, frontend_ ? frontend_->stats() : cachefiles_stats{});
    snap.add(fanotify_metrics, fanotify_ ? fanotify_->stats() : fanotify_stats{});
    // A source is labelled by its describe() text; two sources that differ only in options the
    // text leaves out would share every series, so a repeat gets its position appended.
    std::vector<std::string> labels;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        std::string label = entries[i].upstream->describe();
        if (std::find(labels.begin(), labels.end(), label) != labels.end()) label += fmt::format(" #{}", i + 1);
        entries[i].guard->collect(snap, label);  // the source's own metrics and its breaker's
        labels.push_back(std::move(label));
    }
    const cas_store* store = sources_->current().store();
    snap.add(store_metrics, store ? store->stats() : cas_store::stats_t{});
    snap.add(keeper_metrics, keeper_ ? keeper_->stats() : keeper_stats{});
    if (keeper_) {
        for (const auto& [domain, use] : keeper_->usage()) snap.add(volume_metrics, use, {domain});
    }
    return snap;
}

std::string app::metrics_text() const { return metrics::to_prometheus(snapshot()); }

std::uint16_t app::metrics_port() const noexcept { return metrics_ ? metrics_->port() : 0; }

std::string app::stats_json() const { return stats_object().dump(); }

nlohmann::ordered_json app::stats_object() const {
    nlohmann::ordered_json j = {{"ok", true}};
    j.update(metrics::to_json(snapshot()));
    // Only what is not a number is added here.
    const auto& entries = sources_->current().entries();
    auto& sources = j["sources"];
    if (!sources.is_array()) sources = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < entries.size() && i < sources.size(); ++i) {
        sources[i]["via_store"] = entries[i].view != nullptr;
    }
    const cas_store* store = sources_->current().store();
    auto& st = j["store"];
    st["enabled"] = store != nullptr;
    st["dir"] = store ? config_->store_dir() : "";
    return j;
}

std::string app::status_json(std::string_view what, std::string_view domain) const {
    nlohmann::ordered_json j = {{"ok", true}};
    const auto blobs = engine_->blobs();
    if (what == "blobs") {
        auto& arr = j["blobs"] = nlohmann::ordered_json::array();
        for (const auto& b : blobs) {
            if (!domain.empty() && b.domain != domain) continue;
            nlohmann::ordered_json e{{"domain", b.domain}, {"blob", b.name}};
            e["size"] = b.sized ? nlohmann::ordered_json(b.size) : nlohmann::ordered_json();
            e["objects_open"] = b.objects;
            e["cached_bytes"] = b.cached_bytes;
            e["fetching_chunks"] = b.fetching;
            arr.push_back(std::move(e));
        }
        return j.dump();
    }
    // One row per domain any figure knows: the registry's (blobs now, bytes fetched since the
    // start) and the space keeper's (disk use of its cache files).
    struct row {
        std::uint64_t blobs = 0, objects = 0, fetched = 0, cache_bytes = 0, cache_files = 0;
        bool disk_known = false;
    };
    std::map<std::string, row, std::less<>> rows;
    for (const auto& b : blobs) {
        auto& r = rows[b.domain];
        ++r.blobs;
        r.objects += b.objects;
    }
    for (const auto& [d, bytes] : engine_->fetched_by_domain()) rows[d].fetched = bytes;
    if (keeper_) {
        for (const auto& [d, use] : keeper_->usage()) {
            auto& r = rows[d];
            r.cache_bytes = use.bytes;
            r.cache_files = use.files;
            r.disk_known = true;
        }
    }
    auto domains = nlohmann::ordered_json::array();
    for (const auto& [d, r] : rows) {
        nlohmann::ordered_json e{{"domain", d}, {"blobs", r.blobs}, {"objects_open", r.objects}, {"fetched_bytes", r.fetched}};
        // null, not 0, where no space keeper counts the disk (fanotify, or culling off).
        e["cache_bytes"] = r.disk_known ? nlohmann::ordered_json(r.cache_bytes) : nlohmann::ordered_json();
        e["cache_files"] = r.disk_known ? nlohmann::ordered_json(r.cache_files) : nlohmann::ordered_json();
        domains.push_back(std::move(e));
    }
    if (what == "domains") {
        j["domains"] = std::move(domains);
        return j.dump();
    }
    const auto& rs = engine_->stats();
    j["version"] = BLOBD_VERSION;
    j["uptime_s"] = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count();
    j["frontend"] = config_->frontend;
    j["cache_dir"] = config_->cache_dir;
    j["chunk_size"] = config_->chunk_size;
    j["objects_open"] = rs.objects_open;
    j["blobs"] = rs.blobs;
    j["bytes_fetched"] = rs.bytes_fetched;
    j["bytes_written"] = rs.bytes_written;
    j["reads"] = rs.reads;
    j["reads_failed"] = rs.reads_failed;
    j["domains"] = std::move(domains);
    // Health per source, from the same snapshot as `stats`, renamed to words. The lookups are
    // total: a key missing or of another type reads as 0 (nothing thrown into the loop).
    const auto stats = stats_object();
    static const nlohmann::ordered_json none = nlohmann::ordered_json::object();
    auto obj = [](const nlohmann::ordered_json& o, const char* key) -> const nlohmann::ordered_json& {
        return o.is_object() && o.contains(key) && o[key].is_object() ? o[key] : none;
    };
    auto num = [](const nlohmann::ordered_json& o, const char* key) -> std::uint64_t {
        return o.contains(key) && o[key].is_number_unsigned() ? o[key].get<std::uint64_t>() : 0;
    };
    auto flag = [](const nlohmann::ordered_json& o, const char* key) {
        return o.contains(key) && o[key].is_boolean() && o[key].get<bool>();
    };
    auto sources = nlohmann::ordered_json::array();
    if (stats.contains("sources") && stats["sources"].is_array()) {
        for (const auto& s : stats["sources"]) {
            if (!s.is_object()) continue;
            const std::uint64_t state = num(s, "breaker_state");
            nlohmann::ordered_json e{
                {"source", s.contains("source") && s["source"].is_string() ? s["source"].get<std::string>() : std::string()},
                {"health", state == 1 ? "open (failing fast)" : state == 2 ? "half-open (probing)" : "ok"},
                {"bytes", num(s, "bytes")},
                {"fetches", num(s, "fetches")},
                {"fetch_errors", num(s, "fetch_errors")},
                {"via_store", flag(s, "via_store")}};
            if (s.contains("endpoints_cooling")) e["endpoints_cooling"] = num(s, "endpoints_cooling");
            sources.push_back(std::move(e));
        }
    }
    j["sources"] = std::move(sources);
    const auto& st = obj(stats, "store");
    j["store"] = {{"enabled", flag(st, "enabled")},
                  {"dir", st.contains("dir") && st["dir"].is_string() ? st["dir"].get<std::string>() : std::string()},
                  {"disk_bytes", num(st, "disk_bytes")},
                  {"max_bytes", num(st, "max_bytes")},
                  {"hits", num(st, "hits")},
                  {"bytes_saved", num(st, "bytes_saved")}};
    if (keeper_) {
        const auto& sp = obj(stats, "space");
        j["space"] = {{"cache_bytes", num(sp, "cache_bytes")},
                      {"cache_files", num(sp, "cache_files")},
                      {"fs_free_bytes", num(sp, "fs_free_bytes")},
                      {"culling", num(sp, "culling") != 0}};
    }
    return j.dump();
}

}  // namespace blobd
