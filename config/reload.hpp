// reload_plan: which keys differ between the running config and a newly loaded one, and whether
// the daemon can take the new one without rebinding (SIGHUP, `erofs-blobctl reload`).
//
// Pure: compares the two effective configs (to_json, every default filled in) key by key. A key
// the kernel or the bound device fixed at start (cache.dir, cache.tag, device, the bind-time
// free-space limits, frontend, chunk_size, control_socket, ...) is refused; the first such key
// found is named and nothing is applied. Any thread (it touches nothing shared).
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace blobd::cfg {

struct reload_plan_t {
    /// Reloadable keys that differ, as "sources", "domains", "log_level", "store.max_bytes", ...
    /// (dotted below the top level for objects, in to_json's order). Empty: nothing changed.
    std::vector<std::string> changed;
    /// The first key that differs and needs a restart ("cache.dir"); empty when the plan applies.
    std::string refused;
    bool ok() const noexcept { return refused.empty(); }
};

/// Whether `key` (dotted, as in reload_plan_t::changed) can change on a reload.
bool reloadable(const std::string& key);

/// The plan for going from `running` to `next`.
reload_plan_t reload_plan(const config& running, const config& next);

}  // namespace blobd::cfg
