#include "config/reload.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include <nlohmann/json.hpp>

namespace blobd::cfg {

namespace {
// What a running daemon cannot change without rebinding or restarting, and why:
//  cache.dir/tag, device, b/f run/cull/stop: sent to the kernel at bind; the bound fd (and the fd
//  store's name for it) are tied to them. frontend: a different kernel interface. chunk_size: the
//  registry's chunk maps of open objects are in it. control_socket: the listening socket (and the
//  reload request itself) lives on it; control_socket_group: applied to that socket at start.
//  metrics.listen: its socket is bound at start. cache.cull, cache.max_bytes,
//  cache.check_interval_ms: the space keeper's thread is built with them at start.
// Everything else (sources, domains, credentials files, breaker, store, prefetch, deadlines,
// log level) is rebuilt or set in place.
constexpr std::array<std::string_view, 17> fixed = {
    "cache.dir",   "cache.tag",   "cache.brun", "cache.bcull",     "cache.bstop",
    "cache.frun",  "cache.fcull", "cache.fstop", "cache.cull",     "cache.max_bytes",
    "cache.check_interval_ms", "device", "frontend", "chunk_size", "control_socket",
    "control_socket_group", "metrics.listen",
};
}  // namespace

bool reloadable(const std::string& key) {
    return std::find(fixed.begin(), fixed.end(), std::string_view(key)) == fixed.end();
}

reload_plan_t reload_plan(const config& running, const config& next) {
    reload_plan_t plan;
    const nlohmann::json a = to_json(running), b = to_json(next);
    auto differ = [&](const std::string& key) {
        if (!reloadable(key)) {
            if (plan.refused.empty()) plan.refused = key;
        } else {
            plan.changed.push_back(key);
        }
    };
    for (auto it = a.begin(); it != a.end(); ++it) {
        const auto& other = b.contains(it.key()) ? b.at(it.key()) : nlohmann::json();
        if (*it == other) continue;
        // Objects with fixed members (cache, breaker, store) are compared member by member so that
        // the refusal names the key; sources and domains are one key each.
        if (it->is_object() && other.is_object() && it.key() != "domains") {
            for (auto m = it->begin(); m != it->end(); ++m) {
                if (!other.contains(m.key()) || other.at(m.key()) != *m) differ(it.key() + "." + m.key());
            }
        } else {
            differ(it.key());
        }
    }
    return plan;
}

}  // namespace blobd::cfg
