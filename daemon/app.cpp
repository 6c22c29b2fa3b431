#include "daemon/app.hpp"

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

std::string app::stats_json() const {
    const auto& s = engine_->stats();
    const auto& f = frontend_->stats();
    const auto& w = engine_->scheduling();
    // OPENs the frontend refused before the core saw them count as opens and failed opens, as
    // they did when the frontend counted them in the registry's counters.
    nlohmann::json j = {
        {"ok", true},
        {"uptime_s", std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count()},
        {"chunk_size", config_->chunk_size},
        {"opens", s.opens + f.opens_refused}, {"open_failures", s.open_failures + f.opens_refused},
        {"closes", s.closes}, {"objects_open", s.objects_open}, {"blobs", s.blobs},
        {"reads", s.reads}, {"reads_failed", s.reads_failed}, {"read_bytes_requested", s.read_bytes_requested},
        {"chunks_fetched", s.chunks_fetched}, {"bytes_fetched", s.bytes_fetched}, {"fetch_errors", s.fetch_errors},
        {"fetch_joins", s.fetch_joins},
        {"chunks_written", s.chunks_written}, {"bytes_written", s.bytes_written}, {"write_errors", s.write_errors},
        {"bad_messages", f.bad_messages}, {"prefetch_chunks", s.prefetch_chunks},
        {"prefetch_promoted", s.prefetch_promoted}, {"refetch_chunks", s.refetch_chunks},
        {"readahead_chunks", s.readahead_chunks},
        {"completion_errors", f.completion_errors}, {"reply_errors", f.reply_errors},
        {"write_waits", w.write_waits}, {"writes_per_file_peak", w.writes_per_file_peak},
    };
    // "bytes" of a source is what it delivered (over the network for remote ones); the store's
    // bytes_saved is what it did not have to. bytes_fetched (above) is what reached cache files.
    std::uint64_t upstream = 0;
    auto& sources = j["sources"] = nlohmann::json::array();
    for (const auto& e : sources_->entries()) {
        const auto& st = e.upstream->stats();
        upstream += st.bytes;
        sources.push_back({{"source", e.upstream->describe()}, {"stats", st.stats}, {"stat_misses", st.stat_misses},
                           {"fetches", st.fetches}, {"fetch_errors", st.fetch_errors}, {"bytes", st.bytes},
                           {"via_store", e.view != nullptr}});
    }
    j["upstream_bytes"] = upstream;
    const cas_store* store = sources_->store();
    const cas_store::stats_t none{};
    const auto& cs = store ? store->stats() : none;
    j["store"] = {{"enabled", store != nullptr}, {"dir", store ? config_->store_dir() : ""},
                  {"hits", cs.hits}, {"bytes_saved", cs.bytes_saved}, {"stored_bytes", cs.stored_bytes},
                  {"store_errors", cs.store_errors}, {"verified", cs.verified},
                  {"integrity_failures", cs.integrity_failures}, {"disk_bytes", cs.disk_bytes},
                  {"max_bytes", store ? config_->store.max_bytes : 0}, {"evicted_files", cs.evicted_files},
                  {"evicted_bytes", cs.evicted_bytes}};
    return j.dump();
}

}  // namespace blobd
