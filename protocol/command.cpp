#include <fmt/format.h>

#include "protocol/message.hpp"

namespace blobd::proto {

std::string copen(std::uint32_t msg_id, std::int64_t size_or_neg_errno) {
    // The kernel parses the id with kstrtoul and the size with kstrtol: plain decimal.
    return fmt::format("copen {},{}", msg_id, size_or_neg_errno);
}

std::optional<std::string> cull_limits_problem(const cull_limits& l) {
    if (l.run >= 100 || l.cull >= l.run || l.stop >= l.cull) {
        return fmt::format("expected stop < cull < run < 100, got {} < {} < {}", l.stop, l.cull, l.run);
    }
    return std::nullopt;
}

std::vector<std::string> cull_limit_commands(char resource, const cull_limits& l) {
    const auto cmd = [resource](const char* what, unsigned pct) { return fmt::format("{}{} {}%", resource, what, pct); };
    // From any valid (run, cull, stop): stop 0 < cull; cull 1 (> 0, < run since run > cull >= 1);
    // run R > 1; cull C (> 0, < R); stop S (< C).
    return {cmd("stop", 0), cmd("cull", 1), cmd("run", l.run), cmd("cull", l.cull), cmd("stop", l.stop)};
}

std::string_view domain_of(std::string_view volume_key) {
    constexpr std::string_view prefix = "erofs,";
    if (volume_key.substr(0, prefix.size()) == prefix) return volume_key.substr(prefix.size());
    return volume_key;
}

}  // namespace blobd::proto
