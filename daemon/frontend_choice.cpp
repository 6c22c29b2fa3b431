#include "daemon/frontend_choice.hpp"

namespace blobd {

result<frontend_choice, std::string> choose_frontend(std::string_view configured, const frontend_check& bind_cachefiles,
                                                     const frontend_check& probe_fanotify) {
    if (configured == "fanotify") {
        if (auto p = probe_fanotify(); !p) return unexpected{"frontend fanotify: " + p.error()};
        return frontend_choice{"fanotify", "frontend fanotify (configured)"};
    }
    if (configured != "auto") {
        if (auto b = bind_cachefiles(); !b) return unexpected{b.error()};
        return frontend_choice{"cachefiles", "frontend cachefiles (configured)"};
    }
    // cachefiles first: where the kernel has on-demand mode, erofs over fscache is what existing
    // mounts (and a device kept across a restart) use; fanotify needs the daemon to make the mounts.
    auto b = bind_cachefiles();
    if (b) return frontend_choice{"cachefiles", "frontend auto: cachefiles (/dev/cachefiles bound on-demand)"};
    auto p = probe_fanotify();
    if (p) return frontend_choice{"fanotify", "frontend auto: fanotify (its probe passed; cachefiles: " + b.error() + ")"};
    return unexpected{"frontend auto: neither frontend can run here: cachefiles: " + b.error() + "; fanotify: " + p.error()};
}

}  // namespace blobd
