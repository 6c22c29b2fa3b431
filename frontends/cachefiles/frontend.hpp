// cachefiles_frontend: serves the kernel's cachefiles on-demand interface over the core.
//
// It drains the device when it polls readable, parses each message (protocol/), checks cookie
// names, and turns OPEN/READ/CLOSE into engine calls: the object key is the kernel's object_id,
// the request token its msg_id, the object's fd the anon fd of the OPEN. The engine's answers come
// back through frontend_port: `copen` for an open, CACHEFILES_IOC_READ_COMPLETE for a read. Cache
// files are written with direct I/O, lengths padded to 4 KiB (cachefiles_write_policy).
//
// Also here: binding the device or taking over one kept in the service manager's fd store
// (bind_device, see handoff.hpp), which sends `restore`.
//
// Borrows the loop, the device and the engine, which must outlive it. Threading: loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/metrics.hpp"
#include "base/result.hpp"
#include "core/engine.hpp"
#include "frontends/cachefiles/device.hpp"
#include "io/event_loop.hpp"
#include "protocol/message.hpp"

namespace blobd {

/// Anon fds write straight into the backing file with direct I/O.
inline constexpr write_policy cachefiles_write_policy{4096};

/// Counters of the cachefiles frontend (the engine counts what reached it; refused OPENs are
/// counted there too, with the other opens).
struct cachefiles_stats {
    std::uint64_t bad_messages = 0;       ///< device messages that did not parse
    std::uint64_t completion_errors = 0;  ///< READ_COMPLETE ioctls that failed
    std::uint64_t reply_errors = 0;       ///< copen commands the device refused
};

/// cachefiles_stats as metrics: top-level keys of the stats JSON, erofs_blobd_<name> in Prometheus.
inline constexpr auto cachefiles_metrics = [] {
    using s = cachefiles_stats;
    using metrics::counter;
    return metrics::make_table(
        metrics::group{"", {}, ""},
        counter(&s::bad_messages, "bad_messages", "Kernel messages that did not parse."),
        counter(&s::completion_errors, "completion_errors", "READ completions (READ_COMPLETE ioctls) that failed."),
        counter(&s::reply_errors, "reply_errors", "OPEN replies (copen) the device refused."));
}();

class cachefiles_frontend final : public frontend_port {
public:
    cachefiles_frontend(event_loop& loop, device& dev, engine& core);
    cachefiles_frontend(const cachefiles_frontend&) = delete;
    cachefiles_frontend& operator=(const cachefiles_frontend&) = delete;

    /// Arms the device poll.
    void start();
    /// Stops reading the device (what was read is still answered). Idempotent.
    void stop() { stopping_ = true; }

    const cachefiles_stats& stats() const noexcept { return stats_; }

    int answer_open(request_token req, std::int64_t size_or_errno, unique_fd fd_back) override;
    void answer_read(const cache_object* object, request_token req, int status) override;

    /// A bound device: one kept in the service manager's fd store for this binding (taken over,
    /// `restore` sent: the mounts it served keep working), else `path` opened and bound afresh and
    /// a copy handed to the fd store for the next start. `adopted` says which. The error is one
    /// line. Startup only, before the loop runs.
    struct bound {
        std::unique_ptr<cachefiles_device> dev;
        bool adopted = false;
    };
    static result<bound, std::string> bind_device(const std::string& path, const std::string& cache_dir,
                                                 const std::string& tag, const proto::cull_limits& blocks = {},
                                                 const proto::cull_limits& files = {});

private:
    void arm_device();
    void drain_device();
    void handle(proto::message&& msg);
    void handle_bad(const proto::parse_error& err);
    void refuse_open(std::uint32_t msg_id);

    event_loop& loop_;
    device& dev_;
    engine& core_;
    cachefiles_stats stats_;
    bool stopping_ = false;
};

}  // namespace blobd
