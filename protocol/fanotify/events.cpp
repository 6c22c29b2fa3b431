#include "protocol/fanotify/events.hpp"

#include <cstring>
#include <string>

namespace blobd::proto::fan {

namespace {

template <class T>
T load(std::span<const std::byte> buf, std::size_t at) {
    T v;
    std::memcpy(&v, buf.data() + at, sizeof v);
    return v;
}

// The info records of one event: [from, to) of `buf`. Fills e.where or e.problem.
void parse_records(std::span<const std::byte> buf, std::size_t from, std::size_t to, event& e) {
    std::size_t at = from;
    while (at < to) {
        if (to - at < 4) {
            e.problem = "truncated info record header";
            return;
        }
        const auto type = load<std::uint8_t>(buf, at);
        const auto len = load<std::uint16_t>(buf, at + 2);
        if (len < 4 || len > to - at) {
            e.problem = "info record of " + std::to_string(len) + " bytes with " + std::to_string(to - at) + " left";
            return;
        }
        if (type == info_type_range) {
            if (len != range_record_len) {
                e.problem = "range record of " + std::to_string(len) + " bytes";
                return;
            }
            if (e.where) {
                e.problem = "two range records";
                return;
            }
            range r{load<std::uint64_t>(buf, at + 8), load<std::uint64_t>(buf, at + 16)};
            if (r.count > UINT64_MAX - r.offset) {
                e.problem = "range past 2^64";
                return;
            }
            e.where = r;
        }
        // Other record types (pidfd, fid, error) are not asked for; skipped if present.
        at += len;
    }
}

}  // namespace

batch parse_events(std::span<const std::byte> buf) {
    batch out;
    std::size_t at = 0;
    while (at < buf.size()) {
        const std::size_t left = buf.size() - at;
        if (left < metadata_len) {
            out.trailing = std::to_string(left) + " bytes after the last event";
            break;
        }
        event e;
        const auto event_len = load<std::uint32_t>(buf, at);
        const auto vers = load<std::uint8_t>(buf, at + 4);
        const auto meta_len = load<std::uint16_t>(buf, at + 6);
        e.mask = load<std::uint64_t>(buf, at + 8);
        e.fd = load<std::int32_t>(buf, at + 16);
        e.pid = load<std::int32_t>(buf, at + 20);
        // Without a sane length the next event cannot be found: report this one and stop.
        const bool len_ok = event_len >= metadata_len && event_len <= left;
        if (e.fd == no_fd) {
            // FAN_Q_OVERFLOW is the one event without an fd; any fd-less event in a permission
            // group means the same for the daemon: something it should answer is not there.
            out.overflow = true;
        } else if (e.fd < 0) {
            // No fd to answer by (FAN_EPIDFD and the like are pidfd values, not event fds).
        } else {
            if (vers != metadata_version) {
                e.problem = "metadata version " + std::to_string(vers);
            } else if (!len_ok) {
                e.problem = "event length " + std::to_string(event_len) + " with " + std::to_string(left) + " bytes left";
            } else if (meta_len < metadata_len || meta_len > event_len) {
                e.problem = "metadata length " + std::to_string(meta_len) + " in an event of " + std::to_string(event_len);
            } else {
                parse_records(buf, at + meta_len, at + event_len, e);
            }
            out.events.push_back(std::move(e));
        }
        if (!len_ok) {
            out.trailing = "event length " + std::to_string(event_len) + " with " + std::to_string(left) + " bytes left";
            break;
        }
        at += event_len;
    }
    return out;
}

std::array<std::byte, 8> encode_response(int fd, std::uint32_t response) {
    std::array<std::byte, 8> out{};
    const std::int32_t f = fd;
    std::memcpy(out.data(), &f, 4);
    std::memcpy(out.data() + 4, &response, 4);
    return out;
}

}  // namespace blobd::proto::fan
