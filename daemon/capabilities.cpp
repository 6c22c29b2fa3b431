#include "daemon/capabilities.hpp"

#include <sys/capability.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "base/log.hpp"

namespace blobd::caps {
namespace {
const log::logger lg{"caps"};

struct cap_free_deleter {
    void operator()(void* p) const { cap_free(p); }
};
using cap_ptr = std::unique_ptr<std::remove_pointer_t<cap_t>, cap_free_deleter>;

bool has(const std::vector<int>& v, int c) { return std::find(v.begin(), v.end(), c) != v.end(); }
}  // namespace

std::vector<int> kept(frontend f, stage s, bool socket_group) {
    std::vector<int> out;
    switch (f) {
    case frontend::cachefiles:
        // bound and adopted alike: the capability check is at open(2) of the device only, and the
        // adopted fd was opened (and bound, with its credentials) by a predecessor.
        (void)s;
        break;
    case frontend::fanotify:
        out.push_back(CAP_SYS_ADMIN);
        break;
    }
    // The control socket is made (and chgrp'ed to control_socket_group, with its directory) after
    // the drop, when the loop's threads exist: giving a file to a group root is not in needs it.
    if (socket_group) out.push_back(CAP_CHOWN);
    return out;
}

std::string names(const std::vector<int>& caps) {
    if (caps.empty()) return "none";
    std::string out;
    for (int c : caps) {
        if (!out.empty()) out += ", ";
        std::unique_ptr<char, cap_free_deleter> n(cap_to_name(static_cast<cap_value_t>(c)));
        out += n ? n.get() : fmt::format("cap_{}", c);
    }
    return out;
}

result<std::vector<int>, std::string> drop_capabilities(const std::vector<int>& keep) {
    cap_ptr now(cap_get_proc());
    if (!now) return unexpected(fmt::format("cap_get_proc: {}", std::strerror(errno)));
    const int last = static_cast<int>(cap_max_bits()) - 1;
    std::vector<int> have;
    for (int c = 0; c <= last; ++c) {
        cap_flag_value_t v = CAP_CLEAR;
        if (cap_get_flag(now.get(), static_cast<cap_value_t>(c), CAP_PERMITTED, &v) == 0 && v == CAP_SET) have.push_back(c);
    }
    // The bounding set first: dropping from it needs CAP_SETPCAP, which the new sets below lose.
    cap_flag_value_t setpcap = CAP_CLEAR;
    (void)cap_get_flag(now.get(), CAP_SETPCAP, CAP_EFFECTIVE, &setpcap);
    bool bounding_done = true;
    for (int c = 0; c <= last; ++c) {
        if (has(keep, c) || CAP_IS_SUPPORTED(c) == 0 || cap_get_bound(static_cast<cap_value_t>(c)) != 1) continue;
        if (setpcap != CAP_SET || cap_drop_bound(static_cast<cap_value_t>(c)) != 0) {
            bounding_done = false;
            break;
        }
    }
    if (!bounding_done && !have.empty()) {
        lg.warn("cannot shrink the capability bounding set (no CAP_SETPCAP); dropping the other sets only");
    }
    // Ambient capabilities would survive an execve; the daemon never runs one, but clear them anyway.
    if (CAP_AMBIENT_SUPPORTED()) (void)cap_reset_ambient();

    std::vector<int> next;
    for (int c : keep)
        if (has(have, c)) next.push_back(c);
    cap_ptr want(cap_init());  // all clear
    if (!want) return unexpected(fmt::format("cap_init: {}", std::strerror(errno)));
    std::vector<cap_value_t> values(next.begin(), next.end());
    if (!values.empty() &&
        (cap_set_flag(want.get(), CAP_PERMITTED, static_cast<int>(values.size()), values.data(), CAP_SET) != 0 ||
         cap_set_flag(want.get(), CAP_EFFECTIVE, static_cast<int>(values.size()), values.data(), CAP_SET) != 0)) {
        return unexpected(fmt::format("cap_set_flag: {}", std::strerror(errno)));
    }
    if (cap_set_proc(want.get()) != 0) return unexpected(fmt::format("cap_set_proc: {}", std::strerror(errno)));
    return next;
}

bool drop_after_setup(frontend f, stage s, bool socket_group) {
    auto now = drop_capabilities(kept(f, s, socket_group));
    if (!now) {
        lg.err("dropping capabilities: {}", now.error());
        return false;
    }
    lg.info("capabilities kept: {}", names(*now));
    return true;
}

}  // namespace blobd::caps
