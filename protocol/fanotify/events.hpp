// fanotify pre-content events, parsed into owned values, and the responses written back: the
// protocol of the fanotify frontend (kernel >= 6.14, FAN_CLASS_PRE_CONTENT groups; see
// docs/fanotify.md and ../shared/docs/fanotify-pre-content.md).
//
// A read() of a fanotify group fd returns a run of events, each a fanotify_event_metadata header
// followed by info records; a FAN_PRE_ACCESS event carries the fd of the file being read (installed
// in this process by that read) and a RANGE record (offset, count). Every such event blocks a reader
// until it is answered by writing {fd, FAN_ALLOW or FAN_DENY|errno<<24} to the group fd.
//
// Parsing is pure: no syscalls, nothing thrown, every length checked against the bytes actually
// read. The one rule beyond "pure" is ownership: every event whose header could be read is
// returned, with its fd, even when the rest is malformed (then `problem` says why): each must be
// answered (a deny) and its fd closed, or a reader stays blocked and the fd leaks. Any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace blobd::proto::fan {

// Constants Debian 12's linux-libc-dev (6.1) lacks; values from include/uapi/linux/fanotify.h.
inline constexpr std::uint64_t pre_access = 0x00100000;   ///< FAN_PRE_ACCESS (6.14)
inline constexpr std::uint64_t q_overflow = 0x00004000;   ///< FAN_Q_OVERFLOW
inline constexpr std::uint8_t info_type_range = 6;         ///< FAN_EVENT_INFO_TYPE_RANGE
inline constexpr std::uint8_t metadata_version = 3;        ///< FANOTIFY_METADATA_VERSION
inline constexpr std::size_t metadata_len = 24;            ///< sizeof(struct fanotify_event_metadata)
inline constexpr std::size_t range_record_len = 24;        ///< sizeof(struct fanotify_event_info_range)
inline constexpr std::uint32_t allow = 0x01;               ///< FAN_ALLOW
inline constexpr std::uint32_t deny = 0x02;                ///< FAN_DENY
inline constexpr int no_fd = -1;                           ///< FAN_NOFD

/// FAN_DENY with an errno for the reader (FAN_DENY_ERRNO). The kernel accepts only some
/// (EPERM, EIO, EBUSY, ETXTBSY, EAGAIN, ENOSPC, EDQUOT) and refuses the write otherwise; an erofs
/// reader sees EIO whatever is chosen.
constexpr std::uint32_t deny_errno(int err) { return deny | (static_cast<std::uint32_t>(err) << 24); }

struct range {
    std::uint64_t offset = 0;
    std::uint64_t count = 0;
    bool operator==(const range&) const = default;
};

struct event {
    int fd = no_fd;             ///< the event's fd: the receiver owns it, answers by it, then closes it
    std::uint64_t mask = 0;
    std::int32_t pid = 0;
    std::optional<range> where; ///< the RANGE record
    /// Empty: well formed. Otherwise what is wrong; the event must still be answered (denied).
    std::string problem;
};

struct batch {
    std::vector<event> events;  ///< in buffer order; every fd >= 0 seen in a header, once
    /// A queue overflow event (fd FAN_NOFD) was seen: permission events may have been lost, and a
    /// lost one can never be answered.
    bool overflow = false;
    /// Bytes at the end that do not form an event (a short read, a bad length): why. Empty if none.
    std::string trailing;
};

/// Parses the bytes of one read() of a group fd.
batch parse_events(std::span<const std::byte> buf);

/// The 8 bytes of a struct fanotify_response {__s32 fd; __u32 response;} in host byte order.
std::array<std::byte, 8> encode_response(int fd, std::uint32_t response);

}  // namespace blobd::proto::fan
