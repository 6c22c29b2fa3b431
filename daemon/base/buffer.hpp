// aligned_buffer: a heap buffer aligned for direct I/O. Writes into a cachefiles anon fd go to the
// backing file with O_DIRECT semantics, so the user buffer must be block-aligned (4096 is safe on
// every filesystem cachefiles supports). Immutable once filled; shared between the fetch that
// filled it and the writes that drain it (shared_ptr<const aligned_buffer>). Any thread.
#pragma once

#include <cstddef>
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
          data_(static_cast<std::byte*>(std::aligned_alloc(io_alignment, round_up(size ? size : 1, io_alignment)))) {
        if (!data_) throw std::bad_alloc();
        // The padding up to the next block is zeroed: a blob's unaligned tail is written as a
        // whole block (direct I/O needs block-sized lengths), and those bytes must be defined.
        std::memset(data_.get() + size_, 0, capacity() - size_);
    }
    /// Allocated bytes: size() rounded up to io_alignment (at least one block).
    std::size_t capacity() const noexcept { return round_up(size_ ? size_ : 1, io_alignment); }
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
    std::unique_ptr<std::byte, free_deleter> data_;
};

using buffer_ptr = std::shared_ptr<const aligned_buffer>;

}  // namespace blobd
