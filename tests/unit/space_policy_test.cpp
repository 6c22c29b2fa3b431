// Tests of the space keeper's policy (core/space_policy.hpp): thresholds with hysteresis, the
// budget, the bounded victim heap, and a seeded model run of a filling and culling cache.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "core/space_policy.hpp"

using namespace blobd;

namespace {
space_sample sample(std::uint64_t blocks_avail, std::uint64_t files_avail = 900, std::uint64_t used = 0) {
    return space_sample{1000, blocks_avail, 4096, 1000, files_avail, used};
}
}  // namespace

// Description: culling starts below bcull (or fcull, or over the budget), continues until above
// brun (and frun, and 90 % of the budget), then stops; stop is below bstop/fstop; need() says how
// many bytes and files must go.
TEST_CASE("space policy: thresholds and hysteresis", "[space]") {
    space_policy p({proto::cull_limits{10, 7, 3}, proto::cull_limits{10, 7, 3}, 0});
    CHECK_FALSE(p.update(sample(80)));   // 8 % free: above cull
    CHECK(p.update(sample(69)));         // below 7 %
    CHECK(p.update(sample(80)));         // still below run (10 %): go on
    CHECK(p.need(sample(80)).bytes == 20 * 4096);
    CHECK(p.need(sample(80)).files == 0);
    CHECK_FALSE(p.update(sample(100)));  // at run: done
    CHECK(p.need(sample(100)).none());
    CHECK(p.stopped(sample(29)));
    CHECK_FALSE(p.stopped(sample(30)));
    CHECK(p.update(sample(500, 60)));    // files below fcull
    CHECK(p.need(sample(500, 60)).files == 40);
    CHECK(p.stopped(sample(500, 29)));

    space_policy b({proto::cull_limits{10, 7, 3}, proto::cull_limits{10, 7, 3}, 1000000});
    CHECK_FALSE(b.update(sample(500, 900, 1000000)));
    CHECK(b.update(sample(500, 900, 1000001)));
    CHECK(b.need(sample(500, 900, 1000001)).bytes == 100001);  // down to 900000
    CHECK(b.update(sample(500, 900, 950000)));
    CHECK_FALSE(b.update(sample(500, 900, 900000)));
}

// Description: the victim heap keeps the best `capacity` victims not in use, in eviction order
// (tier 0 first, then least recently used); the plan takes them until the need is met, or all.
TEST_CASE("space policy: bounded victim heap and plan", "[space]") {
    victim_heap h(3);
    // offer() names what it no longer keeps, so that a caller can free what it keeps beside ids.
    CHECK(h.offer({1, 100, 50, 1, false}) == std::nullopt);
    CHECK(h.offer({2, 100, 10, 1, true}) == 2u);  // in use: never
    CHECK(h.offer({3, 100, 40, 1, false}) == std::nullopt);
    CHECK(h.offer({4, 100, 90, 0, false}) == std::nullopt);  // tier 0 beats any age
    CHECK_FALSE(h.would_keep({5, 100, 60, 1, false}));
    CHECK(h.offer({5, 100, 60, 1, false}) == 5u);  // worse than all kept: dropped
    CHECK(h.would_keep({6, 100, 5, 1, false}));
    CHECK(h.offer({6, 100, 5, 1, false}) == 1u);   // replaces 1 (age 50)
    CHECK(h.offered() == 6);
    const auto v = h.take();
    REQUIRE(v.size() == 3);
    CHECK(v[0].id == 4);
    CHECK(v[1].id == 6);
    CHECK(v[2].id == 3);
    CHECK(h.size() == 0);
    const auto p = plan_cull({150, 0}, v);
    CHECK(p.enough);
    CHECK(p.victims.size() == 2);
    const auto all = plan_cull({1000, 0}, v);
    CHECK_FALSE(all.enough);
    CHECK(all.victims.size() == 3);
    CHECK(plan_cull({}, v).victims.empty());
    CHECK(plan_cull({0, 2}, v).victims.size() == 2);  // files count too
}

// Description: a seeded model of a cache filesystem filling with files of random sizes, some in
// use, with the keeper culling through walks of a small bounded heap. Invariants: a file in use is
// never culled; a walk never culls a file twice; when the candidates not in use could free enough,
// the keeper ends above the run limits within a bounded number of walks; when they cannot, it culls
// all of them and stops (no endless loop).
TEST_CASE("space policy: seeded model of filling and culling", "[space]") {
    for (unsigned seed = 1; seed <= 40; ++seed) {
        INFO("seed " << seed);
        std::mt19937 rng(seed);
        const std::uint64_t total_blocks = 10000, bs = 4096;
        space_policy pol({proto::cull_limits{10, 7, 3}, proto::cull_limits{10, 7, 3}, 0});
        std::map<std::uint64_t, cull_candidate> files;  // on disk
        std::uint64_t used_blocks = 0, next_id = 1;
        std::int64_t clock = 0;
        const auto avail = [&] { return total_blocks - used_blocks; };
        const auto smp = [&] {
            return space_sample{total_blocks, avail(), bs, 100000, 100000 - files.size(), used_blocks * bs};
        };
        for (int step = 0; step < 400; ++step) {
            // Write a file while the kernel allows it (above bstop).
            if (!pol.stopped(smp())) {
                const std::uint64_t blocks = 1 + rng() % 200;
                if (blocks <= avail()) {
                    cull_candidate c{next_id++, blocks * bs, ++clock, static_cast<std::uint8_t>(rng() % 4 == 0 ? 0 : 1),
                                     rng() % 5 == 0};
                    files[c.id] = c;
                    used_blocks += blocks;
                }
            }
            // Touch a random file now and then; in-use flags change.
            if (!files.empty() && rng() % 3 == 0) {
                auto it = std::next(files.begin(), static_cast<long>(rng() % files.size()));
                it->second.last_use = ++clock;
                it->second.in_use = rng() % 4 == 0;
            }
            if (!pol.update(smp())) continue;
            // Cull: walks of a heap of 8 until the need is met or nothing can go.
            int walks = 0;
            for (;;) {
                const space_need need = pol.need(smp());
                if (need.none()) break;
                REQUIRE(++walks < 10000);  // never loops
                victim_heap h(8);
                for (const auto& [id, c] : files) h.offer(c);
                const auto plan = plan_cull(need, h.take());
                std::set<std::uint64_t> culled;
                for (const auto& v : plan.victims) {
                    REQUIRE(files.count(v.id) == 1);
                    CHECK_FALSE(files[v.id].in_use);
                    CHECK(culled.insert(v.id).second);
                    used_blocks -= v.bytes / bs;
                    files.erase(v.id);
                }
                if (plan.victims.empty()) {
                    // Nothing left to cull: only files in use remain.
                    CHECK(std::all_of(files.begin(), files.end(), [](const auto& f) { return f.second.in_use; }));
                    break;
                }
            }
            std::uint64_t freeable = 0;
            for (const auto& [id, c] : files) freeable += c.in_use ? 0 : c.bytes;
            if (pol.need(smp()).none()) {
                CHECK_FALSE(pol.update(smp()));  // above run: culling ended
            } else {
                CHECK(freeable == 0);  // it could not do better
            }
        }
    }
}
