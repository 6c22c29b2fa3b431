// settings_of<T>: a kind's settings value type T behind the config-level source_settings interface.
// Separate from config/source.hpp so that only code naming a kind's T (sources/, tests) pulls in
// the whole JSON library. Immutable; any thread.
#pragma once

#include <utility>

#include <nlohmann/json.hpp>

#include "config/source.hpp"

namespace blobd::cfg {

/// Settings of type T (a value type with `==` and `nlohmann::json to_json() const`).
template <class T>
class settings_of final : public source_settings {
public:
    explicit settings_of(T value) : value_(std::move(value)) {}
    const T& value() const noexcept { return value_; }
    bool equals(const source_settings& other) const override {
        const auto* o = dynamic_cast<const settings_of*>(&other);
        return o && o->value_ == value_;
    }
    nlohmann::json to_json() const override { return value_.to_json(); }

private:
    T value_;
};

}  // namespace blobd::cfg
