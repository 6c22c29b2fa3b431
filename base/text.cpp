#include "base/text.hpp"

#include <fmt/format.h>

namespace blobd {

std::string printable(std::string_view bytes) {
    constexpr std::size_t cap = 96;
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (out.size() >= cap) {
            out += "...";
            break;
        }
        auto c = static_cast<unsigned char>(bytes[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            out += fmt::format("\\x{:02x}", c);
        }
    }
    return out;
}

}  // namespace blobd
