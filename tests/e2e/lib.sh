# Helpers for the end-to-end guest scripts (sourced inside the UML guest).
#
# Environment (from tests/e2e/run-case.sh through run-uml.sh --env):
#   E2E_BIN    the build's bin/ dir (erofs-blobd, erofs-blobctl)
#   E2E_DATA   fixtures made by make-fixtures.sh (src/ trees, blobs/, sizes)
#   BLOBD_CACHE_MNT, BLOBD_UML_RUN   from the UML runner
set -u
: "${E2E_BIN:?}" "${E2E_DATA:?}"
CACHE_DIR=$BLOBD_CACHE_MNT/blobd
SOCK=/run/blobd/control.sock
CONF=/run/blobd/config.json
BLOBS=/run/blobs        # the daemon's local source: a guest-private copy, so tests may damage it
DAEMON_PID=
DAEMON_LOG=$BLOBD_UML_RUN/daemon.log
mkdir -p /run/blobd "$CACHE_DIR" "$BLOBS" /run/mnt
cp "$E2E_DATA"/blobs/* "$BLOBS"/

step() { echo "--- $*"; }
DAEMON_PAUSED=
# How long an operation that must end (mount, a read that must fail) may take before it counts as
# hung: generous, since a loaded 2-core host slows the guest down a lot. BLOBD_E2E_HANG_S overrides.
HANG_S=${BLOBD_E2E_HANG_S:-60}

# run_limited SECONDS CMD...: runs CMD in the background and returns its exit status, or 124 when
# it is still running after SECONDS (it is then sent SIGKILL and not waited for: a task stuck in
# the kernel may not die). Unlike `timeout`, this returns even if CMD cannot be killed.
run_limited() {
    local limit=$1; shift
    "$@" &
    local pid=$! first rc
    sleep "$limit" &
    local timer=$!
    wait -n -p first "$pid" "$timer"; rc=$?
    if [ "$first" = "$pid" ]; then
        kill "$timer" 2>/dev/null; wait "$timer" 2>/dev/null
        return "$rc"
    fi
    kill -KILL "$pid" 2>/dev/null
    disown "$pid" 2>/dev/null   # no "Killed" notice later
    return 124
}

# expect_fails_in SECONDS WHAT -- CMD...: CMD must fail, and within SECONDS. The case fails with
# "WHAT hung" when CMD is still running after SECONDS, with "WHAT succeeded" when CMD exits 0.
# CMD's stdout goes to /dev/null, its stderr to $CMD_ERR (read it for the error message).
# Use this, never `if CMD; then fail; fi; rc=$?`: after `fi`, $? is 0 whenever the condition was
# false, so such a hang check cannot fire.
CMD_ERR=/run/cmd.err
expect_fails_in() {
    local limit=$1 what=$2 rc=0
    [ "${3:-}" = -- ] || fail "expect_fails_in: usage: SECONDS WHAT -- CMD..."
    shift 3
    run_limited "$limit" "$@" >/dev/null 2>"$CMD_ERR" || rc=$?
    [ "$rc" = 124 ] && fail "$what hung (still running after ${limit}s)"
    [ "$rc" = 0 ] && fail "$what succeeded, but must fail"
    echo "ok: $what failed (exit $rc): $(head -c 300 "$CMD_ERR")"
}

# --- sabotage: prove that checks can fail (tests/e2e/selftest-checks.sh) ---
# BLOBD_E2E_SABOTAGE=NAME (passed into the guest by run-case.sh) makes a case misbehave on purpose
# at the point marked `sabotage NAME`; such a run must FAIL with the check's message. Unset: no-op.
SABOTAGE=${BLOBD_E2E_SABOTAGE:-}
[ -n "$SABOTAGE" ] && echo "e2e: SABOTAGE=$SABOTAGE: this run must fail" >&2
sabotage() { [ "$SABOTAGE" = "$1" ] && echo "--- SABOTAGE $1" >&2; [ "$SABOTAGE" = "$1" ]; }
# pause_daemon: SIGSTOP the daemon: every request the kernel sends it now waits, so an operation
# that needs one hangs. Hangs are then reported after 10 s (BLOBD_E2E_SABOTAGE_HANG_S), not 60.
pause_daemon() {
    kill -STOP "$DAEMON_PID" || fail "cannot stop the daemon"
    DAEMON_PAUSED=1 HANG_S=${BLOBD_E2E_SABOTAGE_HANG_S:-10}
}
fail() {
    echo "FAIL: $*" >&2
    if [ -n "$DAEMON_PID" ]; then
        [ -n "$DAEMON_PAUSED" ] && kill -CONT "$DAEMON_PID" 2>/dev/null   # let init stop it cleanly
        echo "daemon log (tail):" >&2; tail -n 30 "$DAEMON_LOG" >&2
    fi
    exit 1
}
size_of() { awk -v n="$1" '$1 == n { print $2 }' "$E2E_DATA/sizes"; }

# EXTRA_CONFIG: more top-level members for the config, e.g. '"store": {"enabled": true}'.
write_config() {
    cat >"$CONF" <<JSON
{"cache": {"dir": "$CACHE_DIR", "tag": "e2e"},
 "chunk_size": ${CHUNK_SIZE:-1048576},
 "sources": [{"type": "local", "path": "$BLOBS"}],
 "control_socket": "$SOCK",
 "log_level": "${LOG_LEVEL:-info}"${EXTRA_CONFIG:+, $EXTRA_CONFIG}}
JSON
}

. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"
start_daemon() {
    write_config
    local rc=0
    blobd_start "$E2E_BIN" "$CONF" "$SOCK" "$DAEMON_LOG" || rc=$?
    case $rc in
        0) ;;
        1) fail "daemon exited at startup" ;;
        *) fail "daemon did not answer on $SOCK" ;;
    esac
}

stop_daemon() {
    local rc=0
    blobd_stop || rc=$?
    [ "$rc" = 0 ] || fail "daemon exited with $rc after SIGTERM"
}

# stat KEY: one top-level counter of the running daemon
stat() { "$E2E_BIN/erofs-blobctl" --socket "$SOCK" stats --get "$1"; }
# source_bytes: bytes the local source read from blob files
source_bytes() { "$E2E_BIN/erofs-blobctl" --socket "$SOCK" stats --raw | sed -n 's/.*"sources":\[{[^]]*"bytes":\([0-9]*\).*/\1/p'; }
# wait_until SECONDS WHAT CMD...: polls CMD every 0.2 s until it succeeds; fails the case after SECONDS.
wait_until() {
    local limit=$1 what=$2; shift 2
    local end=$((SECONDS + limit))
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || fail "$what (still not after ${limit}s)"
        sleep 0.2
    done
    echo "ok: $what"
}
expect_eq() { [ "$2" = "$3" ] || fail "$1: expected $3, got $2"; echo "ok: $1 = $2"; }

# same_tree SRC MNT: the mount shows exactly the source tree, every file compared byte for byte.
same_tree() {
    diff -r --no-dereference "$1" "$2" >/dev/null || { diff -r --no-dereference "$1" "$2" | head; fail "$2 differs from $1"; }
    local n=0 f
    while IFS= read -r -d '' f; do
        cmp -s "$1/$f" "$2/$f" || fail "$2/$f differs"
        n=$((n + 1))
    done < <(cd "$1" && find . -type f -print0)
    [ "$n" -gt 0 ] || fail "no files compared under $1: an empty or missing tree proves nothing"
    echo "ok: $2 matches $1 ($n files byte for byte)"
}

mount_erofs() {  # mount_erofs DIR fsid=X[,domain_id=D]
    mkdir -p "$1"
    local rc=0
    run_limited "$HANG_S" mount -t erofs none -o "$2" "$1" || rc=$?
    [ "$rc" = 124 ] && fail "mount -o $2 $1 hung (still running after ${HANG_S}s)"
    [ "$rc" = 0 ] || fail "mount -o $2 $1 failed (exit $rc)"
}

daemon_fd_count() { ls "/proc/$DAEMON_PID/fd" | wc -l; }
# expect_caps WHAT [MASK]: every thread of the daemon has exactly MASK (hex, default 0: the
# cachefiles frontend keeps none once bound) in its effective, permitted and bounding sets.
expect_caps() {
    local want=$((16#${2:-0})) t k v
    for t in /proc/"$DAEMON_PID"/task/*; do
        for k in CapEff CapPrm CapBnd; do
            v=$(awk -v k="$k:" '$1 == k { print $2 }' "$t/status")
            [ -n "$v" ] && [ $((16#$v)) = "$want" ] || fail "$1: $k of thread ${t##*/} is $v, expected $(printf %x "$want")"
        done
    done
    echo "ok: $1: CapEff/CapPrm/CapBnd = $(printf %x "$want") in all $(ls /proc/"$DAEMON_PID"/task | wc -l) threads"
}

# --- a daemon under a service manager that keeps its device fd (tests/e2e/fdstore.py) ---
SUPER_DIR=/run/blobd/super
SUPER_PID=
# start_supervised: like start_daemon, but run by fdstore.py (systemd's fd store protocol).
start_supervised() {
    [ -f "$CONF" ] || write_config
    rm -rf "$SUPER_DIR"
    python3 "$(dirname "${BASH_SOURCE[0]}")/fdstore.py" "$SUPER_DIR" -- \
        "$E2E_BIN/erofs-blobd" --config "$CONF" >>"$DAEMON_LOG" 2>&1 &
    SUPER_PID=$!
    wait_supervised 1
}
# wait_supervised N: until the Nth start of the daemon said READY=1 and answers on its socket.
wait_supervised() {
    for _ in $(seq 1 600); do   # 60 s: a loaded 2-core host slows the UML guest down a lot
        if [ "$(cat "$SUPER_DIR/ready" 2>/dev/null)" = "$1" ] &&
            "$E2E_BIN/erofs-blobctl" --socket "$SOCK" ping >/dev/null 2>&1; then
            DAEMON_PID=$(cat "$SUPER_DIR/pid")
            return 0
        fi
        kill -0 "$SUPER_PID" 2>/dev/null || fail "the supervisor exited"
        sleep 0.1
    done
    ps -eo pid,stat,wchan:30,cmd | grep -v "\[" >&2   # who is stuck where
    tail -n +1 "$SUPER_DIR"/{pid,ready,stored,exits} >&2
    fail "start $1 of the supervised daemon did not become ready"
}
# stop_supervised: SIGTERM to the daemon, then the store is closed (the cache is unbound).
stop_supervised() {
    kill -TERM "$SUPER_PID"
    wait "$SUPER_PID" || fail "the supervisor failed"
    SUPER_PID= DAEMON_PID=
}
net_up() { ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up; }
