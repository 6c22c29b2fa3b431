#!/usr/bin/env python3
"""A minimal service manager for the restart tests: systemd's notify + fd store protocol.

    fdstore.py STATE_DIR -- COMMAND [ARGS...]

Runs COMMAND with NOTIFY_SOCKET set, keeps the fds it stores (FDSTORE=1 + SCM_RIGHTS, FDNAME=),
drops them on FDSTOREREMOVE=1, and passes them to the next start of COMMAND the way systemd does
(fds 3.., LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID). Controlled by signals:
    SIGUSR1  crash: SIGKILL the daemon, then start it again (the store is kept)
    SIGUSR2  restart: SIGTERM the daemon, wait, then start it again (the store is kept)
    SIGTERM  stop: SIGTERM the daemon, wait, close the store, exit
STATE_DIR gets: pid (the daemon's pid), ready (the start count, written on READY=1),
stored (the names in the store, one per line), exits (one exit status per line), notify.log
(every notify message: "MONOTONIC_SECONDS FIELD=VALUE ..." one line each; for STATUS=, WATCHDOG=1,
RELOADING=1). With FDSTORE_WATCHDOG_USEC=N in its environment the daemon gets WATCHDOG_USEC=N and
WATCHDOG_PID (as under WatchdogSec=); the pings are only logged, nothing is killed for missing them.
"""
import array
import os
import signal
import socket
import sys
import time

state, cmd = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
os.makedirs(state, exist_ok=True)
sock_path = os.path.join(state, "notify.sock")
if os.path.exists(sock_path):
    os.unlink(sock_path)
nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
nsock.bind(sock_path)
nsock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
os.environ["NOTIFY_SOCKET"] = sock_path

store = {}      # name -> fd
starts = 0
child = None
pending = []    # signals not handled yet


def put(name, text):
    with open(os.path.join(state, name + ".tmp"), "w") as f:
        f.write(text)
    os.replace(os.path.join(state, name + ".tmp"), os.path.join(state, name))


def start():
    global child, starts
    starts += 1
    names = list(store)
    fds = [store[n] for n in names]
    child = os.fork()
    if child == 0:
        try:
            # Stored fds go to 3.. in order, and name the pid that may take them, as systemd does.
            tmp = [os.dup(fd) for fd in fds]
            for i, fd in enumerate(tmp):
                os.dup2(fd, 3 + i, inheritable=True)
                os.close(fd)
            for k in ("LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"):
                os.environ.pop(k, None)
            if os.environ.get("FDSTORE_WATCHDOG_USEC"):
                os.environ.update(WATCHDOG_USEC=os.environ["FDSTORE_WATCHDOG_USEC"], WATCHDOG_PID=str(os.getpid()))
            if names:
                os.environ.update(LISTEN_FDS=str(len(names)), LISTEN_FDNAMES=":".join(names),
                                  LISTEN_PID=str(os.getpid()))
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    put("pid", str(child))


def reap(sig):
    global child
    if child is None:
        return
    try:
        os.kill(child, sig)
    except ProcessLookupError:
        pass
    _, status = os.waitpid(child, 0)
    with open(os.path.join(state, "exits"), "a") as f:
        f.write(f"{os.waitstatus_to_exitcode(status)}\n")
    child = None


def on_message():
    fds = array.array("i")
    data, anc, _, _ = nsock.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
    got = []
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got.extend(array.array("i", payload[: len(payload) - len(payload) % fds.itemsize]))
    fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
    with open(os.path.join(state, "notify.log"), "a") as f:
        f.write(f"{time.monotonic():.3f} " + " ".join(data.decode().splitlines()) + "\n")
    if fields.get("FDSTORE") == "1":
        name = fields.get("FDNAME", "stored")
        for fd in got:
            if name in store:
                os.close(store[name])
            os.set_inheritable(fd, False)
            store[name] = fd
        got = []
    if fields.get("FDSTOREREMOVE") == "1":
        fd = store.pop(fields.get("FDNAME", ""), None)
        if fd is not None:
            os.close(fd)
    for fd in got:
        os.close(fd)
    put("stored", "".join(n + "\n" for n in store))
    if fields.get("READY") == "1":
        put("ready", str(starts))


for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
    signal.signal(s, lambda sig, _f: pending.append(sig))
put("stored", "")
start()
while True:
    nsock.settimeout(0.05)
    try:
        on_message()
    except (socket.timeout, BlockingIOError, InterruptedError):
        pass
    if child is not None:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:  # exited on its own: record it, like a failed unit (no automatic restart)
            with open(os.path.join(state, "exits"), "a") as f:
                f.write(f"{os.waitstatus_to_exitcode(status)}\n")
            child = None
    while pending:
        sig = pending.pop(0)
        if sig == signal.SIGTERM:
            reap(signal.SIGTERM)
            for fd in store.values():
                os.close(fd)
            sys.exit(0)
        reap(signal.SIGKILL if sig == signal.SIGUSR1 else signal.SIGTERM)
        start()
