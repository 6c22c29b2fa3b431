#include "daemon/app.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/log.hpp"

namespace blobd {

namespace {
const log::logger lg{"daemon"};

engine_options engine_options_from(const std::shared_ptr<const cfg::config>& c) {
    engine_options o;
    o.chunk_size = c->chunk_size;
    o.prefetch_concurrency = c->prefetch_concurrency;
    o.prefetch_for = [c](std::string_view domain) { return c->prefetch_for(domain); };
    o.writes = cachefiles_write_policy;
    o.failure_ttl = std::chrono::milliseconds(c->failure_ttl_ms);
    o.read_deadline = std::chrono::milliseconds(c->read_deadline_ms);
    return o;
}
}  // namespace

app::app(event_loop& loop, device& dev, std::shared_ptr<const cfg::config> config)
    : loop_(loop), config_(std::move(config)) {
    sources_ = std::make_unique<sources::source_set>(loop_, *config_);
    engine_ = std::make_unique<engine>(loop_, *sources_, engine_options_from(config_));
    sources_->on_integrity_failure([this](const std::string& name) { engine_->refetch(name); });
    frontend_ = std::make_unique<cachefiles_frontend>(loop_, dev, *engine_);
}

app::~app() {
    // Nothing may run concurrently with the teardown, nor be posted afterwards.
    sources_->stop_network();
}

result<bool, std::string> app::start() {
    if (!config_->control_socket.empty()) {
        auto c = control_server::listen(loop_, config_->control_socket,
                                        [this](std::string_view req) { return control(req); });
        if (!c) return unexpected{c.error()};
        control_ = std::move(*c);
    }
    frontend_->start();
    const std::string sources = sources_->describe_default();
    lg.info("serving: chunk size {} bytes, default sources: {}", config_->chunk_size, sources.empty() ? "(none)" : sources);
    return true;
}

void app::request_stop(std::chrono::milliseconds grace) {
    if (engine_->stopping()) return;
    lg.info("stopping: finishing in-flight work");
    if (control_) control_->stop();
    frontend_->stop();
    engine_->request_stop(grace);
}

bool app::finished() const { return engine_->stopping() && !engine_->busy() && loop_.inflight() == 0; }

void app::run() {
    while (!finished()) loop_.run_once(std::chrono::milliseconds(1000));
    const auto& s = engine_->stats();
    lg.info("stopped: {} opens ({} failed), {} reads ({} failed), {} bytes fetched, {} bytes written, {} fetch joins",
            s.opens, s.open_failures, s.reads, s.reads_failed, s.bytes_fetched, s.bytes_written, s.fetch_joins);
}

std::string app::control(std::string_view request) {
    std::string cmd(request);
    auto j = nlohmann::json::parse(request, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("cmd") && j["cmd"].is_string()) {
        cmd = j["cmd"].get<std::string>();
    }
    while (!cmd.empty() && (cmd.back() == '\r' || cmd.back() == ' ')) cmd.pop_back();
    if (cmd == "stats") return stats_json();
    if (cmd == "ping") return R"({"ok":true})";
    nlohmann::json err = {{"ok", false}, {"error", "unknown command (try \"stats\" or \"ping\")"}};
    return err.dump();
}

metrics::snapshot app::snapshot() const {
    // One snapshot of every declared table, so that the JSON here and Prometheus text list the
    // same counters under the same declarations.
    metrics::snapshot snap;
    const auto& entries = sources_->entries();
    std::uint64_t upstream = 0;
    // "bytes" of a source is what it delivered (over the network for remote ones); the store's
    // bytes_saved is what it did not have to. bytes_fetched is what reached cache files.
    for (const auto& e : entries) upstream += e.upstream->stats().bytes;
    const daemon_stats d{
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count()),
        config_->chunk_size, upstream};
    snap.add(daemon_metrics, d);
    snap.add(registry_metrics, engine_->stats());
    snap.add(engine_metrics, engine_->scheduling());
    snap.add(cachefiles_metrics, frontend_->stats());
    // A source is labelled by its describe() text; two sources that differ only in options the
    // text leaves out would share every series, so a repeat gets its position appended.
    std::vector<std::string> labels;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        std::string label = entries[i].upstream->describe();
        if (std::find(labels.begin(), labels.end(), label) != labels.end()) label += fmt::format(" #{}", i + 1);
        entries[i].guard->collect(snap, label);  // the source's own metrics and its breaker's
        labels.push_back(std::move(label));
    }
    const cas_store* store = sources_->store();
    snap.add(store_metrics, store ? store->stats() : cas_store::stats_t{});
    return snap;
}

std::string app::stats_json() const {
    nlohmann::ordered_json j = {{"ok", true}};
    j.update(metrics::to_json(snapshot()));
    // Only what is not a number is added here.
    const auto& entries = sources_->entries();
    auto& sources = j["sources"];
    if (!sources.is_array()) sources = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < entries.size() && i < sources.size(); ++i) {
        sources[i]["via_store"] = entries[i].view != nullptr;
    }
    const cas_store* store = sources_->store();
    auto& st = j["store"];
    st["enabled"] = store != nullptr;
    st["dir"] = store ? config_->store_dir() : "";
    return j.dump();
}

}  // namespace blobd
