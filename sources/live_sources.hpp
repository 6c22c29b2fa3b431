// live_sources: the engine's fetcher_directory across reloads. It holds the current source_set
// and hands every stat/fetch/release to it; replace() swaps in a new set while the calls already
// made finish on the old one, which is kept (shared_ptr, with a count of its unanswered calls)
// and destroyed on the loop once the last of them was answered.
//
// Owns the current and the retired source sets. Threading: loop thread only; the fetcher
// returned by for_domain lives as long as this object.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fetchers/fetcher.hpp"
#include "io/event_loop.hpp"
#include "sources/source_set.hpp"

namespace blobd::sources {

class live_sources final : public fetcher_directory, private fetcher {
public:
    live_sources(event_loop& loop, std::unique_ptr<source_set> first);
    ~live_sources() override;

    fetcher& for_domain(std::string_view) override { return *this; }

    /// Makes `next` the set new calls go to; the old one lives until its calls are answered.
    void replace(std::unique_ptr<source_set> next);
    source_set& current() noexcept { return gen_->set; }
    const source_set& current() const noexcept { return gen_->set; }
    /// Source sets replaced but still answering calls made before the swap.
    std::size_t retired() const noexcept { return retired_.size(); }
    /// Stops the network thread of every set (see source_set::stop_network). Idempotent.
    void stop_network();

private:
    struct generation {
        explicit generation(std::unique_ptr<source_set> s) : owned(std::move(s)), set(*owned) {}
        std::unique_ptr<source_set> owned;
        source_set& set;
        std::size_t calls = 0;   // asked and not answered yet
    };
    using gen_ptr = std::shared_ptr<generation>;

    void stat(const blob_ref& blob, deadline due, stat_done done) override;
    void fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) override;
    void release(const blob_ref& blob) override;
    std::string describe() const override { return gen_->set.describe_default(); }
    void answered(const std::weak_ptr<generation>& w);
    void reap();

    event_loop& loop_;
    gen_ptr gen_;
    std::vector<gen_ptr> retired_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace blobd::sources
