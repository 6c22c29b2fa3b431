// net_thread: one Asio io_context running on its own std::thread, where the network fetchers
// (HTTP and OCI) do their work. Work reaches it with boost::asio::post(context(), ...);
// results go back to the loop thread with event_loop::post, never by touching loop state here.
//
// Lifetime: created (and started) by the app only when some source needs it. Objects bound to the
// context (sockets, timers, resolvers) must be destroyed before the net_thread; stop() may come
// earlier: it abandons queued handlers (they are destroyed with the context) and joins.
//
// Threading: construct, stop(), run_sync() and destroy from one owner thread (the loop thread);
// context() may be used from any thread (io_context::post is thread-safe).
#pragma once

#include <functional>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace blobd {

class net_thread {
public:
    /// Starts the thread. Throws std::system_error if it cannot be created.
    net_thread();
    /// stop().
    ~net_thread();
    net_thread(const net_thread&) = delete;
    net_thread& operator=(const net_thread&) = delete;

    boost::asio::io_context& context() noexcept;
    /// Stops the context (handlers not yet run are abandoned, not called) and joins the thread.
    /// Idempotent.
    void stop();
    /// True until stop().
    bool running() const noexcept;
    /// Runs `fn` on the net thread and waits for it to return; after stop(), runs it right here
    /// (no thread touches the context any more). Must not be called from the net thread.
    void run_sync(const std::function<void()>& fn);
    /// True when called from the net thread (for assertions).
    bool on_net_thread() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace blobd
