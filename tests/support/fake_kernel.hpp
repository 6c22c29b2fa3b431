// fake_kernel: an in-process stand-in for the kernel side of /dev/cachefiles, for fast and
// exhaustive tests of the daemon's logic. It never replaces the real kernel (tests/e2e does that);
// where the two disagree, the real kernel is right and this file gets fixed.
//
// Messages travel over a nonblocking SOCK_SEQPACKET socketpair (one message per read, as the
// device), and an OPEN's anon fd is passed with SCM_RIGHTS and patched into the message's fd field,
// so the daemon gets a real descriptor installed "during read()". Cache files are real files in a
// temporary directory; the daemon's anon fd is opened O_WRONLY|O_DIRECT, so misaligned buffers fail
// with EINVAL as they do on the real kernel. copen and READ_COMPLETE are answered synchronously with
// the real kernel's error codes (fs/cachefiles/ondemand.c): EINVAL for unknown or finished ids and
// for a completion on the wrong object.
//
// Threading: one thread (the test's, which also runs the daemon's loop).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.hpp"
#include "frontends/cachefiles/device.hpp"

namespace blobd::test {

class fake_kernel {
public:
    /// Cache files live in a fresh directory under `parent_dir` (benchmarks pass a directory on
    /// the filesystem they measure; tests use the default). With `hold_cache_fds` false the fake
    /// keeps no descriptor of its own per object and reopens a cache file by path when asked about
    /// it, so that a process can hold twice as many objects under RLIMIT_NOFILE (benchmarks).
    explicit fake_kernel(const std::string& parent_dir = "/tmp", bool hold_cache_fds = true);
    ~fake_kernel();

    /// The daemon's end: pass it to blobd::app.
    device& dev() { return *dev_; }

    /// Queues an OPEN for a new object; returns its object_id. With `writable` false the daemon's
    /// anon fd refuses writes (EBADF): a stand-in for a cache disk that fails every write.
    std::uint32_t open(const std::string& volume_key, const std::string& cookie_key, bool writable = true);
    /// Queues a READ; returns its msg_id.
    std::uint32_t read(std::uint32_t object_id, std::uint64_t off, std::uint64_t len);
    /// Queues a CLOSE and, like the kernel, flushes the object's pending READs.
    void close(std::uint32_t object_id);
    /// Queues raw bytes as one message, optionally with an fd that gets installed on receipt.
    void send_raw(const std::vector<std::byte>& bytes, int fd_to_pass = -1);
    /// A cache file fd for send_raw tests (caller passes it; the fake keeps its own copy).
    int new_cache_fd();

    // ---- observations ----
    /// copen size/errno, once the daemon answered the OPEN.
    std::optional<std::int64_t> copen_result(std::uint32_t object_id) const;
    /// How many times OPEN msg_id was answered (must be exactly 1).
    int copen_count_for_msg(std::uint32_t msg_id) const;
    /// READs completed for the object, and per msg_id count (must be 1).
    int completed(std::uint32_t object_id) const;
    int completion_count(std::uint32_t msg_id) const;
    bool read_done(std::uint32_t msg_id) const { return completion_count(msg_id) > 0; }
    /// READ_COMPLETE calls the kernel refused (unknown id, wrong object, duplicate).
    int bad_completions() const { return bad_completions_; }
    /// READ_COMPLETE calls for READs the kernel had already flushed (object closed): refused
    /// with EINVAL like the kernel, but expected when a CLOSE races in-flight work.
    int late_completions() const { return late_completions_; }
    /// Descriptors the fake itself holds (one per object unless hold_cache_fds is false), for leak
    /// accounting.
    int own_fds() const;
    /// Commands other than copen that the daemon sent, and copens that were refused.
    const std::vector<std::string>& other_commands() const { return other_commands_; }
    int bad_copens() const { return bad_copens_; }
    /// Bytes of the cache file (what the daemon wrote).
    std::string cache_bytes(std::uint32_t object_id, std::uint64_t off, std::uint64_t len) const;
    /// Size of the cache file on disk (nothing may be written past the blob size).
    std::uint64_t cache_file_size(std::uint32_t object_id) const;
    /// Descriptors in this process that still refer to the object's cache file, the fake's own
    /// copy excluded (0 after CLOSE once the daemon let go).
    int daemon_fds_for(std::uint32_t object_id) const;
    std::uint32_t last_msg_id() const { return next_msg_ - 1; }

private:
    class fake_device;
    friend class fake_device;
    struct object {
        std::string path;
        unique_fd check_fd;   // the fake's own read-only handle (unless hold_cache_fds is false)
        std::uint64_t dev = 0, ino = 0;  // the cache file's identity, to check completions against
        std::optional<std::int64_t> copen;
        std::uint32_t open_msg = 0;
        bool closed = false;
    };
    struct request {
        std::uint32_t opcode;
        std::uint32_t object_id;
        int completions = 0;
        bool live = true;
    };
    int on_command(std::string_view cmd);
    int on_cread(int anon_fd, std::uint32_t msg_id);
    void queue(const std::vector<std::byte>& bytes, int fd);
    /// The object's own handle, or the cache file reopened into `tmp` when none is held.
    int object_fd(const object& o, unique_fd& tmp) const;

    std::string dir_;
    bool hold_fds_ = true;
    std::size_t max_queued_ = 0;  // the largest message ever queued (fake_device::read_message)
    unique_fd kernel_end_;
    std::unique_ptr<device> dev_;
    std::uint32_t next_msg_ = 1;
    std::uint32_t next_object_ = 1;
    std::map<std::uint32_t, object> objects_;
    std::map<std::uint32_t, request> requests_;
    std::map<std::uint32_t, int> copen_counts_;
    std::vector<std::string> other_commands_;
    int bad_completions_ = 0;
    int late_completions_ = 0;
    int bad_copens_ = 0;
};

/// Counts this process's open descriptors (leak checks).
int open_fd_count();

}  // namespace blobd::test
