// Fuzz check for docker auth files (oci::parse_auth_file, credentials_for) and the base64 and
// Basic credentials they carry.
//
// Input: the file's text, raw (JSON, or not). What must hold: keys come out normalised (lower
// case, no scheme, no path) and normalising again changes nothing; no user name holds a ':'; the
// entries written back as a file ("auth": base64) read back to the same map; every key that is a
// URL authority finds its own entry through credentials_for; a Basic header decodes back to
// "user:password"; base64 decoding is stable. Errors never contain a password or an "auth"
// string of 24 characters or more (a shorter one may be a word of the message). Test code; any
// thread.
#pragma once

#include <nlohmann/json.hpp>

#include "protocol/oci/oci_util.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace blobd::fuzz {

inline void check_base64(std::string_view s) {
    FUZZ_REQUIRE(oci::base64_decode(oci::base64_encode(s)) == std::string(s));
    if (auto d = oci::base64_decode(s)) {
        // Non-canonical trailing bits decode too; what they decode to is stable.
        FUZZ_REQUIRE(oci::base64_decode(oci::base64_encode(*d)) == d);
        FUZZ_REQUIRE(d->size() <= s.size());
    }
}

inline void check_auth_text(std::string_view text) {
    using json = nlohmann::json;
    const auto auths = oci::parse_auth_file(text);
    if (!auths) {
        FUZZ_REQUIRE(!auths.error().empty());
        const json j = json::parse(text.begin(), text.end(), nullptr, false);
        auto a = j.is_object() ? j.find("auths") : j.end();
        if (j.is_object() && a != j.end() && a->is_object()) {
            for (const auto& [key, entry] : a->items()) {
                if (!entry.is_object()) continue;
                for (const char* secret : {"auth", "password"}) {
                    auto s = entry.find(secret);
                    if (s != entry.end() && s->is_string() && s->get_ref<const std::string&>().size() >= 24) {
                        FUZZ_REQUIRE(auths.error().find(s->get_ref<const std::string&>()) == std::string::npos);
                    }
                }
            }
        }
        return;
    }
    json file = {{"auths", json::object()}};
    for (const auto& [key, c] : *auths) {
        FUZZ_REQUIRE(key.find('/') == std::string::npos);
        for (char ch : key) FUZZ_REQUIRE(!(ch >= 'A' && ch <= 'Z'));
        FUZZ_REQUIRE(c.username.find(':') == std::string::npos);
        const std::string basic = oci::basic_authorization(c);
        FUZZ_REQUIRE(basic.starts_with("Basic ") && printable_no_space(basic.substr(6)));
        FUZZ_REQUIRE(oci::base64_decode(basic.substr(6)) == c.username + ":" + c.password);
        file["auths"][key] = {{"auth", oci::base64_encode(c.username + ":" + c.password)}};

        // A key spelled as a URL authority is what credentials_for looks up for that URL.
        if (auto u = http::parse_url("https://" + key); u && u->authority() == key) {
            const auto found = oci::credentials_for(*auths, *u);
            FUZZ_REQUIRE(found && *found == c);
        }
    }
    const auto again = oci::parse_auth_file(file.dump());
    FUZZ_REQUIRE(again && *again == *auths);
}

inline void check_auth_file(std::span<const std::uint8_t> in) {
    check_auth_text(as_text(in));
    check_base64(as_text(in));
}

}  // namespace blobd::fuzz
