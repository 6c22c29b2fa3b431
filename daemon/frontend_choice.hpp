// frontend_choice: which kernel interface the daemon serves, decided once at startup from the
// config's "frontend" ("cachefiles", "fanotify" or "auto") and what the frontends' own checks say.
// "auto": cachefiles when /dev/cachefiles opens and binds on-demand (or a bound device waits in the
// service manager's fd store), else fanotify when its probe passes (frontends/fanotify/probe.hpp),
// else an error naming both reasons. main.cpp resolves it into the config the app is built with,
// so everything after startup (write policy, status, reload) sees "cachefiles" or "fanotify".
//
// Pure: the checks are passed in and called lazily (a bound device is kept by the caller's
// callable; fanotify is not probed once cachefiles bound). Any thread.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace blobd {

/// What a frontend's check said: true, or why it cannot run here (one line that names the fix).
using frontend_check = std::function<result<bool, std::string>()>;

struct frontend_choice {
    std::string frontend;  ///< "cachefiles" or "fanotify"
    std::string why;       ///< one line for the log: "frontend auto: fanotify (cachefiles: ...)"
};

/// `configured` is the config's value (the loader accepts only the three). cachefiles: only
/// `bind_cachefiles` is asked, and its error is returned as it is; fanotify: only
/// `probe_fanotify`, its error prefixed "frontend fanotify: "; auto: as described above, the
/// error "frontend auto: neither frontend can run here: cachefiles: E1; fanotify: E2".
result<frontend_choice, std::string> choose_frontend(std::string_view configured, const frontend_check& bind_cachefiles,
                                                     const frontend_check& probe_fanotify);

}  // namespace blobd
