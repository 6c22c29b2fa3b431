#include "io/net_thread.hpp"

#include <chrono>
#include <exception>
#include <future>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "base/log.hpp"

namespace blobd {

namespace {
const log::logger lg{"net"};
}

struct net_thread::impl {
    boost::asio::io_context ioc;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard{
        boost::asio::make_work_guard(ioc)};
    std::thread thread;
    bool running = true;
};

net_thread::net_thread() : impl_(std::make_unique<impl>()) {
    impl_->thread = std::thread([this] {
        // Handlers report errors through error codes; an exception escaping one is a bug, but it
        // must not take the daemon down with std::terminate: log it and keep serving.
        for (int i = 0; i < 1000; ++i) {
            try {
                impl_->ioc.run();
                return;
            } catch (const std::exception& e) {
                lg.err("unexpected exception on the network thread: {}", e.what());
            }
        }
        lg.err("too many exceptions on the network thread; network fetches stop");
        impl_->ioc.stop();  // lets run_sync() see that nobody runs the context any more
    });
}

net_thread::~net_thread() { stop(); }

boost::asio::io_context& net_thread::context() noexcept { return impl_->ioc; }

void net_thread::stop() {
    if (!impl_->running) return;
    impl_->running = false;
    impl_->guard.reset();
    impl_->ioc.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

bool net_thread::running() const noexcept { return impl_->running; }

void net_thread::run_sync(const std::function<void()>& fn) {
    if (!impl_->running || impl_->ioc.stopped()) {
        fn();
        return;
    }
    std::promise<void> done;
    auto finished = done.get_future();
    boost::asio::post(impl_->ioc, [&] {
        try {
            fn();
            done.set_value();
        } catch (...) {
            done.set_exception(std::current_exception());
        }
    });
    // The thread only leaves run() through stop() (which is ours to call) or an exception storm:
    // wait in slices so that the latter cannot hang the caller.
    while (finished.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
        if (impl_->ioc.stopped()) {
            if (impl_->thread.joinable()) impl_->thread.join();
            if (finished.wait_for(std::chrono::seconds(0)) == std::future_status::ready) break;
            fn();  // nobody runs the context any more
            return;
        }
    }
    finished.get();
}

bool net_thread::on_net_thread() const noexcept { return impl_->thread.get_id() == std::this_thread::get_id(); }

}  // namespace blobd
