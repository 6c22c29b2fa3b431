// The startup decision of "frontend" (daemon/frontend_choice.hpp) as a pure function of what the
// frontends' checks said: which one is chosen, which checks run, and the one-line errors.
#include <catch2/catch.hpp>

#include <string>

#include "daemon/frontend_choice.hpp"

using blobd::choose_frontend;
using blobd::frontend_check;

namespace {
// A check that answers `ok` (or `why` not) and counts its calls.
struct fake_check {
    bool ok;
    std::string why;
    int calls = 0;
    frontend_check fn() {
        return [this]() -> blobd::result<bool, std::string> {
            ++calls;
            if (ok) return true;
            return blobd::unexpected{why};
        };
    }
};
const std::string no_dev = "cannot open /dev/cachefiles: No such file or directory: the cachefiles module is not loaded";
const std::string no_fan = "this kernel has no FAN_PRE_ACCESS (fanotify pre-content events came in Linux 6.14)";
}  // namespace

TEST_CASE("frontend auto: cachefiles when the device binds, fanotify not probed") {
    fake_check cf{true, ""}, fan{true, ""};
    auto c = choose_frontend("auto", cf.fn(), fan.fn());
    REQUIRE(c);
    CHECK(c->frontend == "cachefiles");
    CHECK(c->why.find("frontend auto: cachefiles") == 0);
    CHECK(cf.calls == 1);
    CHECK(fan.calls == 0);  // a bound device is kept: probing fanotify too would only cost time
}

TEST_CASE("frontend auto: fanotify when the device does not bind and the probe passes") {
    // This host's case: no /dev/cachefiles (or no on-demand mode), a 6.14+ kernel.
    fake_check cf{false, no_dev}, fan{true, ""};
    auto c = choose_frontend("auto", cf.fn(), fan.fn());
    REQUIRE(c);
    CHECK(c->frontend == "fanotify");
    // The log says why cachefiles was not taken.
    CHECK(c->why == "frontend auto: fanotify (its probe passed; cachefiles: " + no_dev + ")");
    CHECK(cf.calls == 1);
    CHECK(fan.calls == 1);
}

TEST_CASE("frontend auto: neither can run: one line with both reasons") {
    fake_check cf{false, no_dev}, fan{false, no_fan};
    auto c = choose_frontend("auto", cf.fn(), fan.fn());
    REQUIRE_FALSE(c);
    CHECK(c.error() == "frontend auto: neither frontend can run here: cachefiles: " + no_dev + "; fanotify: " + no_fan);
    CHECK(c.error().find('\n') == std::string::npos);
}

TEST_CASE("frontend cachefiles or fanotify: only that one's check, its error as before") {
    SECTION("cachefiles") {
        fake_check cf{false, no_dev}, fan{true, ""};
        auto c = choose_frontend("cachefiles", cf.fn(), fan.fn());
        REQUIRE_FALSE(c);
        CHECK(c.error() == no_dev);  // no fallback to fanotify: the config asked for cachefiles
        CHECK(fan.calls == 0);
        cf.ok = true;
        auto ok = choose_frontend("cachefiles", cf.fn(), fan.fn());
        REQUIRE(ok);
        CHECK(ok->frontend == "cachefiles");
        CHECK(fan.calls == 0);
    }
    SECTION("fanotify") {
        fake_check cf{true, ""}, fan{false, no_fan};
        auto c = choose_frontend("fanotify", cf.fn(), fan.fn());
        REQUIRE_FALSE(c);
        CHECK(c.error() == "frontend fanotify: " + no_fan);
        CHECK(cf.calls == 0);  // /dev/cachefiles is not even opened in this mode
        fan.ok = true;
        auto ok = choose_frontend("fanotify", cf.fn(), fan.fn());
        REQUIRE(ok);
        CHECK(ok->frontend == "fanotify");
        CHECK(cf.calls == 0);
    }
}
