#include "core/space_policy.hpp"

#include <algorithm>

namespace blobd {

namespace {

// How many of `total` make `pct` percent, rounded up (a limit is met only when truly reached).
std::uint64_t share(std::uint64_t total, unsigned pct) {
    return (total / 100) * pct + ((total % 100) * pct + 99) / 100;
}

}  // namespace

bool space_policy::stopped(const space_sample& s) const {
    return s.blocks_avail < share(s.blocks_total, limits_.blocks.stop) ||
           s.files_avail < share(s.files_total, limits_.files.stop);
}

bool space_policy::update(const space_sample& s) {
    const bool below_cull = s.blocks_avail < share(s.blocks_total, limits_.blocks.cull) ||
                            s.files_avail < share(s.files_total, limits_.files.cull) ||
                            (limits_.max_bytes > 0 && s.used_bytes > limits_.max_bytes);
    if (below_cull) {
        culling_ = true;
    } else if (culling_ && need(s).none()) {
        culling_ = false;  // above run again (and within 90 % of the budget)
    }
    return culling_;
}

space_need space_policy::need(const space_sample& s) const {
    space_need n;
    const std::uint64_t blocks_run = share(s.blocks_total, limits_.blocks.run);
    if (s.blocks_avail < blocks_run) n.bytes = (blocks_run - s.blocks_avail) * s.block_size;
    const std::uint64_t files_run = share(s.files_total, limits_.files.run);
    if (s.files_avail < files_run) n.files = files_run - s.files_avail;
    if (limits_.max_bytes > 0) {
        // Down to 90 %, so that the next few writes do not start culling again at once.
        const std::uint64_t target = limits_.max_bytes / 10 * 9;
        if (s.used_bytes > target) n.bytes = std::max(n.bytes, s.used_bytes - target);
    }
    return n;
}

bool evict_before(const cull_candidate& a, const cull_candidate& b) noexcept {
    if (a.tier != b.tier) return a.tier < b.tier;
    if (a.last_use != b.last_use) return a.last_use < b.last_use;
    return a.id < b.id;
}

bool victim_heap::would_keep(const cull_candidate& c) const {
    if (capacity_ == 0) return false;
    return heap_.size() < capacity_ || evict_before(c, heap_.front());
}

std::optional<std::uint64_t> victim_heap::offer(const cull_candidate& c) {
    ++offered_;
    if (c.in_use || !would_keep(c)) return c.id;
    if (heap_.size() < capacity_) {
        heap_.push_back(c);
        std::push_heap(heap_.begin(), heap_.end(), evict_before);
        return std::nullopt;
    }
    // Full: replace the worst kept victim, which this one is better than.
    std::pop_heap(heap_.begin(), heap_.end(), evict_before);
    const std::uint64_t dropped = heap_.back().id;
    heap_.back() = c;
    std::push_heap(heap_.begin(), heap_.end(), evict_before);
    return dropped;
}

std::vector<cull_candidate> victim_heap::take() {
    std::sort_heap(heap_.begin(), heap_.end(), evict_before);  // ascending: best victim first
    std::vector<cull_candidate> out = std::move(heap_);
    heap_.clear();
    return out;
}

cull_plan plan_cull(const space_need& need, const std::vector<cull_candidate>& ordered) {
    cull_plan p;
    std::uint64_t bytes = 0, files = 0;
    p.enough = need.none();
    for (const auto& c : ordered) {
        if (p.enough) break;
        if (c.in_use) continue;  // never, even if the caller passed one
        p.victims.push_back(c);
        bytes += c.bytes;
        files += 1;
        p.enough = bytes >= need.bytes && files >= need.files;
    }
    return p;
}

}  // namespace blobd
