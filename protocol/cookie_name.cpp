#include "protocol/message.hpp"

namespace blobd::proto {

std::optional<std::string_view> cookie_name_problem(std::string_view key) {
    // The name becomes a path component under a source directory and a URL segment: anything
    // that could walk out of the directory or confuse a parser is refused, not escaped.
    if (key.empty()) return "empty name";
    if (key.size() > max_key_size) return "longer than 255 bytes";
    if (key == "." || key == "..") return "is '.' or '..'";
    for (char ch : key) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '/') return "contains '/'";
        if (c == '\0') return "contains NUL";
        if (c < 0x20 || c == 0x7f) return "contains a control character";
    }
    return std::nullopt;
}

}  // namespace blobd::proto
