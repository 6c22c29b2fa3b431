// test_proxy: tests/support/forward_proxy.py (a CONNECT and absolute-form forward proxy that logs
// one JSON line per request) run by python3 in a child process for one test case, killed by its
// pid when destroyed. Catch2 REQUIREs inside: construct it in a test case.
//
// Threading: construct and destroy on one thread; log() from any.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_util.hpp"

namespace blobd::test {

inline std::string slurp(const std::string& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// forward_proxy.py in the background for one test case; killed (by its pid) at the end.
struct test_proxy {
    blobd::test::temp_dir dir{"fwd-proxy"};
    pid_t pid = -1;
    std::uint16_t port = 0;
    /// `support_dir`: tests/support in the source tree; `user`: NAME:PASSWORD the proxy requires.
    explicit test_proxy(const std::string& support_dir, const std::string& user = "") {
        const std::string proxy_script = support_dir + "/forward_proxy.py";
        const std::string port_file = (dir.path / "port").string();
        pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            const std::string log = (dir.path / "log").string();
            if (user.empty()) {
                ::execlp("python3", "python3", proxy_script.c_str(), "--port-file", port_file.c_str(), "--log",
                         log.c_str(), nullptr);
            } else {
                ::execlp("python3", "python3", proxy_script.c_str(), "--port-file", port_file.c_str(), "--log",
                         log.c_str(), "--user", user.c_str(), nullptr);
            }
            ::_exit(127);
        }
        for (int i = 0; i < 200 && !std::filesystem::exists(port_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
        REQUIRE(std::filesystem::exists(port_file));
        port = static_cast<std::uint16_t>(std::stoi(slurp(port_file)));
    }
    ~test_proxy() {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, nullptr, 0);
        }
    }
    std::string url(const std::string& cred = "") const {
        return "http://" + (cred.empty() ? "" : cred + "@") + "127.0.0.1:" + std::to_string(port);
    }
    std::vector<nlohmann::json> log() const {
        std::vector<nlohmann::json> v;
        std::istringstream in(slurp((dir.path / "log").string()));
        for (std::string line; std::getline(in, line);) v.push_back(nlohmann::json::parse(line));
        return v;
    }
};

}  // namespace blobd::test
