#include <fmt/format.h>

#include "protocol/message.hpp"

namespace blobd::proto {

std::string copen(std::uint32_t msg_id, std::int64_t size_or_neg_errno) {
    // The kernel parses the id with kstrtoul and the size with kstrtol: plain decimal.
    return fmt::format("copen {},{}", msg_id, size_or_neg_errno);
}

std::string printable(std::string_view key) {
    constexpr std::size_t cap = 96;
    std::string out;
    for (std::size_t i = 0; i < key.size(); ++i) {
        if (out.size() >= cap) {
            out += "...";
            break;
        }
        auto c = static_cast<unsigned char>(key[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            out += fmt::format("\\x{:02x}", c);
        }
    }
    return out;
}

std::string_view domain_of(std::string_view volume_key) {
    constexpr std::string_view prefix = "erofs,";
    if (volume_key.substr(0, prefix.size()) == prefix) return volume_key.substr(prefix.size());
    return volume_key;
}

}  // namespace blobd::proto
