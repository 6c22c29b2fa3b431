#include "sources/source_set.hpp"

#include <algorithm>

#include "base/log.hpp"
#include "sources/make_source.hpp"

namespace blobd::sources {

namespace {
const log::logger lg{"sources"};
}

source_set::source_set(event_loop& loop, const cfg::config& config) : source_set(loop, config, nullptr) {}

source_set::source_set(event_loop& loop, const cfg::config& config, std::shared_ptr<cas_store> previous)
    : loop_(loop), previous_store_(std::move(previous)) {
    // Domain names are never empty, so "" asks for the top-level store setting.
    default_chain_ = chain(config, config.sources, "");
    for (const auto& [name, d] : config.domains) domain_chains_.emplace(name, chain(config, d.sources, name));
    previous_store_.reset();
    if (store_) {
        std::string list;
        for (const auto& e : sources_) {
            if (e.view) list += (list.empty() ? "" : ", ") + e.upstream->describe();
        }
        lg.info("blob store {} (sha256 checks {}, {}) in front of: {}", config.store_dir(),
                config.store.verify ? "on" : "off",
                config.store.max_bytes ? fmt::format("at most {} bytes", config.store.max_bytes) : "no size limit", list);
    }
}

source_set::~source_set() { stop_network(); }

void source_set::stop_network() {
    // Network fetches run on their own thread and post results to the loop: stop it before anything
    // else goes, so nothing runs concurrently with the teardown and nothing is posted afterwards.
    // The fetchers drop results already posted but not yet run.
    if (net_) net_->stop();
}

std::shared_ptr<fetcher> source_set::chain(const cfg::config& config, const std::vector<cfg::source>& list,
                                           std::string_view domain) {
    std::vector<std::shared_ptr<fetcher>> parts;
    for (const auto& s : list) {
        // Sources are compared by value, so two domains naming the same directory share one
        // fetcher (and its open-file cache and counters).
        auto it = std::find_if(sources_.begin(), sources_.end(), [&](const auto& e) { return e.config == s; });
        if (it == sources_.end()) {
            auto upstream = make_source(loop_, net_, s);
            auto guard = std::make_shared<guarded_fetcher>(
                loop_, upstream,
                breaker_options{config.breaker.failures, std::chrono::milliseconds(config.breaker.backoff_ms),
                                std::chrono::milliseconds(config.breaker.max_backoff_ms)});
            sources_.push_back({s, std::move(upstream), std::move(guard), nullptr});
            it = sources_.end() - 1;
        }
        if (!config.store_for(domain, s)) {
            parts.push_back(it->guard);
            continue;
        }
        if (!store_) {
            const cas_store::options want{config.store_dir(), config.store.verify, config.store.max_bytes};
            const auto* had = previous_store_ ? &previous_store_->settings() : nullptr;
            if (had && had->dir == want.dir && had->verify == want.verify && had->max_bytes == want.max_bytes) {
                store_ = previous_store_;
            } else {
                store_ = std::make_shared<cas_store>(loop_, want);
            }
        }
        if (!it->view) it->view = std::make_shared<cas_fetcher>(loop_, it->guard, store_);
        parts.push_back(it->view);
    }
    return std::make_shared<source_chain>(std::move(parts));
}

fetcher& source_set::for_domain(std::string_view domain) {
    auto it = domain_chains_.find(domain);
    return it != domain_chains_.end() ? *it->second : *default_chain_;
}

void source_set::on_integrity_failure(std::function<void(const std::string& name)> fn) {
    if (store_) store_->on_integrity_failure = std::move(fn);
}

}  // namespace blobd::sources
