#include "config/json_reader.hpp"

#include <algorithm>
#include <cctype>
#include <numeric>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace blobd::cfg {
namespace {

using json = nlohmann::json;

std::string join(std::span<const std::string_view> words) {
    std::string out;
    for (std::string_view w : words) {
        out += out.empty() ? "" : ", ";
        out += w;
    }
    return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    std::iota(row.begin(), row.end(), std::size_t{0});
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = std::exchange(row[0], i);
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t substitute = diagonal + (a[i - 1] != b[j - 1] ? 1 : 0);
            diagonal = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
        }
    }
    return row[b.size()];
}

}  // namespace

problem fail(std::string path, std::string message) {
    return config_error{std::move(path), std::move(message)};
}

// Config strings come from parsed JSON and are valid UTF-8, but `replace` keeps dump() from
// throwing should that ever change.
std::string quote(std::string_view s) {
    return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string member(const std::string& path, std::string_view key) {
    const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    return plain ? path + "." + std::string(key) : path + "[" + quote(key) + "]";
}

std::string element(const std::string& path, std::size_t index) {
    return path + "[" + std::to_string(index) + "]";
}

// Scalars are shown by value ("got -1", "got \"info\"") since the value usually is the mistake.
std::string describe(const json& v) {
    if (v.is_object()) {
        return "an object";
    }
    if (v.is_array()) {
        return "an array";
    }
    return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

problem wrong_type(const std::string& path, std::string_view expected, const json& got) {
    return fail(path, "expected " + std::string(expected) + ", got " + describe(got));
}

// Unknown keys are errors so that a typo never silently falls back to a default.
problem check_keys(const json& obj, const std::string& path, std::span<const std::string_view> known) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
        const std::string& key = it.key();
        if (std::find(known.begin(), known.end(), key) != known.end()) {
            continue;
        }
        std::string_view best;
        std::size_t best_distance = 3;  // suggest near-misses only; "x" is not a typo of "tag"
        for (std::string_view k : known) {
            const std::size_t d = edit_distance(key, k);
            if (d < best_distance && d < key.size()) {
                best = k;
                best_distance = d;
            }
        }
        return fail(member(path, key), best.empty() ? "unknown key (known keys: " + join(known) + ")"
                                                    : "unknown key (did you mean " + quote(best) + "?)");
    }
    return {};
}

problem check_keys(const json& obj, const std::string& path, std::initializer_list<std::string_view> known) {
    return check_keys(obj, path, std::span<const std::string_view>(known.begin(), known.size()));
}

const json* find(const json& obj, const char* key) {
    const auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
}

problem read_string(const json& v, const std::string& path, std::string& out) {
    if (!v.is_string()) {
        return wrong_type(path, "a string", v);
    }
    out = v.get<std::string>();
    return {};
}

// An embedded NUL would silently truncate the path at the syscall boundary.
problem read_absolute_path(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    if (out.empty() || out.front() != '/') {
        return fail(path, "expected an absolute path, got " + quote(out));
    }
    if (auto c = std::find_if(out.begin(), out.end(), [](char ch) { return std::iscntrl(static_cast<unsigned char>(ch)); });
        c != out.end()) {
        // A NUL cuts the path at the syscall; a newline would end the "dir" command to the kernel
        // early and start another, and splits log lines.
        return fail(path, fmt::format("must not contain control characters (found 0x{:02x} at byte {})",
                                      static_cast<unsigned char>(*c), c - out.begin()));
    }
    return {};
}

problem read_optional_path(const json& v, const std::string& path, std::string& out) {
    if (auto p = read_string(v, path, out)) {
        return p;
    }
    return out.empty() ? problem{} : read_absolute_path(v, path, out);
}

problem read_bool(const json& v, const std::string& path, bool& out) {
    if (!v.is_boolean()) {
        return wrong_type(path, "a boolean", v);
    }
    out = v.get<bool>();
    return {};
}

}  // namespace blobd::cfg
