// Unit test: mutation fuzzing of proto::parse under g++ (and ASan/UBSan in the sanitizer build),
// replaying the same invariants as the libFuzzer target.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "tests/fuzz/parse_invariants.hpp"

namespace {

std::vector<std::byte> seed_open() {
    std::vector<std::byte> m(16 + 16 + 9 + 4);
    std::uint32_t h[8] = {1, CACHEFILES_OP_OPEN, static_cast<std::uint32_t>(m.size()), 2, 9, 4, 5, 0};
    std::memcpy(m.data(), h, sizeof h);
    std::memcpy(m.data() + 32, "erofs,d1\0img1", 13);
    return m;
}
std::vector<std::byte> seed_read() {
    std::vector<std::byte> m(32);
    std::uint32_t h[4] = {3, CACHEFILES_OP_READ, 32, 2};
    std::uint64_t r[2] = {4096, 131072};
    std::memcpy(m.data(), h, sizeof h);
    std::memcpy(m.data() + 16, r, sizeof r);
    return m;
}
std::vector<std::byte> seed_close() {
    std::vector<std::byte> m(16);
    std::uint32_t h[4] = {4, CACHEFILES_OP_CLOSE, 16, 2};
    std::memcpy(m.data(), h, sizeof h);
    return m;
}

}  // namespace

// Description: 300k mutated messages (bit flips, byte and u32 overwrites with edge values,
// truncations, extensions) never crash the parser and every result is consistent with its input.
TEST_CASE("parser survives mutated messages", "[protocol][fuzz]") {
    std::mt19937_64 rng(20261125);
    const std::vector<std::vector<std::byte>> seeds = {seed_open(), seed_read(), seed_close()};
    const std::uint32_t edges[] = {0, 1, 4, 9, 15, 16, 32, 255, 256, 1023, 1024, 0x7fffffff, 0x80000000u, 0xffffffffu};
    int ok = 0;
    for (int i = 0; i < 300000; ++i) {
        auto m = seeds[rng() % seeds.size()];
        const int mutations = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < mutations; ++k) {
            switch (rng() % 5) {
                case 0:
                    if (!m.empty()) m[rng() % m.size()] ^= std::byte(1u << (rng() % 8));
                    break;
                case 1:
                    if (!m.empty()) m[rng() % m.size()] = std::byte(rng());
                    break;
                case 2:
                    if (m.size() >= 4) {
                        std::uint32_t v = edges[rng() % std::size(edges)];
                        std::memcpy(m.data() + (rng() % (m.size() / 4)) * 4, &v, 4);
                    }
                    break;
                case 3:
                    m.resize(rng() % (m.size() + 1));
                    break;
                default:
                    m.resize(m.size() + rng() % 64, std::byte(rng()));
                    break;
            }
        }
        blobd::test::check_parse_invariants(m);
        if (blobd::proto::parse(m)) ++ok;
    }
    // Some mutations keep messages valid (e.g. flips inside key bytes): the test reaches both paths.
    CHECK(ok > 1000);
    CHECK(ok < 300000);
}
