// Text helpers for logs. Pure; any thread.
#pragma once

#include <string>
#include <string_view>

namespace blobd {

/// Untrusted bytes (a cookie name, a domain_id, a volume key) as a log may show them: printable
/// ASCII kept, every other byte and the backslash as \xNN, at most 96 bytes of it then "...".
/// A newline or an escape sequence in a name can then neither split nor forge a log line.
std::string printable(std::string_view bytes);

}  // namespace blobd
