// The device fd handoff across restarts (frontends/cachefiles/handoff.hpp): the stored fd's name, and
// taking it back from LISTEN_FDS the way systemd passes it. The kernel side (restore, mounts that
// survive a SIGKILL) is tested on the real kernel: tests/e2e/cases/080-takeover.sh.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <catch2/catch.hpp>

#include "frontends/cachefiles/handoff.hpp"
#include "frontends/fd_store.hpp"

using namespace blobd;

TEST_CASE("handoff: the stored fd's name is a stable fingerprint of the binding") {
    auto n = handoff::fd_name("/dev/cachefiles", "/var/cache/erofs-blobd", "erofs-blobd");
    // Pinned: a name that changed between versions would make an upgrade drop the binding.
    CHECK(n == handoff::fd_name("/dev/cachefiles", "/var/cache/erofs-blobd", "erofs-blobd"));
    CHECK(n.rfind("cachefiles-", 0) == 0);
    CHECK(n.size() == std::strlen("cachefiles-") + 16);
    CHECK(n.find_first_not_of("0123456789abcdef", 11) == std::string::npos);
    CHECK(n != handoff::fd_name("/dev/cachefiles", "/var/cache/other", "erofs-blobd"));
    CHECK(n != handoff::fd_name("/dev/cachefiles", "/var/cache/erofs-blobd", "other"));
    CHECK(n != handoff::fd_name("/dev/other", "/var/cache/erofs-blobd", "erofs-blobd"));
    // Field boundaries count.
    CHECK(handoff::fd_name("a", "bc", "d") != handoff::fd_name("ab", "c", "d"));
}

namespace {
// Runs `body` in a forked child (fds 3.. and the environment are process-wide) and returns its
// exit status: 0 = every check passed, otherwise the number of the failed check.
int in_child(int (*body)()) {
    pid_t pid = fork();
    if (pid == 0) _exit(body());
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

int take_matching() {
    int p1[2], p2[2], p3[2];
    if (pipe(p1) || pipe(p2) || pipe(p3)) return 1;
    // fds 3, 4, 5 as systemd passes them; the manager's notify socket is ours to read.
    int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "/tmp/blobd-handoff-%d.sock", getpid());
    unlink(sa.sun_path);
    if (bind(ns, reinterpret_cast<sockaddr*>(&sa), sizeof sa)) return 2;
    int hi = fcntl(ns, F_DUPFD_CLOEXEC, 100);
    if (hi < 0) return 3;
    dup2(p1[0], 3);
    dup2(p2[0], 4);
    dup2(p3[0], 5);
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
    setenv("LISTEN_FDS", "3", 1);
    setenv("LISTEN_FDNAMES", "cachefiles-0000000000000001:cachefiles-00000000000000ff:fanotify-group", 1);
    unique_fd fd = handoff::take_stored("cachefiles-00000000000000ff");
    unlink(sa.sun_path);
    if (fd.get() != 4) return 4;
    if (!(fcntl(4, F_GETFD) & FD_CLOEXEC)) return 5;
    if (fcntl(3, F_GETFD) != -1) return 6;                                 // the other binding's is closed
    // The fanotify group stays passed ("auto" may still choose fanotify), until main.cpp clears.
    if (fcntl(5, F_GETFD) == -1 || fd_store::passed().count("fanotify-group") != 1) return 11;
    fd_store::passed().clear();
    if (fcntl(5, F_GETFD) != -1) return 12;
    if (std::getenv("LISTEN_FDS") || std::getenv("LISTEN_PID")) return 7;  // consumed
    // The other binding's fd was dropped from the store, so it cannot keep the device busy.
    char buf[256] = {};
    ssize_t n = recv(hi, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n <= 0) return 8;
    if (std::string(buf) != "FDSTOREREMOVE=1\nFDNAME=cachefiles-0000000000000001") return 9;
    if (recv(hi, buf, sizeof buf, MSG_DONTWAIT) >= 0) return 10;           // nothing else was sent
    return 0;
}

int take_nothing() {
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("NOTIFY_SOCKET");
    if (handoff::take_stored("cachefiles-00000000000000ff")) return 1;
    if (handoff::store(0, "cachefiles-00000000000000ff") != 0) return 2;  // no manager: nothing sent
    // LISTEN_FDS meant for another process (LISTEN_PID differs) are not ours to take.
    setenv("LISTEN_PID", "1", 1);
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", "cachefiles-00000000000000ff", 1);
    if (handoff::take_stored("cachefiles-00000000000000ff")) return 3;
    return 0;
}
}  // namespace

TEST_CASE("handoff: the kept device fd is taken from LISTEN_FDS by name, another binding's dropped, fanotify's kept") {
    CHECK(in_child(take_matching) == 0);
}

TEST_CASE("handoff: without a service manager nothing is taken or stored") {
    CHECK(in_child(take_nothing) == 0);
}
