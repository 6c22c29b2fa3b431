#!/usr/bin/env bash
# Description: the fanotify frontend raises each new mount's bdi readahead
# ("fanotify.read_ahead_kb", frontends/fanotify/bdi.hpp), on the host kernel as root:
#   - the mount gets exactly one new /sys/class/bdi/erofs-N entry (found by comparing the list
#     before and after, independently of the daemon's FS_IOC_GETFSSYSFSPATH lookup), and its
#     read_ahead_kb is the configured 512;
#   - a cold sequential read then raises fewer events than at the kernel's 128 KiB;
#   - after a reload to 0 the next mount keeps the kernel's default;
#   - when the bdi cannot be found (a tmpfs over /sys/class/bdi), the mount still succeeds and the
#     log has a warning.
#
#   tests/fanotify/read_ahead.sh DAEMON BLOBCTL SOURCE_DIR
#
# Runs itself in a private mount namespace and unmounts what is left in an EXIT trap, like
# tests/fanotify/run.sh. Exit 0: passed; 1: a check failed; 77: skipped (not root, no mkfs.erofs,
# no kernel support).
set -uo pipefail
daemon=$(realpath "${1:?usage: read_ahead.sh DAEMON BLOBCTL SOURCE_DIR}")
ctl=$(realpath "${2:?}")
top=$(realpath "${3:?}")

suite="fanotify read_ahead test"
. "$(dirname "$0")/lib.sh"
fan_enter "$0" "$daemon" "$ctl" "$top"

work=$(mktemp -d /tmp/blobd-fanra-XXXXXX)
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null
    fi
    umount /sys/class/bdi 2>/dev/null  # the tmpfs of the last check, if still there
    unmount_under "$work"
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/src" "$work/cache" "$work/m1" "$work/m2" "$work/m3"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$work/src/data"
"$top/scripts/mkblobimg" --quiet --out "$work/blobs" --chunk-size 1048576 --blob blob --image img="$work/src" ||
    { echo "mkblobimg failed"; exit 1; }

config() {  # config READ_AHEAD_KB
    cat >"$work/config.json" <<JSON
{"cache": {"dir": "$work/cache"}, "frontend": "fanotify",
 "sources": [{"type": "local", "path": "$work/blobs"}],
 "control_socket": "$work/ctl.sock", "fanotify": {"read_ahead_kb": $1}}
JSON
}
config 512
start_daemon "$work/config.json" "$work/ctl.sock" "$work/daemon.log"
c() { "$ctl" --socket "$work/ctl.sock" "$@"; }
events() { c --get fanotify.events stats; }
bdis() { ls /sys/class/bdi | grep '^erofs-' | sort; }
# The bdi a mount added: the erofs-N entries after it that were not there before (one expected).
new_bdi() { comm -13 <(printf '%s\n' "$1") <(bdis); }

# ---- 1. the configured value on the new mount's bdi ----
before=$(bdis)
if c mount img "$work/m1" >/dev/null; then pass "mount 1"; else fail "mount 1"; fi
added=$(new_bdi "$before")
if [ "$(wc -w <<<"$added")" = 1 ]; then pass "mount 1 added one bdi: $added"
else fail "mount 1 added bdis: '${added}' (expected exactly one)"; fi
ra=$(cat "/sys/class/bdi/$added/read_ahead_kb" 2>/dev/null)
if [ "$ra" = 512 ]; then pass "$added/read_ahead_kb = 512"; else fail "$added/read_ahead_kb = '$ra', expected 512"; fi

# ---- 2. fewer events for a cold sequential read than at 128 KiB ----
# 8 MiB with cat (128 KiB reads): about 4 events per MiB at the kernel's 128 KiB (32 here), one
# per 512 KiB window or so at 512.
e0=$(events)
echo 3 >/proc/sys/vm/drop_caches
if cmp -s "$work/src/data" "$work/m1/data"; then pass "data identical"; else fail "data differs"; fi
e1=$(events)
n=$((e1 - e0))
if [ "$n" -gt 0 ] && [ "$n" -lt 32 ]; then pass "cold read of 8 MiB at 512 KiB readahead: $n events"
else fail "cold read of 8 MiB at 512 KiB readahead: $n events (expected 1..31)"; fi

# ---- 3. a reload to 0: the next mount keeps the kernel's default ----
config 0
if c reload >"$work/reload.out" 2>&1 && grep -q "fanotify.read_ahead_kb" "$work/reload.out"; then
    pass "reload: $(tr '\n' ' ' <"$work/reload.out")"
else fail "reload: $(cat "$work/reload.out")"; fi
before=$(bdis)
if c mount img "$work/m2" >/dev/null; then pass "mount 2"; else fail "mount 2"; fi
added=$(new_bdi "$before")
ra=$(cat "/sys/class/bdi/$added/read_ahead_kb" 2>/dev/null)
if [ "$ra" = 128 ]; then pass "read_ahead_kb 0: $added keeps the kernel's 128"; else fail "read_ahead_kb 0: $added has '$ra'"; fi

# ---- 4. no bdi to be found: a warning, and the mount works ----
config 1024
c reload >/dev/null 2>&1 || fail "reload to 1024"
mount -t tmpfs none /sys/class/bdi || fail "tmpfs over /sys/class/bdi"
if c mount img "$work/m3" >"$work/err" 2>&1; then pass "mount 3 without a findable bdi succeeded"
else fail "mount 3 failed: $(cat "$work/err")"; fi
umount /sys/class/bdi
if grep -q "<4>.*m3: readahead left at the kernel's default" "$work/daemon.log"; then
    pass "warning: $(grep -m1 "m3: readahead left" "$work/daemon.log")"
else fail "no warning about the readahead of m3 in the log"; tail -5 "$work/daemon.log"; fi
if cmp -s "$work/src/data" "$work/m3/data"; then pass "m3 data identical"; else fail "m3 data differs"; fi

for m in m1 m2 m3; do c umount "$work/$m" >/dev/null || fail "umount $m"; done
if [ "$failures" != 0 ]; then
    echo "--- daemon log:"; tail -30 "$work/daemon.log"
    echo "fanotify read_ahead test: $failures FAILED"; exit 1
fi
echo "fanotify read_ahead test: all passed"
