// control_access: which control commands change the daemon's state, and who may send those.
// Pure functions; any thread. The control server asks them for every request before the handler
// sees it (docs/operations.md, "Who may use the control socket").
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace blobd {

/// The command of a request line: the "cmd" member of a JSON object, or else the line itself
/// without trailing spaces and CRs (a bare "stats" from socat).
std::string control_command(std::string_view request);

/// True for commands that change state (mount, umount, cull, reload): those need a trusted peer.
/// Everything else is read-only, unknown commands included (the handler refuses them anyway).
bool control_changes_state(std::string_view cmd) noexcept;

/// The refusal for `cmd` from a peer of uid `peer_uid`, or nullopt when it is allowed: read-only
/// commands are allowed to everyone who can connect; state-changing ones only to a uid in
/// `trusted` (the daemon's: 0 and its own uid).
std::optional<std::string> control_refusal(std::string_view cmd, uid_t peer_uid, const std::vector<uid_t>& trusted);

}  // namespace blobd
