// erofs-blobd: entry point. Parses the command line, loads the config, opens and binds
// /dev/cachefiles, and runs the loop until SIGTERM/SIGINT; SIGHUP reloads the config, and the loop
// sends STATUS= and (under WatchdogSec=) WATCHDOG=1 to the service manager. Exit codes: 0 clean stop, 1 bad
// config or usage, 2 startup failure (device, ring, control socket) or an exception nothing else
// caught.
#include <signal.h>
#include <sys/signalfd.h>
#include <poll.h>
#include <unistd.h>

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <exception>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <systemd/sd-daemon.h>

#include "config/config.hpp"
#include "daemon/app.hpp"
#include "base/file.hpp"
#include "base/log.hpp"
#include "daemon/capabilities.hpp"
#include "daemon/frontend_choice.hpp"
#include "frontends/cachefiles/frontend.hpp"
#include "frontends/fd_store.hpp"
#include "frontends/fanotify/probe.hpp"
#include "io/event_loop.hpp"
#include "sources/kinds.hpp"

namespace {

const blobd::log::logger lg{"main"};

constexpr const char* usage = R"(Usage: erofs-blobd --config FILE [--log-level LEVEL]
       erofs-blobd --check-config FILE [--quiet]
       erofs-blobd --help | --version

Serves the kernel's cachefiles on-demand requests (/dev/cachefiles) for erofs images mounted in
fscache mode (mount -t erofs none -o fsid=IMG[,domain_id=DOM] DIR), filling blob data from the
sources in the config. Runs in the foreground until SIGTERM or SIGINT, then finishes in-flight
requests and exits 0. Logs go to stderr with journald priority prefixes.

Restarts: under systemd (Type=notify, FileDescriptorStoreMax=1) the bound device fd is kept in
the service manager's fd store; a restarted daemon takes it over, sends `restore`, and the
mounts keep working. Without it, stopping the daemon unbinds the cache (see docs/operations.md).

Reload: SIGHUP (systemctl reload, erofs-blobctl reload) re-reads the config file: sources,
credentials, prefetch, deadlines, store and log level change in place; a key that needs a restart
(cache.*, device, frontend, chunk_size, control_socket) or a bad config is refused and logged, and
the running config stays. The last good config is kept in $STATE_DIRECTORY/last-good-config.json
(or $BLOBD_STATE_DIR); a restart with a bad config that is handed a stored device serves with it.
Under systemd: STATUS= lines, and WATCHDOG=1 from the event loop when WatchdogSec= is set.

Options:
  --config FILE        the JSON config to serve with (see docs/config.md)
  --check-config FILE  validate FILE, print the effective config as JSON, exit 0 (valid) or 1
  --quiet              with --check-config: print nothing when FILE is valid (the unit's
                       ExecStartPre, so that the journal does not get the config at every start)
  --log-level LEVEL    err, warning, notice, info (default: the config's log_level) or debug
  --help               this text
  --version            the version

With "frontend": "fanotify" in the config (Linux >= 6.14) it serves file-backed erofs mounts it
makes itself instead: erofs-blobctl mount [--domain D] FSID MOUNTPOINT fetches bootstrap FSID,
marks its blobs' sparse cache files for fanotify pre-content events and mounts it; erofs-blobctl
umount MOUNTPOINT unmounts. A stop unmounts every such mount first (see docs/fanotify.md);
mount -t erofs-blobd [-o domain_id=D] FSID MOUNTPOINT (and fstab) does the same through
mount.erofs-blobd. "frontend": "auto" serves cachefiles when /dev/cachefiles binds on-demand,
else fanotify when the kernel and cache dir support it (the log says which, and why).

Control: erofs-blobctl [--socket PATH] stats   prints the daemon's counters.
         erofs-blobctl [--socket PATH] reload  reloads the config (prints what changed).
)";

// The last config the daemon started or reloaded with, kept for a restart whose config is bad:
// $STATE_DIRECTORY (systemd's StateDirectory=, the first one) or $BLOBD_STATE_DIR, else none.
std::string last_good_path() {
    const char* dir = std::getenv("STATE_DIRECTORY");
    if (!dir || !*dir) dir = std::getenv("BLOBD_STATE_DIR");
    if (!dir || !*dir) return {};
    std::string d(dir);
    d = d.substr(0, d.find(':'));
    return d + "/last-good-config.json";
}

// Copies the config file's bytes (not the effective JSON: what the operator wrote, comments of
// the future included) next to the state, atomically. A failure only costs the fallback: logged.
void keep_last_good(const std::string& config_path) {
    const std::string to = last_good_path();
    if (to.empty()) return;
    std::ifstream in(config_path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) {
        lg.warn("cannot keep the last good config in {}: cannot read {}", to, config_path);
        return;
    }
    // 0666 less the umask, as the stream it replaces created it.
    if (auto r = blobd::write_file_atomically(to, text.str(), 0666); !r) {
        lg.warn("cannot keep the last good config in {}: {}", to, r.error());
    }
}

// Whether the service manager handed this process fds from its store (LISTEN_FDS for us): then a
// device with live mounts is waiting, and exiting would lose it.
bool have_stored_fds() {
    const char* pid = std::getenv("LISTEN_PID");
    const char* n = std::getenv("LISTEN_FDS");
    return pid && n && std::atol(pid) == static_cast<long>(::getpid()) && std::atoi(n) > 0;
}

std::uint64_t monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

int run(const std::string& config_path, const std::string& level_override) {
    auto loaded = blobd::sources::load_config(config_path);
    std::string start_error;  // set when serving with the last good config instead
    if (!loaded) {
        const std::string why = "bad config " + config_path + ": " + loaded.error().what();
        // systemd drops the fd store when the unit fails for good (the restart limit), and with it
        // every mount's device: with a stored device waiting, serve with the last good config.
        const std::string kept = last_good_path();
        if (have_stored_fds() && !kept.empty()) {
            if (auto fallback = blobd::sources::load_config(kept)) {
                lg.err("{}; serving with the last good config {} to keep the stored device", why, kept);
                start_error = why + " (serving with the last good config)";
                loaded = std::move(fallback);
            }
        }
        if (!loaded) {
            std::fprintf(stderr, "erofs-blobd: %s\n", why.c_str());
            return 1;
        }
    } else {
        keep_last_good(config_path);
    }
    auto config = std::make_shared<const blobd::cfg::config>(std::move(*loaded));
    // Both were checked already (the config by its loader, the override by main).
    const auto lvl = blobd::log::parse_level(level_override.empty() ? config->log_level : level_override);
    blobd::log::set_max_level(lvl.value_or(blobd::log::level::info));

    // Signals arrive through a signalfd polled by the ring, so the handler is ordinary loop code.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    blobd::unique_fd sfd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sfd) {
        lg.err("signalfd: {}", std::strerror(errno));
        return 2;
    }

    // "auto" becomes the frontend that can run here, in the config the app is built with (its
    // write policy, status and reload compare against the resolved name).
    const std::string configured_frontend = config->frontend;
    std::optional<blobd::cachefiles_frontend::bound> bound;
    auto choice = blobd::choose_frontend(
        configured_frontend,
        [&]() -> blobd::result<bool, std::string> {
            // A fanotify group kept across a restart (a crash of a daemon that chose fanotify):
            // binding cachefiles now would close it, and its mounts' readers would read zeros.
            if (configured_frontend == "auto" && blobd::fd_store::passed().count("fanotify-group")) {
                return blobd::unexpected{std::string(
                    "the service manager holds the previous daemon's fanotify group: staying with fanotify")};
            }
            // A device fd kept by the service manager across a restart is taken over (the mounts it
            // serves keep working); otherwise bind afresh and hand a copy to the manager for the next restart.
            auto b = blobd::cachefiles_frontend::bind_device(config->device, config->cache_dir, config->cache_tag,
                                                             config->cache_blocks, config->cache_files);
            if (!b) return blobd::unexpected{b.error()};
            bound = std::move(*b);
            return true;
        },
        // No /dev/cachefiles: the daemon mounts itself (erofs-blobctl mount). Say what is missing first.
        [&] { return blobd::fanotify::probe(config->cache_dir); });
    if (!choice) {
        lg.err("{}", choice.error());
        return 2;
    }
    if (configured_frontend == "auto") {
        lg.notice("{}", choice->why);
        auto resolved = std::make_shared<blobd::cfg::config>(*config);
        resolved->frontend = choice->frontend;
        config = std::move(resolved);
    }
    const bool fanotify = config->frontend == "fanotify";
    if (!fanotify) {
        // The fds a fanotify daemon left (a config that switched frontends) and anything else
        // passed are not this frontend's: closed, and the fanotify ones dropped from the store.
        blobd::fd_store::drop_unclaimed("fanotify-");
        blobd::fd_store::passed().clear();
    }
    std::unique_ptr<blobd::cachefiles_device> dev;
    if (fanotify) {
        if (!blobd::caps::drop_after_setup(blobd::caps::frontend::fanotify, blobd::caps::stage::probed,
                                           !config->control_socket_group.empty())) return 2;
    } else {
        dev = std::move(bound->dev);
        if (!blobd::caps::drop_after_setup(blobd::caps::frontend::cachefiles,
                                           bound->adopted ? blobd::caps::stage::adopted : blobd::caps::stage::bound,
                                           !config->control_socket_group.empty())) return 2;
    }

    try {
        blobd::event_loop loop;
        {
            std::unique_ptr<blobd::app> owned =
                fanotify ? std::make_unique<blobd::app>(loop, config) : std::make_unique<blobd::app>(loop, *dev, config);
            blobd::app& daemon = *owned;
            if (auto s = daemon.start(); !s) {
                lg.err("{}", s.error());
                return 2;
            }
            if (!start_error.empty()) daemon.note_error(start_error);
            daemon.allow_debug_stall(std::getenv("BLOBD_DEBUG_STALL") && std::string_view(std::getenv("BLOBD_DEBUG_STALL")) == "1");

            // STATUS= for `systemctl status`: sent when it changed, checked once a second (and at once
            // after a reload), so that a burst of opens costs one line a second at most.
            std::string sent_status;
            auto send_status = [&] {
                std::string line = daemon.status_line();
                if (line == sent_status) return;
                sent_status = std::move(line);
                sd_notifyf(0, "STATUS=%s", sent_status.c_str());
            };
            std::function<void()> status_tick = [&] {
                send_status();
                loop.after(std::chrono::seconds(1), status_tick);
            };

            // Re-reads the file the daemon was started with; the running config stays on any error.
            auto reload = [&](const char* by) -> blobd::app::reload_result {
                sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", static_cast<unsigned long long>(monotonic_usec()));
                blobd::app::reload_result r = blobd::unexpected{std::string()};
                try {
                    auto next = blobd::sources::load_config(config_path);
                    if (!next) {
                        r = blobd::unexpected{"bad config " + config_path + ": " + next.error().what() + "; the running config stays"};
                    } else {
                        // The frontend the daemon started with, as it resolved it: "auto" again is no change.
                        if (next->frontend == configured_frontend) next->frontend = config->frontend;
                        r = daemon.reload(std::make_shared<const blobd::cfg::config>(std::move(*next)));
                    }
                } catch (const std::exception& e) {
                    r = blobd::unexpected{std::string("reload failed: ") + e.what() + "; the running config stays"};
                }
                if (r) {
                    if (!level_override.empty()) {
                        blobd::log::set_max_level(blobd::log::parse_level(level_override).value_or(blobd::log::level::info));
                    }
                    std::string keys;
                    for (const auto& k : r.value()) keys += (keys.empty() ? "" : ", ") + k;
                    lg.notice("reload ({}): {}", by, keys.empty() ? "nothing changed" : "changed " + keys);
                    keep_last_good(config_path);
                } else {
                    lg.err("reload ({}) refused: {}", by, r.error());
                    daemon.note_error("reload refused: " + r.error());
                }
                sd_notify(0, "READY=1");
                send_status();
                return r;
            };
            daemon.on_reload_request([&] { return reload("control socket"); });

            // WATCHDOG=1 from the loop itself: a stuck loop stops the pings and the service manager
            // kills it; the successor takes the stored device over.
            std::uint64_t watchdog_usec = 0;
            std::function<void()> watchdog_tick = [&] {
                sd_notify(0, "WATCHDOG=1");
                loop.after(std::chrono::milliseconds(watchdog_usec / 2000), watchdog_tick);
            };
            if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec >= 2000) {
                lg.info("watchdog: pinging every {} ms", watchdog_usec / 2000);
                watchdog_tick();
            }
            std::function<void()> arm_signal = [&] {
                loop.poll(sfd.get(), POLLIN, [&](int) {
                    signalfd_siginfo si{};
                    if (::read(sfd.get(), &si, sizeof si) == sizeof si && si.ssi_signo == SIGHUP) {
                        (void)reload("SIGHUP");  // logged and noted in STATUS= by reload()
                        arm_signal();
                    } else if (si.ssi_signo != 0) {
                        lg.info("received signal {}", strsignal(static_cast<int>(si.ssi_signo)));
                        sd_notify(0, "STOPPING=1");
                        daemon.request_stop();
                    } else {
                        arm_signal();
                    }
                });
            };
            arm_signal();
            sd_notify(0, "READY=1");
            status_tick();
            daemon.run();
        }
    } catch (const std::system_error& e) {
        // The ring is not the only thing that can throw at startup (an unreadable ca_file does too):
        // give the io_uring hint only when it is the ring that failed.
        if (std::string_view(e.what()).rfind("io_uring", 0) == 0) {
            lg.err("{}: io_uring is required (kernel 5.19 or later, not disabled by kernel.io_uring_disabled)", e.what());
        } else {
            lg.err("startup failed: {}", e.what());
        }
        return 2;
    }
    // The device closes last, after every write retired and every READ was completed.
    return 0;
}

int main_args(int argc, char** argv) {
    std::string config_path, check_path, level;
    bool quiet = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&](std::string& out) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "erofs-blobd: %s needs a value\n%s", argv[i], usage);
                std::exit(1);
            }
            out = argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::fputs(usage, stdout);
            return 0;
        } else if (a == "--version") {
            std::printf("erofs-blobd %s\n", BLOBD_VERSION);
            return 0;
        } else if (a == "--config" || a == "-c") {
            value(config_path);
        } else if (a == "--check-config") {
            value(check_path);
        } else if (a == "--quiet") {
            quiet = true;
        } else if (a == "--log-level") {
            value(level);
            if (!blobd::log::parse_level(level)) {
                std::fprintf(stderr, "erofs-blobd: unknown log level '%s' (%.*s)\n", level.c_str(),
                             static_cast<int>(blobd::log::level_names.size()), blobd::log::level_names.data());
                return 1;
            }
        } else {
            std::fprintf(stderr, "erofs-blobd: unknown argument '%s'\n%s", argv[i], usage);
            return 1;
        }
    }
    if (!check_path.empty()) {
        auto c = blobd::sources::load_config(check_path);
        if (!c) {
            std::fprintf(stderr, "erofs-blobd: %s: %s\n", check_path.c_str(), c.error().what().c_str());
            return 1;
        }
        if (!quiet) std::printf("%s\n", blobd::cfg::to_json(*c).dump(2).c_str());
        return 0;
    }
    // Fetch buffers come from a pool (base/buffer_pool.cpp); buffers beyond its idle limit
    // and other large allocations (whole-body HTTP answers) would still be mapped and unmapped by
    // glibc one by one, faulting every page again: keep freed memory mapped.
    // (Before the pool this alone took 1 MiB READs from 0.49x to 1.1x of pread+pwrite.)
    mallopt(M_MMAP_THRESHOLD, 128 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (quiet) {
        std::fprintf(stderr, "erofs-blobd: --quiet is for --check-config\n");
        return 1;
    }
    if (config_path.empty()) {
        std::fprintf(stderr, "erofs-blobd: --config FILE is required\n%s", usage);
        return 1;
    }
    return run(config_path, level);
}

}  // namespace

int main(int argc, char** argv) {
    // What nothing below caught (the loop catches what its callbacks throw) is a bug or a failure
    // outside every request: one line, and the startup-failure exit code, not std::terminate.
    try {
        return main_args(argc, argv);
    } catch (const std::exception& e) {
        lg.err("fatal: {}", e.what());
    } catch (...) {
        lg.err("fatal: an exception that is not a std::exception");
    }
    return 2;
}
