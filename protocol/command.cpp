#include <fmt/format.h>

#include "protocol/message.hpp"

namespace blobd::proto {

std::string copen(std::uint32_t msg_id, std::int64_t size_or_neg_errno) {
    // The kernel parses the id with kstrtoul and the size with kstrtol: plain decimal.
    return fmt::format("copen {},{}", msg_id, size_or_neg_errno);
}

std::string_view domain_of(std::string_view volume_key) {
    constexpr std::string_view prefix = "erofs,";
    if (volume_key.substr(0, prefix.size()) == prefix) return volume_key.substr(prefix.size());
    return volume_key;
}

}  // namespace blobd::proto
