// nginx on 127.0.0.1 for tests and benchmarks: the config every instance shares, starting it in
// the foreground under a prefix directory, and stopping it. Callers choose the ports and the
// server blocks; they own the directory (it must have tmp/ and whatever the servers serve).
// Threading: the calling thread; blocks while nginx starts or stops (at most about 5 s each).
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_util.hpp"

namespace blobd::test {

/// Writes `d`/nginx.conf: one foreground process, logs to stderr, temp paths under `d`/tmp, no
/// access log, keep-alive; `http_extra` are more http{} directives, `servers` the server blocks.
inline void write_nginx_conf(const std::string& d, const std::string& http_extra, const std::string& servers) {
    std::ofstream conf(d + "/nginx.conf");
    conf << "daemon off;\nmaster_process off;\nworker_processes 1;\npid " << d << "/nginx.pid;\n"
         << "error_log stderr warn;\nevents { worker_connections 256; }\nhttp {\n"
         << "  access_log off;\n  default_type application/octet-stream;\n"
         << "  client_body_temp_path " << d << "/tmp/body;\n  proxy_temp_path " << d << "/tmp/proxy;\n"
         << "  fastcgi_temp_path " << d << "/tmp/fastcgi;\n  uwsgi_temp_path " << d << "/tmp/uwsgi;\n"
         << "  scgi_temp_path " << d << "/tmp/scgi;\n  keepalive_timeout 60s;\n"
         << http_extra << servers << "}\n";
}

/// Starts nginx with `dir`/nginx.conf and waits up to 5 s until every port in `ports` accepts
/// connections. Returns its pid; -1 when it could not be started, exited (a port was taken
/// meanwhile: pick new ports, rewrite the config and try again) or did not come up (killed).
inline pid_t start_nginx(const std::string& dir, const std::vector<std::uint16_t>& ports) {
    const std::string bin = find_program("nginx");
    if (bin.empty()) return -1;
    const pid_t child = ::fork();
    if (child < 0) return -1;
    if (child == 0) {
        ::execl(bin.c_str(), "nginx", "-e", "stderr", "-p", dir.c_str(), "-c", (dir + "/nginx.conf").c_str(),
                static_cast<char*>(nullptr));
        std::_Exit(127);
    }
    for (int i = 0; i < 250; ++i) {
        int status = 0;
        if (::waitpid(child, &status, WNOHANG) == child) return -1;
        bool up = true;
        for (auto p : ports) up = up && port_open(p);
        if (up) return child;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    return -1;
}

/// SIGTERM, up to 5 s for it to exit, then SIGKILL; always reaped.
inline void stop_process(pid_t pid) {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid, &status, WNOHANG) == pid) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
}

}  // namespace blobd::test
