// One configured source, type-erased: config/ reads and prints sources through a table of kinds
// it is handed (sources/kinds.hpp has the real one), so it knows no concrete kind and a new kind
// needs no change here.
//
// A source_kind is static data that outlives every config read with it. A source and its settings
// are immutable once read and are shared between threads (shared_ptr<const>).
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "base/result.hpp"

namespace blobd::cfg {

struct config_error {
    std::string path;     ///< JSON path of the offending value, "$" for the document, "" for file errors
    std::string message;  ///< what is wrong and, where it helps, what is expected
    std::string what() const { return path.empty() ? message : path + ": " + message; }
};

/// What one source's JSON object said, validated. A kind's settings type is wrapped in
/// settings_of<T>; this base lets config compare and print them without knowing T.
class source_settings {
public:
    virtual ~source_settings() = default;
    /// Same settings type and equal values (two domains naming the same source share its fetcher).
    virtual bool equals(const source_settings& other) const = 0;
    /// The source's keys as --check-config prints them (defaults filled in, secrets masked),
    /// without "type".
    virtual nlohmann::json to_json() const = 0;
};

/// Settings of type T (config/settings_of.hpp; included by whoever names a T).
template <class T>
class settings_of;

/// What config needs of one kind of source: its "type", its keys, and how to read its object and
/// check the files it names. Plain data, so a table of kinds is a constant.
struct source_kind {
    std::string_view type;                   ///< the JSON "type": "local", "http", ...
    std::span<const std::string_view> keys;  ///< every key its object accepts, "type" included
    /// Reads the object at `path` (an object whose "type" is this kind and whose keys are all in
    /// `keys`). Pure; errors name the JSON path of the offending value.
    result<std::shared_ptr<const source_settings>, config_error> (*read)(const nlohmann::json& object,
                                                                       const std::string& path);
    /// Checks the files the settings name (readable, parseable); the error names the JSON path of
    /// the key and the file, never a secret. Blocking I/O; nullptr: nothing to check.
    std::optional<config_error> (*check_files)(const source_settings& settings, const std::string& path);
    /// Fetches over the network (the blob store is on for such sources by default).
    bool remote;
};

/// The kinds a config may name, in the order "known types" messages list them.
using source_kinds = std::span<const source_kind* const>;

/// One place blobs may come from: a kind and its settings. Cheap to copy (shares the settings).
class source {
public:
    /// `settings` must be what `kind.read` makes (sources::source_of pairs them for code).
    source(const source_kind& kind, std::shared_ptr<const source_settings> settings)
        : kind_(&kind), settings_(std::move(settings)) {}

    const source_kind& kind() const noexcept { return *kind_; }
    const source_settings& settings() const noexcept { return *settings_; }
    /// The settings as T, or nullptr when this source's settings are of another type.
    template <class T>
    const T* as() const noexcept {
        const auto* s = dynamic_cast<const settings_of<T>*>(settings_.get());
        return s ? &s->value() : nullptr;
    }
    /// {"type": ..., and the settings' keys}.
    nlohmann::json to_json() const;

    friend bool operator==(const source& a, const source& b) {
        return a.kind_ == b.kind_ && a.settings_->equals(*b.settings_);
    }

private:
    const source_kind* kind_;
    std::shared_ptr<const source_settings> settings_;
};

/// Whether a source fetches over the network (the blob store is on for those by default).
inline bool is_remote(const source& s) { return s.kind().remote; }

}  // namespace blobd::cfg
