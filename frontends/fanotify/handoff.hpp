// What a fanotify daemon leaves its successor besides the fds in the service manager's store
// (docs/fanotify.md, "Restarts").
//
// inflight_table: the pre-content events this process read and has not answered yet, in a memfd
// kept in the fd store ("fanotify-events"). A reader blocked on an event stays blocked while the
// group lives (the store holds it), and the kernel matches the answer by the event's fd *number*
// alone, so a successor that knows (fd number, file, range) of each can fill the range and answer
// it. The table is shared memory: an entry is written before the event is handled and cleared
// only after its answer went out, with no syscall in between, so a SIGKILL at any point leaves
// the table true (apart from the instant between read() of a batch and its entries: those events
// stay unanswered, their readers wait until killed).
//
// state files: saved_state (protocol/fanotify/handoff_state) written atomically (rename) to
// <root>/state.json on every mount and unmount.
//
// Threading: the fanotify frontend's loop thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "protocol/fanotify/handoff_state.hpp"

namespace blobd::fanotify {

class inflight_table {
public:
    /// Entries: more than the events that can block at once (one per blocked reading task).
    static constexpr std::uint32_t capacity = 16384;

    struct entry {
        int fd = -1;          ///< the event's fd number in the process that read it
        bool resolved = false;  ///< dev/ino known (set after fstat of the event fd)
        std::uint64_t dev = 0, ino = 0, off = 0, count = 0;
    };

    /// A new, empty table in a fresh memfd.
    static result<inflight_table, std::string> create();
    /// The table a predecessor left in `memfd`; fails if it is not one (size, magic, version).
    static result<inflight_table, std::string> adopt(unique_fd memfd);

    inflight_table(inflight_table&&) noexcept;
    inflight_table& operator=(inflight_table&&) noexcept;
    ~inflight_table();

    int fd() const noexcept { return fd_.get(); }
    /// Records an event; returns its slot, or -1 when the table is full (the event is then served
    /// unrecorded: a crash before its answer leaves its reader blocked).
    int record(int event_fd, std::uint64_t off, std::uint64_t count) noexcept;
    void resolve(int slot, dev_t dev, ino_t ino) noexcept;
    /// After the answer was written.
    void clear(int slot) noexcept;
    /// The slots in use, with what they hold (a predecessor's unanswered events right after adopt()).
    std::vector<std::pair<int, entry>> used() const;
    std::size_t in_use() const noexcept { return capacity - free_.size(); }

private:
    inflight_table(unique_fd fd, void* map);
    struct slot;
    slot* slots() const noexcept;

    unique_fd fd_;
    void* map_ = nullptr;
    std::vector<int> free_;
};

/// Writes `s` to `path` atomically (a temporary file renamed over it). The error is one line.
result<bool, std::string> write_state(const std::string& path, const proto::fan::saved_state& s);
/// The state at `path`: nullopt when there is none, an error when it cannot be read or decoded.
result<std::optional<proto::fan::saved_state>, std::string> read_state(const std::string& path);

}  // namespace blobd::fanotify
