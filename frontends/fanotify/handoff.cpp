#include "frontends/fanotify/handoff.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <utility>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/file.hpp"

namespace blobd::fanotify {

namespace {
constexpr std::uint64_t table_magic = 0x4e41464442424f4cull;  // "LOBBDFAN"
constexpr std::uint32_t table_version = 1;

struct header {
    std::uint64_t magic;
    std::uint32_t version;
    std::uint32_t capacity;
};
}  // namespace

// fd_plus1 == 0: free. It is set last when recording and cleared first when done, with release
// order, so a successor never reads a half-written entry as used.
struct inflight_table::slot {
    std::int32_t fd_plus1;
    std::uint32_t resolved;
    std::uint64_t dev, ino, off, count;
};

namespace {
constexpr std::size_t table_bytes = sizeof(header) + inflight_table::capacity * 40;
static_assert(sizeof(header) == 16);
}  // namespace

inflight_table::inflight_table(unique_fd fd, void* map) : fd_(std::move(fd)), map_(map) {
    static_assert(sizeof(slot) == 40);
}

inflight_table::inflight_table(inflight_table&& o) noexcept
    : fd_(std::move(o.fd_)), map_(std::exchange(o.map_, nullptr)), free_(std::move(o.free_)) {}

inflight_table& inflight_table::operator=(inflight_table&& o) noexcept {
    if (this != &o) {
        if (map_) ::munmap(map_, table_bytes);
        fd_ = std::move(o.fd_);
        map_ = std::exchange(o.map_, nullptr);
        free_ = std::move(o.free_);
    }
    return *this;
}

inflight_table::~inflight_table() {
    if (map_) ::munmap(map_, table_bytes);
}

inflight_table::slot* inflight_table::slots() const noexcept {
    return reinterpret_cast<slot*>(static_cast<char*>(map_) + sizeof(header));
}

result<inflight_table, std::string> inflight_table::create() {
    unique_fd fd(::memfd_create("erofs-blobd-fanotify-events", MFD_CLOEXEC));
    if (!fd) return unexpected{fmt::format("memfd_create: {}", std::strerror(errno))};
    if (::ftruncate(fd.get(), static_cast<off_t>(table_bytes)) < 0) {
        return unexpected{fmt::format("sizing the event table: {}", std::strerror(errno))};
    }
    void* map = ::mmap(nullptr, table_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (map == MAP_FAILED) return unexpected{fmt::format("mmap of the event table: {}", std::strerror(errno))};
    auto* h = static_cast<header*>(map);
    h->magic = table_magic;
    h->version = table_version;
    h->capacity = capacity;
    inflight_table t(std::move(fd), map);
    t.free_.reserve(capacity);
    for (int i = static_cast<int>(capacity) - 1; i >= 0; --i) t.free_.push_back(i);
    return t;
}

result<inflight_table, std::string> inflight_table::adopt(unique_fd fd) {
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return unexpected{fmt::format("fstat: {}", std::strerror(errno))};
    if (static_cast<std::size_t>(st.st_size) != table_bytes) {
        return unexpected{fmt::format("{} bytes, not {}", st.st_size, table_bytes)};
    }
    void* map = ::mmap(nullptr, table_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (map == MAP_FAILED) return unexpected{fmt::format("mmap: {}", std::strerror(errno))};
    const auto* h = static_cast<const header*>(map);
    if (h->magic != table_magic || h->version != table_version || h->capacity != capacity) {
        ::munmap(map, table_bytes);
        return unexpected{std::string("not an event table of this version")};
    }
    inflight_table t(std::move(fd), map);
    for (int i = static_cast<int>(capacity) - 1; i >= 0; --i) {
        if (std::atomic_ref<std::int32_t>(t.slots()[i].fd_plus1).load(std::memory_order_acquire) == 0) t.free_.push_back(i);
    }
    return t;
}

int inflight_table::record(int event_fd, std::uint64_t off, std::uint64_t count) noexcept {
    if (free_.empty() || event_fd < 0) return -1;
    const int i = free_.back();
    free_.pop_back();
    slot& s = slots()[i];
    s.resolved = 0;
    s.dev = s.ino = 0;
    s.off = off;
    s.count = count;
    std::atomic_ref<std::int32_t>(s.fd_plus1).store(event_fd + 1, std::memory_order_release);
    return i;
}

void inflight_table::resolve(int i, dev_t dev, ino_t ino) noexcept {
    if (i < 0) return;
    slot& s = slots()[i];
    s.dev = static_cast<std::uint64_t>(dev);
    s.ino = static_cast<std::uint64_t>(ino);
    std::atomic_ref<std::uint32_t>(s.resolved).store(1, std::memory_order_release);
}

void inflight_table::clear(int i) noexcept {
    if (i < 0) return;
    std::atomic_ref<std::int32_t>(slots()[i].fd_plus1).store(0, std::memory_order_release);
    free_.push_back(i);
}

std::vector<std::pair<int, inflight_table::entry>> inflight_table::used() const {
    std::vector<std::pair<int, entry>> out;
    for (std::uint32_t i = 0; i < capacity; ++i) {
        slot& s = slots()[i];
        const std::int32_t f = std::atomic_ref<std::int32_t>(s.fd_plus1).load(std::memory_order_acquire);
        if (f == 0) continue;
        entry e;
        e.fd = f - 1;
        e.resolved = std::atomic_ref<std::uint32_t>(s.resolved).load(std::memory_order_acquire) != 0;
        e.dev = s.dev;
        e.ino = s.ino;
        e.off = s.off;
        e.count = s.count;
        out.emplace_back(static_cast<int>(i), e);
    }
    return out;
}

result<bool, std::string> write_state(const std::string& path, const proto::fan::saved_state& s) {
    // No fsync: the state serves a successor on the same boot (after a reboot no mount is left).
    return write_file_atomically(path, proto::fan::encode_state(s));
}

result<std::optional<proto::fan::saved_state>, std::string> read_state(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0 && errno == ENOENT) return std::optional<proto::fan::saved_state>{};
    auto text = read_small_file(path, 64u << 20);
    if (!text) return unexpected{text.error()};
    auto s = proto::fan::decode_state(*text);
    if (!s) return unexpected{fmt::format("{}: {}", path, s.error())};
    return std::optional<proto::fan::saved_state>(std::move(*s));
}

}  // namespace blobd::fanotify
