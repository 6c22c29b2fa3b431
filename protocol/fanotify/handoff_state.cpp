#include "protocol/fanotify/handoff_state.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace blobd::proto::fan {

using nlohmann::json;

std::string encode_state(const saved_state& s) {
    json blobs = json::array();
    for (const auto& b : s.blobs) {
        blobs.push_back({{"domain", b.domain}, {"tag", b.tag}, {"path", b.path}, {"fdname", b.fdname},
                         {"size", b.size}, {"dev", b.dev}, {"ino", b.ino}});
    }
    json mounts = json::array();
    for (const auto& m : s.mounts) {
        mounts.push_back({{"mountpoint", m.mountpoint}, {"domain", m.domain}, {"fsid", m.fsid}, {"boot", m.boot},
                          {"tags", m.tags}, {"mounted", m.mounted}});
    }
    // Names are checked plain file names, but keep whatever bytes they hold intact (no throw on
    // invalid UTF-8: replace it, the decode then fails on that name instead of the daemon).
    return json{{"version", state_version}, {"next_boot", s.next_boot}, {"blobs", blobs}, {"mounts", mounts}}
               .dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

namespace {
struct reader {
    std::string error;
    bool str(const json& o, const char* key, std::string& out, std::string_view where) {
        if (!error.empty()) return false;
        auto it = o.find(key);
        if (it == o.end() || !it->is_string()) {
            error = fmt::format("{}.{}: missing or not a string", where, key);
            return false;
        }
        out = it->get<std::string>();
        return true;
    }
    bool num(const json& o, const char* key, std::uint64_t& out, std::string_view where) {
        if (!error.empty()) return false;
        auto it = o.find(key);
        if (it == o.end() || !it->is_number_unsigned()) {
            error = fmt::format("{}.{}: missing or not an unsigned integer", where, key);
            return false;
        }
        out = it->get<std::uint64_t>();
        return true;
    }
};
}  // namespace

result<saved_state, std::string> decode_state(std::string_view text) {
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return unexpected{std::string("not valid JSON")};
    if (!j.is_object()) return unexpected{std::string("not a JSON object")};
    auto v = j.find("version");
    if (v == j.end() || !v->is_number_integer() || v->get<std::int64_t>() != state_version) {
        return unexpected{fmt::format("version: not {}", state_version)};
    }
    saved_state s;
    reader r;
    r.num(j, "next_boot", s.next_boot, "state");
    for (const char* list : {"blobs", "mounts"}) {
        if (!r.error.empty()) break;
        auto it = j.find(list);
        if (it == j.end() || !it->is_array()) r.error = fmt::format("state.{}: missing or not an array", list);
    }
    if (!r.error.empty()) return unexpected{r.error};
    std::size_t i = 0;
    for (const auto& b : j["blobs"]) {
        const std::string where = fmt::format("blobs[{}]", i++);
        if (!b.is_object()) return unexpected{where + ": not an object"};
        saved_blob sb;
        r.str(b, "domain", sb.domain, where);
        r.str(b, "tag", sb.tag, where);
        r.str(b, "path", sb.path, where);
        r.str(b, "fdname", sb.fdname, where);
        r.num(b, "size", sb.size, where);
        r.num(b, "dev", sb.dev, where);
        r.num(b, "ino", sb.ino, where);
        if (!r.error.empty()) return unexpected{r.error};
        s.blobs.push_back(std::move(sb));
    }
    i = 0;
    for (const auto& m : j["mounts"]) {
        const std::string where = fmt::format("mounts[{}]", i++);
        if (!m.is_object()) return unexpected{where + ": not an object"};
        saved_mount sm;
        r.str(m, "mountpoint", sm.mountpoint, where);
        r.str(m, "domain", sm.domain, where);
        r.str(m, "fsid", sm.fsid, where);
        r.str(m, "boot", sm.boot, where);
        if (!r.error.empty()) return unexpected{r.error};
        auto tags = m.find("tags");
        if (tags == m.end() || !tags->is_array()) return unexpected{where + ".tags: missing or not an array"};
        for (const auto& t : *tags) {
            if (!t.is_string()) return unexpected{where + ".tags: not all strings"};
            sm.tags.push_back(t.get<std::string>());
        }
        auto mounted = m.find("mounted");
        if (mounted == m.end() || !mounted->is_boolean()) return unexpected{where + ".mounted: missing or not a boolean"};
        sm.mounted = mounted->get<bool>();
        s.mounts.push_back(std::move(sm));
    }
    return s;
}

}  // namespace blobd::proto::fan
