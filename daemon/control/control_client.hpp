// control_client: one request to a running erofs-blobd over its control socket (control_server.hpp:
// one JSON line out, one JSON line back). Shared by erofs-blobctl and mount.erofs-blobd, which map
// the kinds of failure to their own exit codes (blobctl 1-4, the mount helper mount(8)'s 1 and 32).
// Threading: any thread; blocking (connect, send, receive up to the timeout).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.hpp"

namespace blobd::control {

struct call_error {
    enum class kind {
        bad_path,     ///< the socket path is empty or too long for sockaddr_un
        unreachable,  ///< no socket there, not a socket, nobody listening (stale), or send failed
        denied,       ///< connect refused for who we are, or the daemon refused the command (SO_PEERCRED)
        no_answer,    ///< nothing within the timeout, the connection closed empty, or not a JSON object
    };
    kind what;
    std::string message;  ///< one line, no program name: "no daemon socket at P: is erofs-blobd running?"
};

struct reply {
    nlohmann::json json;  ///< the reply, an object
    std::string text;     ///< as it came (the daemon's key order), trailing newlines removed
};

/// Sends `request` to the daemon at `socket_path` and waits up to `timeout_s` seconds for the
/// reply. A reply marked "denied" is a call_error (kind denied, the daemon's reason); any other
/// reply, ok or not, is returned. `timeout_hint` is appended to the message of a reply that did not
/// come in time (blobctl: "(try --timeout)").
result<reply, call_error> call(const std::string& socket_path, const nlohmann::json& request, int timeout_s,
                               const std::string& timeout_hint = "");

}  // namespace blobd::control
