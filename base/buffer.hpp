// aligned_buffer: a heap buffer aligned for direct I/O. Writes into a cachefiles anon fd go to the
// backing file with O_DIRECT semantics, so the user buffer must be block-aligned (4096 is safe on
// every filesystem cachefiles supports). Immutable once filled; shared between the fetch that
// filled it and the writes that drain it (shared_ptr<const aligned_buffer>). Any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace blobd {

inline constexpr std::size_t io_alignment = 4096;

constexpr std::size_t round_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

class aligned_buffer {
public:
    explicit aligned_buffer(std::size_t size)
        : size_(size),
          capacity_(round_up(size ? size : 1, io_alignment)),
          data_(static_cast<std::byte*>(std::aligned_alloc(io_alignment, capacity_))) {
        if (!data_) throw std::bad_alloc();
        // The padding up to the next block is zeroed: a blob's unaligned tail is written as a
        // whole block (direct I/O needs block-sized lengths), and those bytes must be defined.
        std::memset(data_.get() + size_, 0, capacity() - size_);
    }
    /// Reuses the allocation for `size` bytes (which must fit in capacity()): re-zeroes the padding
    /// and clears `filled`. For buffer pools; not while the buffer is shared.
    void reset(std::size_t size) noexcept {
        size_ = size;
        filled = 0;
        std::memset(data_.get() + size_, 0, capacity_ - size_);
    }
    /// Allocated bytes: the size asked at construction rounded up to io_alignment (at least one block).
    std::size_t capacity() const noexcept { return capacity_; }
    std::byte* data() noexcept { return data_.get(); }
    const std::byte* data() const noexcept { return data_.get(); }
    std::size_t size() const noexcept { return size_; }
    /// Bytes that are valid (filled); may be set below size() after a short source.
    std::size_t filled = 0;

private:
    struct free_deleter {
        void operator()(std::byte* p) const noexcept { std::free(p); }
    };
    std::size_t size_;
    std::size_t capacity_;
    std::unique_ptr<std::byte, free_deleter> data_;
};

using buffer_ptr = std::shared_ptr<const aligned_buffer>;

/// A buffer of `size` bytes for a fetch, from a process-wide pool of freed buffers of the same
/// capacity when there is one (see base/buffer_pool.cpp): its pages are then already
/// mapped and faulted in. Returns to the pool when the last reference goes, from any thread.
/// Throws std::bad_alloc like the constructor.
std::shared_ptr<aligned_buffer> make_fetch_buffer(std::size_t size);
/// make_fetch_buffer for fetchers: nullptr instead of std::bad_alloc, which they answer with
/// -ENOMEM through their normal callback. A failure is counted (fetch_buffer_failures) and logged,
/// rate-limited.
std::shared_ptr<aligned_buffer> try_make_fetch_buffer(std::size_t size) noexcept;
/// Fetch buffers try_make_fetch_buffer could not allocate, since start.
std::uint64_t fetch_buffer_failures() noexcept;

/// Idle buffers the pool keeps at most, in bytes (beyond it the oldest idle ones are freed).
inline constexpr std::size_t fetch_buffer_pool_bytes = 64u << 20;
/// Bytes the pool holds idle right now (tests and diagnostics).
std::size_t fetch_buffer_pool_idle_bytes();

}  // namespace blobd
