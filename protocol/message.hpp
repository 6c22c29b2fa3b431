// Kernel messages of the cachefiles on-demand protocol, parsed into owned values, and the text
// commands the daemon writes back.
//
// Parsing is pure: no syscalls, no asserts, nothing thrown; the bytes are copied out and every
// length field is checked against what was actually read (a size field is never trusted). One
// exception to "pure" is ownership: an OPEN carries an fd the kernel installed in this process
// during read(), so a parse_error may hand back `stray_fd`, which the caller must close and answer
// with `copen <id>,-EINVAL` if the msg_id is known. Any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "base/result.hpp"
#include "base/text.hpp"
#include "protocol/uapi/cachefiles.h"

namespace blobd::proto {

static_assert(sizeof(cachefiles_msg) == 16);
static_assert(sizeof(cachefiles_open) == 16);
static_assert(sizeof(cachefiles_read) == 16);

inline constexpr std::size_t max_message_size = CACHEFILES_MSG_MAX_SIZE;
/// fscache limits a cookie key to 255 bytes (uapi comment); volume keys are also small.
inline constexpr std::size_t max_key_size = 255;
/// The volume key as the kernel sends it includes a NUL: allow 255 chars + NUL.
inline constexpr std::size_t max_volume_key_size = max_key_size + 1;

struct open_request {
    std::uint32_t msg_id = 0;
    std::uint32_t object_id = 0;
    int fd = -1;                    ///< anon fd the kernel installed; the receiver owns it
    std::uint32_t flags = 0;
    std::string volume_key;         ///< without the trailing NUL, e.g. "erofs,d1"
    std::string cookie_key;         ///< binary-safe; erofs uses the fsid or a device tag
};

struct read_request {
    std::uint32_t msg_id = 0;
    std::uint32_t object_id = 0;
    std::uint64_t off = 0;
    std::uint64_t len = 0;
};

struct close_request {
    std::uint32_t msg_id = 0;
    std::uint32_t object_id = 0;
};

using message = std::variant<open_request, read_request, close_request>;

enum class errc {
    truncated_header = 1,   ///< fewer bytes than struct cachefiles_msg
    length_mismatch,        ///< hdr.len differs from the bytes read
    too_long,               ///< more than CACHEFILES_MSG_MAX_SIZE bytes
    unknown_opcode,
    truncated_payload,      ///< the opcode's fixed payload does not fit
    key_overflow,           ///< key sizes exceed the payload or the limits
    volume_key_not_terminated,
    empty_key,
    bad_fd,                 ///< the OPEN's fd field is not a plausible descriptor
    read_overflow,          ///< off + len wraps around
};
const std::error_category& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

struct parse_error {
    std::error_code ec;
    std::optional<std::uint32_t> msg_id;   ///< known once the header was readable
    std::optional<std::uint32_t> opcode;   ///< known once the header was readable
    int stray_fd = -1;                      ///< OPEN only: installed by the kernel; caller closes it
};

/// Parses exactly one message as returned by one read() of the device.
result<message, parse_error> parse(std::span<const std::byte> bytes);

/// "copen <msg_id>,<size>" where size >= 0 is the blob size and < 0 a negative errno.
std::string copen(std::uint32_t msg_id, std::int64_t size_or_neg_errno);

/// cachefiles' space limits for one resource of the cache filesystem (blocks, or files), in percent
/// free: culling should start below `cull`, go on until above `run`; below `stop` the kernel refuses
/// to allocate cache space (writes fail with ENOBUFS). Valid: 0 <= stop < cull < run < 100.
struct cull_limits {
    unsigned run = 10, cull = 7, stop = 3;  // cachefilesd.conf's defaults (the kernel's: 7/5/1)
    bool operator==(const cull_limits&) const = default;
};
/// Why `l` is not valid, or nothing.
std::optional<std::string> cull_limits_problem(const cull_limits& l);
/// The commands that set `l` for resource 'b' (blocks: brun/bcull/bstop) or 'f' (files) whatever
/// the current values: the kernel checks each against the other two (run > cull > stop), so the
/// order is stop 0, cull 1, run, cull, stop, each step valid from any valid state. `l` must be valid.
std::vector<std::string> cull_limit_commands(char resource, const cull_limits& l);

/// Human-readable cookie key for logs (base/text.hpp): printable ASCII kept, other bytes as \xNN.
using ::blobd::printable;

/// A cookie key that is safe to use as one path component or URL segment: 1..255 bytes, not "."
/// or "..", no '/', no NUL, no control characters. Returns an explanation when it is not.
std::optional<std::string_view> cookie_name_problem(std::string_view key);

/// The domain a volume key names: "erofs,<domain_id or fsid>" -> "<domain_id or fsid>".
/// Other volume keys (another netfs) are returned whole.
std::string_view domain_of(std::string_view volume_key);

}  // namespace blobd::proto

template <>
struct std::is_error_code_enum<blobd::proto::errc> : std::true_type {};
