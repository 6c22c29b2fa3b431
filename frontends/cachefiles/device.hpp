// device: the narrow seam between the daemon and the kernel's cachefiles on-demand interface.
//
// The only code that knows /dev/cachefiles is cachefiles_device; tests implement the same
// interface with an in-process fake kernel over a SOCK_SEQPACKET socketpair. Semantics follow
// the real device (fs/cachefiles/ondemand.c):
//   - read_message() returns one whole message, 0 when none is pending (it never blocks), or
//     -errno (-EMSGSIZE leaves the message queued). An OPEN installs its anon fd during the call.
//   - send() writes one text command ("copen 7,4096", "restore"); 0 or -errno.
//   - complete_read() is CACHEFILES_IOC_READ_COMPLETE on the object's anon fd; 0 or -errno.
// Threading: loop thread only. The device fd is closed last at shutdown: closing it unbinds the
// cache and fails every pending request with EIO.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "protocol/message.hpp"

namespace blobd {

class device {
public:
    virtual ~device() = default;
    /// Pollable for POLLIN while requests are pending.
    virtual int fd() const = 0;
    virtual ssize_t read_message(std::span<std::byte> buf) = 0;
    virtual int send(std::string_view command) = 0;
    virtual int complete_read(int anon_fd, std::uint32_t msg_id) = 0;
};

/// /dev/cachefiles, bound in on-demand mode.
class cachefiles_device final : public device {
public:
    /// Opens `path`, sends `dir <cache_dir>`, `tag <tag>`, the culling limits (brun/bcull/bstop,
    /// frun/fcull/fstop) and `bind ondemand`. On failure the error is one line that says what went
    /// wrong and how to fix it.
    static result<std::unique_ptr<cachefiles_device>, std::string> open(const std::string& path,
                                                                       const std::string& cache_dir,
                                                                       const std::string& tag,
                                                                       const proto::cull_limits& blocks = {},
                                                                       const proto::cull_limits& files = {});
    /// Takes over a device fd bound by a previous daemon (kept across a restart, see handoff.hpp)
    /// and sends `restore`, so requests the previous process read but never answered are handed
    /// out again. A kernel without `restore` is logged and accepted (those requests stay lost).
    static result<std::unique_ptr<cachefiles_device>, std::string> adopt(unique_fd fd);
    /// Wraps an already bound device fd; sends nothing.
    explicit cachefiles_device(unique_fd fd) : fd_(std::move(fd)) {}

    int fd() const override { return fd_.get(); }
    ssize_t read_message(std::span<std::byte> buf) override;
    int send(std::string_view command) override;
    int complete_read(int anon_fd, std::uint32_t msg_id) override;

private:
    unique_fd fd_;
};

}  // namespace blobd
