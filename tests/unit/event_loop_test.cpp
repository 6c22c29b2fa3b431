// Description: io/event_loop: a callback that throws (completion, timer, deferred or posted) is
// caught where the loop calls it and counted; the loop and the other callbacks go on.
#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>

#include "io/event_loop.hpp"

using namespace blobd;
using namespace std::chrono_literals;

TEST_CASE("event_loop: a throwing callback does not end the loop", "[unit][loop]") {
    event_loop loop;
    int ran = 0;
    loop.defer([] { throw std::runtime_error("deferred"); });
    loop.defer([&] { ++ran; });
    loop.post([] { throw std::runtime_error("posted"); });
    loop.post([&] { ++ran; });
    loop.after(1ms, [] { throw std::bad_alloc(); });
    loop.after(2ms, [&] { ++ran; });
    for (int i = 0; i < 100 && ran < 3; ++i) loop.run_once(5ms);
    CHECK(ran == 3);
    CHECK(loop.callback_exceptions() == 3);
    // Still serving: a post after all that arrives too.
    loop.post([&] { ++ran; });
    for (int i = 0; i < 100 && ran < 4; ++i) loop.run_once(5ms);
    CHECK(ran == 4);
}
