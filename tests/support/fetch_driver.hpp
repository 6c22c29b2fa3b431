// fetch_driver: a network fetcher (http_fetcher, oci_fetcher) on a real event_loop and net_thread, driven synchronously from a
// test: stat()/fetch() submit, then run the loop until the callback came (bounded), checking on
// the way that the callback never runs inline and that returned buffers are aligned and exact.
// Members are destroyed in reverse order, fetcher, net thread, loop: the order the app keeps.
//
// Threading: the test's thread runs the loop.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "io/event_loop.hpp"
#include "io/net_thread.hpp"
#include "fetchers/http/http_fetcher.hpp"
#include "fetchers/oci/oci_fetcher.hpp"

namespace blobd::test {

template <class Fetcher, class Options>
struct basic_fetch_driver {
    event_loop loop;
    net_thread net;
    std::unique_ptr<Fetcher> f;

    explicit basic_fetch_driver(Options o) : f(std::make_unique<Fetcher>(loop, net, std::move(o))) {}
    ~basic_fetch_driver() {
        f.reset();
        net.stop();
    }

    template <class P>
    bool run_until(P pred, std::chrono::milliseconds limit = std::chrono::seconds(15)) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > end) return false;
            loop.run_once(std::chrono::milliseconds(10));
        }
        return true;
    }

    result<std::uint64_t, int> stat(const std::string& name, deadline due = no_deadline) {
        std::optional<result<std::uint64_t, int>> r;
        f->stat(blob_ref{"d", name}, due, [&](result<std::uint64_t, int> x) { r = std::move(x); });
        CHECK_FALSE(r.has_value());  // never inline
        REQUIRE(run_until([&] { return r.has_value(); }));
        return *r;
    }

    result<std::string, int> fetch(const std::string& name, std::uint64_t off, std::uint64_t len,
                                   deadline due = no_deadline) {
        std::optional<result<buffer_ptr, int>> r;
        f->fetch(blob_ref{"d", name}, off, len, due, [&](result<buffer_ptr, int> x) { r = std::move(x); });
        CHECK_FALSE(r.has_value());  // never inline
        REQUIRE(run_until([&] { return r.has_value(); }));
        if (!*r) return unexpected{r->error()};
        const auto& buf = **r;
        REQUIRE(buf->filled == len);
        REQUIRE(reinterpret_cast<std::uintptr_t>(buf->data()) % io_alignment == 0);
        return std::string(reinterpret_cast<const char*>(buf->data()), buf->filled);
    }
};

using fetch_driver = basic_fetch_driver<http_fetcher, http_options>;
using oci_driver = basic_fetch_driver<oci_fetcher, oci_options>;

}  // namespace blobd::test
