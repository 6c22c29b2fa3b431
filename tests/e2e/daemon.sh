# Starting and stopping erofs-blobd inside the UML guest: one copy for the end-to-end cases
# (tests/e2e/lib.sh) and the real-kernel benchmarks (bench/uml/guest.sh). Sourced; defines
# functions only. Process creation is slow in UML, so the wait loop polls every 50 ms.
#
# blobd_start BIN CONF SOCK LOG [NAME=VALUE...]
#   runs BIN/erofs-blobd --config CONF in the background (stdout and stderr appended to LOG, the
#   NAME=VALUE words added to its environment) and sets DAEMON_PID. Returns 0 once BIN/erofs-blobctl
#   gets an answer on SOCK, 1 if the daemon exited first, 2 if it did not answer within 10 s.
# blobd_stop
#   sends SIGTERM to DAEMON_PID, waits for it, clears DAEMON_PID; returns the daemon's exit status.
blobd_start() {
    local bin=$1 conf=$2 sock=$3 log=$4
    shift 4
    env "$@" "$bin/erofs-blobd" --config "$conf" >>"$log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 1 200); do
        "$bin/erofs-blobctl" --socket "$sock" ping >/dev/null 2>&1 && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 2
}

blobd_stop() {
    kill -TERM "$DAEMON_PID"
    local rc=0
    wait "$DAEMON_PID" || rc=$?
    DAEMON_PID=
    return $rc
}
