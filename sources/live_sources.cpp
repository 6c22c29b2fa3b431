#include "sources/live_sources.hpp"

#include <algorithm>

namespace blobd::sources {

live_sources::live_sources(event_loop& loop, std::unique_ptr<source_set> first)
    : loop_(loop), gen_(std::make_shared<generation>(std::move(first))) {}

live_sources::~live_sources() {
    *alive_ = false;
    stop_network();
}

void live_sources::stop_network() {
    gen_->set.stop_network();
    for (auto& g : retired_) g->set.stop_network();
}

void live_sources::replace(std::unique_ptr<source_set> next) {
    if (gen_->calls > 0) retired_.push_back(gen_);
    else gen_->set.stop_network();  // nothing of it is in flight: it goes now
    gen_ = std::make_shared<generation>(std::move(next));
}

void live_sources::stat(const blob_ref& blob, deadline due, stat_done done) {
    gen_ptr g = gen_;
    ++g->calls;
    g->set.for_domain(blob.domain).stat(blob, due, [this, w = std::weak_ptr<generation>(g), alive = alive_, done = std::move(done)](auto r) {
        if (*alive) answered(w);
        done(std::move(r));
    });
}

void live_sources::fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) {
    gen_ptr g = gen_;
    ++g->calls;
    g->set.for_domain(blob.domain).fetch(blob, off, len, due, [this, w = std::weak_ptr<generation>(g), alive = alive_, done = std::move(done)](auto r) {
        if (*alive) answered(w);
        done(std::move(r));
    });
}

void live_sources::release(const blob_ref& blob) {
    // Handles cached for the blob may sit in any set that served it.
    gen_->set.for_domain(blob.domain).release(blob);
    for (auto& g : retired_) g->set.for_domain(blob.domain).release(blob);
}

void live_sources::answered(const std::weak_ptr<generation>& w) {
    // The callbacks hold the generation weakly: one kept inside the set would otherwise keep the
    // set alive through itself.
    const gen_ptr g = w.lock();
    if (!g || --g->calls > 0 || g == gen_) return;
    // The last call of a retired set was answered, but the answer is still on its stack: the
    // set goes on the next loop turn, not here.
    loop_.post([this, alive = alive_] {
        if (*alive) reap();
    });
}

void live_sources::reap() {
    auto done = std::remove_if(retired_.begin(), retired_.end(), [](const gen_ptr& g) { return g->calls == 0; });
    for (auto it = done; it != retired_.end(); ++it) (*it)->set.stop_network();
    retired_.erase(done, retired_.end());
}

}  // namespace blobd::sources
