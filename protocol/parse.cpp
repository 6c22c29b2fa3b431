#include <climits>
#include <cstring>

#include "protocol/message.hpp"

namespace blobd::proto {

namespace {

class category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "cachefiles-protocol"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::truncated_header: return "message shorter than its header";
            case errc::length_mismatch: return "header length differs from the bytes read";
            case errc::too_long: return "message longer than CACHEFILES_MSG_MAX_SIZE";
            case errc::unknown_opcode: return "unknown opcode";
            case errc::truncated_payload: return "payload shorter than the opcode requires";
            case errc::key_overflow: return "key sizes exceed the payload or the key limits";
            case errc::volume_key_not_terminated: return "volume key is not NUL-terminated";
            case errc::empty_key: return "empty volume or cookie key";
            case errc::bad_fd: return "OPEN carries an invalid fd";
            case errc::read_overflow: return "READ range wraps around";
        }
        return "unknown protocol error";
    }
};

// memcpy, never reinterpret_cast: the buffer need not be aligned for the struct, and copying
// out means nothing later can observe a byte change.
template <class T>
T load(std::span<const std::byte> bytes, std::size_t at) {
    T v;
    std::memcpy(&v, bytes.data() + at, sizeof v);
    return v;
}

}  // namespace

const std::error_category& category() noexcept {
    static const category_impl c;
    return c;
}

result<message, parse_error> parse(std::span<const std::byte> bytes) {
    if (bytes.size() < sizeof(cachefiles_msg)) {
        return unexpected{parse_error{errc::truncated_header, {}, {}, -1}};
    }
    const auto hdr = load<cachefiles_msg>(bytes, 0);
    parse_error err{{}, hdr.msg_id, hdr.opcode, -1};
    const auto payload = bytes.subspan(sizeof(cachefiles_msg));

    // An OPEN's fd was installed during read() whatever else is wrong with the message: find it
    // first so every error path below hands it back to the caller to close.
    if (hdr.opcode == CACHEFILES_OP_OPEN && payload.size() >= sizeof(cachefiles_open)) {
        const auto op = load<cachefiles_open>(payload, 0);
        if (op.fd <= static_cast<std::uint32_t>(INT_MAX)) err.stray_fd = static_cast<int>(op.fd);
    }
    auto fail = [&err](errc e) {
        err.ec = e;
        return unexpected{err};
    };

    if (bytes.size() > max_message_size) return fail(errc::too_long);
    if (hdr.len != bytes.size()) return fail(errc::length_mismatch);

    switch (hdr.opcode) {
        case CACHEFILES_OP_OPEN: {
            if (payload.size() < sizeof(cachefiles_open)) return fail(errc::truncated_payload);
            if (err.stray_fd < 0) return fail(errc::bad_fd);
            const auto op = load<cachefiles_open>(payload, 0);
            const auto keys = payload.subspan(sizeof(cachefiles_open));
            // Sum in 64 bits: two u32 sizes near 2^32 must not wrap into a small total.
            const std::uint64_t total = std::uint64_t{op.volume_key_size} + op.cookie_key_size;
            if (total > keys.size() || op.volume_key_size > max_volume_key_size ||
                op.cookie_key_size > max_key_size) {
                return fail(errc::key_overflow);
            }
            if (op.volume_key_size == 0 || op.cookie_key_size == 0) return fail(errc::empty_key);
            const auto* vk = reinterpret_cast<const char*>(keys.data());
            if (vk[op.volume_key_size - 1] != '\0') return fail(errc::volume_key_not_terminated);
            // The volume key is a C string: it ends at its first NUL.
            std::string volume(vk, strnlen(vk, op.volume_key_size));
            if (volume.empty()) return fail(errc::empty_key);
            open_request r;
            r.msg_id = hdr.msg_id;
            r.object_id = hdr.object_id;
            r.fd = err.stray_fd;
            r.flags = op.flags;
            r.volume_key = std::move(volume);
            r.cookie_key.assign(vk + op.volume_key_size, op.cookie_key_size);
            return message{std::move(r)};
        }
        case CACHEFILES_OP_READ: {
            if (payload.size() != sizeof(cachefiles_read)) return fail(errc::truncated_payload);
            const auto rd = load<cachefiles_read>(payload, 0);
            if (rd.off + rd.len < rd.off) return fail(errc::read_overflow);
            return message{read_request{hdr.msg_id, hdr.object_id, rd.off, rd.len}};
        }
        case CACHEFILES_OP_CLOSE:
            if (!payload.empty()) return fail(errc::truncated_payload);
            return message{close_request{hdr.msg_id, hdr.object_id}};
        default:
            return fail(errc::unknown_opcode);
    }
}

}  // namespace blobd::proto
