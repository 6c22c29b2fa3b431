#include "daemon/control/control_access.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace blobd {

std::string control_command(std::string_view request) {
    std::string cmd(request);
    auto j = nlohmann::json::parse(request, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("cmd") && j["cmd"].is_string()) {
        cmd = j["cmd"].get<std::string>();
    }
    while (!cmd.empty() && (cmd.back() == '\r' || cmd.back() == ' ')) cmd.pop_back();
    return cmd;
}

bool control_changes_state(std::string_view cmd) noexcept {
    // The one list: a new command that changes anything belongs here.
    static constexpr std::array<std::string_view, 4> changing{"mount", "umount", "cull", "reload"};
    return std::find(changing.begin(), changing.end(), cmd) != changing.end();
}

std::optional<std::string> control_refusal(std::string_view cmd, uid_t peer_uid, const std::vector<uid_t>& trusted) {
    if (!control_changes_state(cmd)) return std::nullopt;
    if (std::find(trusted.begin(), trusted.end(), peer_uid) != trusted.end()) return std::nullopt;
    return fmt::format("{} needs root: peer uid {}", cmd, peer_uid);
}

}  // namespace blobd
