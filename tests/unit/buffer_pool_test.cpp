// make_fetch_buffer (base/buffer_pool.cpp): freed fetch buffers are reused by capacity,
// come back reset (size, filled, zeroed padding), and the pool keeps a bounded amount idle.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "base/buffer.hpp"

using namespace blobd;

namespace {
// Sizes no other test in this binary asks for, so buffers left idle by them do not interfere.
constexpr std::size_t odd_blocks = 37;
}

TEST_CASE("a freed fetch buffer is reused for the next one of the same capacity") {
    auto a = make_fetch_buffer(odd_blocks * io_alignment);
    const std::byte* mem = a->data();
    std::fill_n(a->data(), a->capacity(), std::byte{0x5a});
    a->filled = a->size();
    a.reset();
    // Same capacity (size rounded up to blocks), smaller size: the same memory, reset.
    auto b = make_fetch_buffer(odd_blocks * io_alignment - 100);
    CHECK(b->data() == mem);
    CHECK(b->size() == odd_blocks * io_alignment - 100);
    CHECK(b->capacity() == odd_blocks * io_alignment);
    CHECK(b->filled == 0);
    // The padding past size() is zeroed again (a blob tail is written as a whole block).
    for (std::size_t i = b->size(); i < b->capacity(); ++i) REQUIRE(b->data()[i] == std::byte{0});
    // A buffer still in use is never handed out twice.
    auto c = make_fetch_buffer(odd_blocks * io_alignment);
    CHECK(c->data() != b->data());
}

TEST_CASE("fetch buffers of another capacity are not reused") {
    auto a = make_fetch_buffer((odd_blocks + 2) * io_alignment);
    const std::byte* mem = a->data();
    a.reset();
    auto b = make_fetch_buffer((odd_blocks + 3) * io_alignment);
    CHECK(b->data() != mem);
    CHECK(b->capacity() == (odd_blocks + 3) * io_alignment);
}

TEST_CASE("the fetch buffer pool keeps at most fetch_buffer_pool_bytes idle") {
    // Release more than the budget's worth of buffers: the pool ends up exactly full (the oldest
    // idle buffers, whatever other tests left, are freed first), and taking them back empties it.
    constexpr std::size_t size = 4u << 20;
    constexpr std::size_t n = fetch_buffer_pool_bytes / size + 4;
    std::vector<std::shared_ptr<aligned_buffer>> held;
    for (std::size_t i = 0; i < n; ++i) held.push_back(make_fetch_buffer(size));
    held.clear();
    CHECK(fetch_buffer_pool_idle_bytes() == fetch_buffer_pool_bytes);
    for (std::size_t i = 0; i < fetch_buffer_pool_bytes / size; ++i) held.push_back(make_fetch_buffer(size));
    CHECK(fetch_buffer_pool_idle_bytes() == 0);
    held.clear();
    // A buffer larger than the whole budget is never kept.
    make_fetch_buffer(fetch_buffer_pool_bytes + io_alignment).reset();
    CHECK(fetch_buffer_pool_idle_bytes() == fetch_buffer_pool_bytes);
}
