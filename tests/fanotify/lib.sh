# Shared by the host-kernel fanotify tests (run.sh, handoff.sh, mount_helper.sh): the skip rule,
# the private mount namespace, pass/fail counting and the checks they all make. Sourced; set
# $suite (the name in the summary lines) first.
#
#   fan_enter "$0" "$@"   skip (77) without root or mkfs.erofs, or fail when BLOBD_E2E_REQUIRED=1;
#                         else re-run the script in a private mount namespace (no mount leaks into
#                         the host's) unless already in one
#   unmount_under DIR     unmount everything below DIR, deepest first, lazily if busy (EXIT traps)
#   start_daemon CONFIG SOCKET LOG
#                         start $daemon in the background (pid in $daemon_pid) and wait until it
#                         answers on SOCKET; skip when its fanotify probe fails, exit 1 otherwise

# skip WHY: exit 77 (ctest: skipped), or fail where the tests are required (CI sets
# BLOBD_E2E_REQUIRED=1, as for the UML tests: a machine that cannot run them must not pass).
skip() {
    if [ "${BLOBD_E2E_REQUIRED:-0}" = 1 ]; then echo "FAIL: $suite required but cannot run: $*"; exit 1; fi
    echo "$suite: skipped ($*)"; exit 77
}

fan_enter() {
    local self=$1; shift
    if [ "$(id -u)" != 0 ]; then skip "needs root"; fi
    if ! command -v mkfs.erofs >/dev/null; then skip "no mkfs.erofs"; fi
    if [ -z "${BLOBD_FAN_NS:-}" ]; then
        BLOBD_FAN_NS=1 exec unshare --mount --propagation private "$self" "$@"
    fi
}

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

unmount_under() {
    awk -v w="$1" '$2 ~ "^"w { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
}

mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }

same_tree() {  # same_tree SRC MNT: diff -r and cmp of every regular file ($work holds the diff)
    local src=$1 mnt=$2 bad=0 f
    if ! diff -r --no-dereference "$src" "$mnt" >"$work/diff.out" 2>&1; then head -20 "$work/diff.out"; bad=1; fi
    while IFS= read -r -d '' f; do
        if ! cmp -s "$src/$f" "$mnt/$f"; then echo "differs: $f"; bad=1; fi
    done < <(cd "$src" && find . -type f -print0)
    return $bad
}

start_daemon() {
    local config=$1 sock=$2 log=$3
    "$daemon" --config "$config" >"$log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 1 100); do
        "$ctl" --socket "$sock" ping >/dev/null 2>&1 && return 0
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
    done
    "$ctl" --socket "$sock" ping >/dev/null 2>&1 && return 0
    cat "$log"
    if grep -q "frontend fanotify:" "$log"; then skip "the probe failed: $(grep "frontend fanotify:" "$log")"; fi
    echo "FAIL: the daemon did not start"; exit 1
}
