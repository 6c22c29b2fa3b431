// The pieces config readers are built from: JSON paths, type-checked reads, unknown-key checks with
// a "did you mean" hint. Used by config/load.cpp and by the source kinds' readers
// (sources/kinds.cpp), so every config error reads the same way.
//
// Every reader returns the first problem it finds, or nothing; the first one wins (one precise
// message naming its JSON path beats a cascade of follow-up errors). Pure, no I/O, never throws on
// bad input; any thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/source.hpp"

namespace blobd::cfg {

using problem = std::optional<config_error>;

problem fail(std::string path, std::string message);

/// `s` as a JSON string literal ("\"info\""): how values are shown in messages.
std::string quote(std::string_view s);
/// The path of `key` in the object at `path`: `$.a.b`, or `$["a.b"]` when the key is not a plain
/// identifier, so a path always names exactly one value.
std::string member(const std::string& path, std::string_view key);
/// The path of element `index` of the array at `path`: `$.sources[2]`.
std::string element(const std::string& path, std::size_t index);
/// A value as messages show it: scalars by value ("got -1"), "an object", "an array".
std::string describe(const nlohmann::json& v);
/// "expected <expected>, got <describe(got)>" at `path`.
problem wrong_type(const std::string& path, std::string_view expected, const nlohmann::json& got);

/// The first key of `obj` not in `known`, as an error at its path: "did you mean ...?" for a
/// near-miss, else the list of known keys.
problem check_keys(const nlohmann::json& obj, const std::string& path, std::span<const std::string_view> known);
problem check_keys(const nlohmann::json& obj, const std::string& path, std::initializer_list<std::string_view> known);

/// The member `key` of `obj`, or nullptr.
const nlohmann::json* find(const nlohmann::json& obj, const char* key);

problem read_string(const nlohmann::json& v, const std::string& path, std::string& out);
/// A non-empty absolute path without NUL.
problem read_absolute_path(const nlohmann::json& v, const std::string& path, std::string& out);
/// "" (none) or an absolute path.
problem read_optional_path(const nlohmann::json& v, const std::string& path, std::string& out);
problem read_bool(const nlohmann::json& v, const std::string& path, bool& out);

/// A reader for an integer in [lo, hi].
inline auto read_uint_between(std::uint32_t lo, std::uint32_t hi) {
    return [lo, hi](const nlohmann::json& v, const std::string& path, std::uint32_t& out) -> problem {
        if (!v.is_number_integer()) {
            return wrong_type(path, "an integer", v);
        }
        if (!v.is_number_unsigned() || v.get<std::uint64_t>() < lo || v.get<std::uint64_t>() > hi) {
            return fail(path, "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                                  ", got " + describe(v));
        }
        out = static_cast<std::uint32_t>(v.get<std::uint64_t>());
        return {};
    };
}

/// Reads the optional member `key` of `obj` with `reader`; an absent key keeps `out` (its default).
template <class Reader, class T>
problem read_optional(const nlohmann::json& obj, const std::string& path, const char* key, T& out, Reader reader) {
    const nlohmann::json* v = find(obj, key);
    return v ? reader(*v, member(path, key), out) : problem{};
}

}  // namespace blobd::cfg
