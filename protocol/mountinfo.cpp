#include "protocol/mountinfo.hpp"

namespace blobd::proto {

namespace {
bool octal(char c) { return c >= '0' && c <= '7'; }

/// The next space-separated field of `line` from `pos` (advanced past it); empty at the end.
std::string_view next_field(std::string_view line, std::size_t& pos) {
    while (pos < line.size() && line[pos] == ' ') ++pos;
    const std::size_t start = pos;
    while (pos < line.size() && line[pos] != ' ') ++pos;
    return line.substr(start, pos - start);
}
}  // namespace

std::string unescape_mount_field(std::string_view field) {
    std::string out;
    out.reserve(field.size());
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size() && octal(field[i + 1]) && octal(field[i + 2]) && octal(field[i + 3]) &&
            field[i + 1] <= '3') {
            out += static_cast<char>(((field[i + 1] - '0') << 6) | ((field[i + 2] - '0') << 3) | (field[i + 3] - '0'));
            i += 3;
            continue;
        }
        out += field[i];
    }
    return out;
}

std::vector<mount_entry> parse_mountinfo(std::string_view text) {
    std::vector<mount_entry> out;
    while (!text.empty()) {
        const std::size_t nl = text.find('\n');
        const std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        std::size_t pos = 0;
        std::string_view f[5];
        bool ok = true;
        for (auto& field : f) {
            field = next_field(line, pos);
            if (field.empty()) ok = false;
        }
        if (!ok) continue;
        // Optional fields up to the lone "-", then type, source and super options.
        std::string_view sep;
        do {
            sep = next_field(line, pos);
        } while (!sep.empty() && sep != "-");
        if (sep != "-") continue;
        const std::string_view type = next_field(line, pos);
        const std::string_view source = next_field(line, pos);
        if (type.empty() || source.empty()) continue;
        out.push_back({unescape_mount_field(f[4]), unescape_mount_field(type), unescape_mount_field(source)});
    }
    return out;
}

}  // namespace blobd::proto
