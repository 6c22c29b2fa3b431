// The capability decision (caps::kept) and the drop itself, the latter in a forked child (a
// capability drop cannot be undone, and capability sets are per thread: the child of fork has one).
#include <linux/capability.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <fstream>
#include <string>

#include "daemon/capabilities.hpp"

using namespace blobd::caps;

TEST_CASE("caps: the cachefiles frontend keeps nothing once bound or adopted") {
    CHECK(kept(frontend::cachefiles, stage::bound).empty());
    CHECK(kept(frontend::cachefiles, stage::adopted).empty());
    // control_socket_group: chgrp of the control socket, made after the drop.
    CHECK(kept(frontend::cachefiles, stage::bound, true) == std::vector<int>{CAP_CHOWN});
    CHECK(kept(frontend::fanotify, stage::probed, true) == std::vector<int>{CAP_SYS_ADMIN, CAP_CHOWN});
}

TEST_CASE("caps: the fanotify frontend keeps only CAP_SYS_ADMIN (fanotify_init, mount)") {
    CHECK(kept(frontend::fanotify, stage::probed) == std::vector<int>{CAP_SYS_ADMIN});
}

TEST_CASE("caps: names") {
    CHECK(names({}) == "none");
    CHECK(names({CAP_SYS_ADMIN}) == "cap_sys_admin");
    CHECK(names({CAP_CHOWN, CAP_SYS_ADMIN}) == "cap_chown, cap_sys_admin");
}

namespace {
// The hex mask of a "CapXxx:" line of /proc/self/status.
std::uint64_t status_mask(const std::string& key) {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1), nullptr, 16);
    return ~0ULL;
}

// Runs the drop to keep in a child; returns its exit status: 0 when CapEff, CapPrm and CapBnd are
// exactly keep's mask afterwards, CapInh and CapAmb empty.
int drop_in_child(const std::vector<int>& keep) {
    pid_t pid = ::fork();
    if (pid == 0) {
        std::uint64_t want = 0;
        for (int c : keep) want |= 1ULL << c;
        auto r = drop_capabilities(keep);
        if (!r || *r != keep) ::_exit(10);
        if (status_mask("CapEff") != want) ::_exit(11);
        if (status_mask("CapPrm") != want) ::_exit(12);
        if (status_mask("CapBnd") != want) ::_exit(13);
        if (status_mask("CapInh") != 0 || status_mask("CapAmb") != 0) ::_exit(14);
        ::_exit(0);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}
}  // namespace

TEST_CASE("caps: the drop leaves exactly the kept set in the effective, permitted and bounding sets") {
    if (status_mask("CapEff") != status_mask("CapBnd") || (status_mask("CapEff") & (1ULL << CAP_SETPCAP)) == 0) {
        WARN("not run with full capabilities (root): the drop itself is not checked");
        return;
    }
    CHECK(drop_in_child({}) == 0);
    CHECK(drop_in_child({CAP_SYS_ADMIN}) == 0);
}
