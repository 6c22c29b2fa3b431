// metrics_listener: the optional loopback HTTP listener ("metrics.listen") that answers
// GET /metrics with the Prometheus text of `render` (app::metrics_text), for a scraper that
// cannot use the control socket. Other paths are 404, other methods 405; a request's header is
// at most 8 KiB and must arrive within 5 s; at most 16 connections at once (more are closed).
//
// The sockets live on a net_thread the listener owns (the sources' one comes and goes with the
// source set on reload); only the rendering hops to the loop thread (event_loop::post) and the
// text goes back to the net thread to be written, so a slow or stuck client never blocks the loop.
//
// Ownership: the app owns it. Threading: construct, listen(), port(), stop() and destroy on the
// loop thread; `render` is called on the loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/result.hpp"

namespace blobd {

class event_loop;

class metrics_listener {
public:
    /// Binds `listen` ("HOST:PORT", checked by cfg::parse_loopback_listen) and starts accepting.
    /// The error is one line naming the address and the reason (for instance "address in use").
    static result<std::unique_ptr<metrics_listener>, std::string> listen(event_loop& loop, const std::string& listen,
                                                                        std::function<std::string()> render);
    ~metrics_listener();
    metrics_listener(const metrics_listener&) = delete;
    metrics_listener& operator=(const metrics_listener&) = delete;

    /// The bound port (the one the kernel chose for port 0).
    std::uint16_t port() const noexcept;
    /// Closes the listening socket and every connection; renders already posted are dropped.
    /// Idempotent.
    void stop();

    struct impl;

private:
    explicit metrics_listener(std::unique_ptr<impl> i);
    std::unique_ptr<impl> impl_;
};

}  // namespace blobd
