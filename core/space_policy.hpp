// space_policy: when to free disk space under the cache directory and what to free, for the one
// space keeper that serves the cachefiles cache and the blob store together (issue 13). Pure:
// statvfs samples and candidate files come in, decisions go out; the walk of the cache tree and
// the `cull` commands are the caller's (frontends/cachefiles), so that this is tested
// exhaustively without a disk (tests/unit/space_policy_test.cpp).
//
// When: like cachefilesd, with hysteresis per resource (blocks, files): culling starts once the
// free share drops below `cull` percent (or the bytes used pass `max_bytes`), and goes on until it
// is above `run` percent again (and the bytes used are at most 90 % of `max_bytes`).
// What: files not in use, in this order: store copies of blobs that some cache file also holds
// (tier 0: losing them costs nothing until another domain wants the blob), then everything else
// (tier 1: cache files and the other store files), least recently used first within a tier.
// An object in use (open by the kernel, or being fetched) is never a candidate.
//
// Memory stays bounded on caches of millions of files: a walk offers every file to a
// victim_heap that keeps only the `capacity` best victims; if freeing them is not enough, the next
// walk finds the next ones.
//
// Threading: none of its own; the owner's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocol/message.hpp"

namespace blobd {

struct space_limits {
    proto::cull_limits blocks, files;
    std::uint64_t max_bytes = 0;  ///< cache + store bytes allowed; 0: no budget
};

/// One statvfs of the cache filesystem, plus what the keeper counted as its own.
struct space_sample {
    std::uint64_t blocks_total = 0, blocks_avail = 0, block_size = 4096;
    std::uint64_t files_total = 0, files_avail = 0;
    std::uint64_t used_bytes = 0;  ///< bytes the cache and the store take now
};

/// What has to go for a sample to be back above the run limits (and within the budget).
struct space_need {
    std::uint64_t bytes = 0;
    std::uint64_t files = 0;
    bool none() const { return bytes == 0 && files == 0; }
};

struct cull_candidate {
    std::uint64_t id = 0;         ///< the caller's handle (an index into its walk)
    std::uint64_t bytes = 0;      ///< allocated on disk
    std::int64_t last_use = 0;    ///< any monotonic order (atime in seconds, say); older = smaller
    std::uint8_t tier = 1;        ///< 0: a store copy some cache file also holds; 1: anything else
    bool in_use = false;          ///< open or being fetched: never culled
};

class space_policy {
public:
    explicit space_policy(space_limits limits) : limits_(limits) {}

    /// Feeds a sample; returns whether culling should run now (see the header comment).
    bool update(const space_sample& s);
    bool culling() const noexcept { return culling_; }
    /// Below the stop limit of blocks or files: the kernel refuses cache writes now.
    bool stopped(const space_sample& s) const;
    /// What must be freed for `s` to reach the run limits and the budget's 90 %.
    space_need need(const space_sample& s) const;
    const space_limits& limits() const noexcept { return limits_; }

private:
    space_limits limits_;
    bool culling_ = false;
};

/// Keeps the `capacity` best victims among the candidates offered (tier, then least recently
/// used), ignoring those in use. O(log capacity) per offer; memory O(capacity).
class victim_heap {
public:
    explicit victim_heap(std::size_t capacity) : capacity_(capacity) {}
    /// Offers `c`. Returns the id of the candidate no longer kept because of this offer: `c.id`
    /// itself when it is not kept (in use, or no better than the worst kept victim of a full
    /// heap), the displaced victim's id when `c` took its place, nothing when the heap had room.
    /// (A caller keeping data beside the ids, a file name say, frees it by this.)
    std::optional<std::uint64_t> offer(const cull_candidate& c);
    /// Whether offer(c) would keep `c` (ignoring in_use): to ask a costly question, such as the
    /// kernel's `inuse`, only of candidates that would be kept.
    bool would_keep(const cull_candidate& c) const;
    /// The kept victims, best first; empties the heap.
    std::vector<cull_candidate> take();
    std::size_t size() const noexcept { return heap_.size(); }
    /// Candidates offered, in use or not (for the walk's log line).
    std::uint64_t offered() const noexcept { return offered_; }

private:
    std::size_t capacity_;
    std::vector<cull_candidate> heap_;  // a max-heap on eviction order: the worst kept victim on top
    std::uint64_t offered_ = 0;
};

/// The victims to cull, best first, from `ordered` (victim_heap::take), until `need` is met:
/// `enough` says whether it is.
struct cull_plan {
    std::vector<cull_candidate> victims;
    bool enough = false;
};
cull_plan plan_cull(const space_need& need, const std::vector<cull_candidate>& ordered);

/// Whether `a` goes before `b` (lower tier, then older, then lower id: a total order).
bool evict_before(const cull_candidate& a, const cull_candidate& b) noexcept;

}  // namespace blobd
