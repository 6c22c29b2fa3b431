#!/usr/bin/env bash
# Description: restarts of the fanotify frontend on the host kernel, as root. Under a stand-in
# service manager (tests/e2e/fdstore.py: systemd's fd store protocol) the daemon is SIGKILLed
# while 8 readers wait on stalled fetches; its successor takes the group, the cache files and the
# table of unanswered events from the store and answers them: every reader gets the source's
# bytes (never a zero from a hole), and chunks filled before the crash are not fetched again.
# A second crash with everything filled: a cold re-read fetches nothing. Also: mmap readers, an
# umount refused while a file is open, an unmount by umount(8) noticed and released, a dozen
# mounts across domains, and a crash without an fd store (the successor opens the files again
# and re-marks them); with the blob store, two domains and one download; a 4 KiB-chunk image.
# The config says "frontend": "auto" (with no /dev/cachefiles it must choose
# fanotify, also in a successor handed the kept group).
#
#   tests/fanotify/handoff.sh DAEMON BLOBCTL SOURCE_DIR
#
# Private mount namespace, work dir on ext4 under /tmp, everything unmounted in an EXIT trap.
# Exit 0: all passed; 1: a check failed; 77: skipped (as tests/fanotify/run.sh).
set -uo pipefail
daemon=$(realpath "${1:?usage: handoff.sh DAEMON BLOBCTL SOURCE_DIR}")
ctl=$(realpath "${2:?}")
top=$(realpath "${3:?}")

suite="fanotify handoff tests"
. "$(dirname "$0")/lib.sh"
fan_enter "$0" "$daemon" "$ctl" "$top"

work=$(mktemp -d /tmp/blobd-fanh-XXXXXX)
super_pid= web_pid= direct_pid= holder_pid=
cleanup() {
    [ -n "$super_pid" ] && kill -TERM "$super_pid" 2>/dev/null && wait "$super_pid" 2>/dev/null
    [ -n "$direct_pid" ] && kill -KILL "$direct_pid" 2>/dev/null && wait "$direct_pid" 2>/dev/null
    [ -n "$holder_pid" ] && kill "$holder_pid" 2>/dev/null
    [ -n "$web_pid" ] && kill "$web_pid" 2>/dev/null
    unmount_under "$work"
    rm -rf "$work"
}
trap cleanup EXIT

sock=$work/ctl.sock
bctl() { "$ctl" --socket "$sock" "$@"; }
stat_of() { bctl --raw stats | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
wait_for() {  # wait_for SECONDS CMD...: true once CMD succeeds
    local end=$((SECONDS + $1)); shift
    while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.1; done
    "$@"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ---- fixtures: one image with big files (chunks to stall on), a second sharing its blob ----
rnd() { head -c "$2" /dev/urandom >"$1"; }
t1=$work/src/tree1
mkdir -p "$t1/big" "$t1/small" "$t1/map"
for i in 1 2 3 4 5 6 7 8; do rnd "$t1/big/b$i" $((3 * 1024 * 1024 + i * 4099)); done
for i in $(seq 1 30); do rnd "$t1/small/s$i" $((i * 1777)); done
rnd "$t1/map/mapped" $((4 * 1024 * 1024 + 77))
rnd "$t1/map/held" $((2 * 1024 * 1024))
cp -a "$t1" "$work/src/tree2"; : >"$work/src/tree2/only2"
blobs=$work/blobs
"$top/scripts/mkblobimg" --quiet --out "$blobs" --chunk-size 1048576 --blob blob1 \
    --image img1="$t1" --image img2="$work/src/tree2" || { echo "mkblobimg failed"; exit 1; }
blob_size=$(command stat -c %s "$blobs/blob1")

web=$work/web; mkdir -p "$web"
port=$((20000 + $$ % 20000))
python3 "$top/tests/e2e/rangeserver.py" "$blobs" "$port" "$web" 2>"$work/web.log" &
web_pid=$!
wait_for 10 test -f "$web/listening" || { echo "FAIL: test web server did not start"; cat "$work/web.log"; exit 1; }

mkdir -p "$work/cache"
cat >"$work/config.json" <<JSON
{"cache": {"dir": "$work/cache"}, "frontend": "auto", "device": "$work/no-cachefiles",
 "sources": [{"type": "http", "url": "http://127.0.0.1:$port", "retries": 0}],
 "store": {"enabled": false}, "prefetch": false,
 "control_socket": "$sock", "chunk_size": 1048576, "read_deadline_ms": 60000, "log_level": "info"}
JSON
"$daemon" --check-config "$work/config.json" --quiet || { echo "FAIL: config refused"; exit 1; }

super=$work/super
start_supervised() {
    python3 "$top/tests/e2e/fdstore.py" "$super" -- "$daemon" --config "$work/config.json" >>"$work/daemon.log" 2>&1 &
    super_pid=$!
}
wait_ready() {  # wait_ready N: the Nth start sent READY=1 and answers on the socket
    wait_for 20 grep -qx "$1" "$super/ready" 2>/dev/null && wait_for 10 bctl ping >/dev/null 2>&1
}
start_supervised
if ! wait_ready 1; then
    cat "$work/daemon.log"
    if grep -q "frontend fanotify:" "$work/daemon.log"; then skip "the probe failed: $(grep "frontend fanotify:" "$work/daemon.log")"; fi
    echo "FAIL: the daemon did not start"; exit 1
fi

# ---- 1. the group, the event table and the cache file go to the fd store ----
mnt=$work/mnt1; mkdir -p "$mnt"
if bctl mount --domain d1 img1 "$mnt"; then pass "mount img1"; else fail "mount img1"; fi
for n in fanotify-group fanotify-events; do
    if grep -qx "$n" "$super/stored"; then pass "$n in the fd store"; else fail "$n not stored: $(cat "$super/stored")"; fi
done
if [ "$(grep -c '^fanotify-blob-' "$super/stored")" = 1 ]; then pass "the cache file's fd in the fd store"
else fail "blob fds stored: $(grep '^fanotify-blob-' "$super/stored" | wc -l)"; fi
if same_tree "$t1/small" "$mnt/small"; then pass "small files identical"; else fail "small files differ"; fi

# ---- 2. SIGKILL while 8 readers wait on stalled fetches; the successor answers them ----
touch "$web/stall"
before_stall=$(wc -l <"$web/requests")
pids=()
for i in 1 2 3 4 5 6 7 8; do
    ( timeout 120 cmp "$t1/big/b$i" "$mnt/big/b$i" >"$work/cmp$i" 2>&1 ) &
    pids+=($!)
done
wait_for 20 test -f "$web/stalled" || fail "no fetch reached the stalled server"
# The readers' events are read and handed to the engine (recorded in the table) before the kill.
wait_for 20 sh -c "[ \"\$($ctl --socket $sock --raw stats | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"fanotify\"][\"events_pending\"])')\" -ge 8 ]" \
    && pass "8 events pending before the crash" || fail "events pending: $(stat_of 's["fanotify"]["events_pending"]')"
at_kill=$(wc -l <"$web/requests")
kill -USR1 "$super_pid"   # SIGKILL the daemon; the supervisor starts it again with the stored fds
if wait_ready 2; then pass "successor started"; else fail "the successor did not start"; fi
rm -f "$web/stall"
bad=0 zeros=0
for i in 1 2 3 4 5 6 7 8; do
    if ! wait "${pids[$((i - 1))]}"; then bad=$((bad + 1)); cat "$work/cmp$i"; fi
done
if [ "$bad" = 0 ]; then pass "all 8 readers across the crash got the source's bytes"; else fail "$bad of 8 readers got wrong bytes or an error"; fi
grep -q "took over the fanotify group" "$work/daemon.log" && pass "the successor took the group over" || fail "no group takeover logged"
grep -q "staying with fanotify" "$work/daemon.log" && pass "auto kept fanotify for the kept group" || fail "auto did not see the kept group"
rec=$(stat_of 's["fanotify"]["recovered_events"]')
if [ "$rec" -ge 1 ]; then pass "$rec unanswered event(s) of the dead daemon answered"; else fail "no recovered events"; fi
if [ "$(stat_of 's["fanotify"]["adopted_mounts"]')" = 1 ]; then pass "the mount was taken over"; else fail "adopted_mounts != 1"; fi
# Fetched twice only what was in flight at the kill (stalled, never written).
python3 - "$web/requests" "$before_stall" "$at_kill" <<'PY' && pass "no chunk fetched twice except those in flight at the crash" || fail "chunks fetched twice"
import sys
lines = open(sys.argv[1]).read().split("\n")[:-1]
b, k = int(sys.argv[2]), int(sys.argv[3])
inflight = set(lines[b:k])
seen, bad = set(), []
for i, l in enumerate(lines):
    if l in seen and l not in inflight:
        bad.append(l)
    seen.add(l)
if bad:
    print("fetched twice:", bad[:5]); sys.exit(1)
PY

# ---- 3. everything filled, a second crash: a cold re-read fetches nothing ----
if same_tree "$t1" "$mnt"; then pass "whole tree identical after the takeover"; else fail "tree differs after the takeover"; fi
# Every byte of blob1 is in its cache file now: its mark goes, later reads raise no events.
if [ "$(stat_of 's["fanotify"]["files_completed"]')" = 1 ]; then pass "the complete cache file was unmarked"
else fail "files_completed: $(stat_of 's["fanotify"]["files_completed"]')"; fi
reqs=$(wc -l <"$web/requests")
kill -USR1 "$super_pid"
if wait_ready 3; then pass "third start"; else fail "third start"; fi
drop_caches
if same_tree "$t1" "$mnt"; then pass "cold re-read identical"; else fail "cold re-read differs"; fi
ev=$(stat_of 's["fanotify"]["events"]')
if [ "$ev" = 0 ]; then pass "cold re-read of the complete file raised no events"; else fail "cold re-read raised $ev events"; fi
if [ "$(wc -l <"$web/requests")" = "$reqs" ]; then pass "cold re-read after the restart fetched nothing"
else fail "re-read fetched $(( $(wc -l <"$web/requests") - reqs )) ranges again"; fi
grep -q "chunk(s) already filled" "$work/daemon.log" && pass "filled chunks found in the kept file" || fail "no 'already filled' log"

# ---- 4. mmap readers (page faults raise the events) on a cold mount ----
mnt2=$work/mnt2; mkdir -p "$mnt2"
bctl mount --domain d2 img2 "$mnt2" || fail "mount img2 in d2"
mm=$(python3 - "$mnt2/map/mapped" "$t1/map/mapped" <<'PY'
import mmap, sys, hashlib
def h(p):
    with open(p, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        # Touch pages out of order, then hash all of it.
        for off in range(len(m) - 1, 0, -1 << 20):
            m[off]
        d = hashlib.sha256(m[:]).hexdigest(); m.close(); return d
print("same" if h(sys.argv[1]) == h(sys.argv[2]) else "differs")
PY
)
if [ "$mm" = same ]; then pass "mmap reader identical"; else fail "mmap reader: $mm"; fi

# ---- 5. umount with a file open: refused, the reader unharmed; then it goes ----
exec 7<"$mnt2/map/held"
if bctl umount "$mnt2" 2>"$work/err"; then fail "umount with an open file succeeded"
elif grep -qi "busy" "$work/err"; then pass "umount while reading refused: $(cat "$work/err")"
else fail "unclear umount error: $(cat "$work/err")"; fi
if cmp -s /dev/fd/7 "$t1/map/held"; then pass "the open file reads right after the refused umount"; else fail "open file differs"; fi
exec 7<&-
if bctl umount "$mnt2"; then pass "umount after the reader closed"; else fail "umount after the reader closed"; fi

# ---- 6. umount(8) without the daemon: noticed, files released ----
bctl mount --domain d2 img2 "$mnt2" || fail "remount img2"
umount "$mnt2" || fail "umount(8)"
if wait_for 10 sh -c "[ ! -e '$work/cache/fanotify/d2/blobs/blob1' ]"; then pass "umount(8) noticed: d2's cache file released"
else fail "d2's cache file still there after umount(8)"; fi
if [ "$(stat_of 's["fanotify"]["external_umounts"]')" = 1 ]; then pass "external_umounts = 1"; else fail "external_umounts != 1"; fi
if bctl mount --domain d2 img2 "$mnt2"; then pass "mount again at the same mountpoint"; else fail "mount again after umount(8)"; fi
bctl umount "$mnt2" || fail "umount img2"

# ---- 7. a dozen mounts in three domains: each domain reads blob1 once ----
reqs=$(wc -l <"$web/requests")
ok=0
for i in $(seq 1 12); do
    d=dz$((i % 3)); img=img$((1 + i % 2)); m=$work/dz$i; mkdir -p "$m"
    bctl mount --domain "$d" "$img" "$m" || { fail "mount $img in $d at dz$i"; continue; }
    src=$t1; [ "$img" = img2 ] && src=$work/src/tree2
    same_tree "$src" "$m" && ok=$((ok + 1))
done
if [ "$ok" = 12 ]; then pass "12 mounts, all identical"; else fail "$ok of 12 mounts identical"; fi
got=$(sed -n "$((reqs + 1)),\$p" "$web/requests" | awk '$1 == "/blob1" { split($2, r, "-"); n += r[2] - r[1] + 1 } END { print n + 0 }')
if [ "$got" = $((3 * blob_size)) ]; then pass "blob1 fetched once per domain ($got bytes)"; else fail "blob1: $got bytes fetched for 3 domains, expected $((3 * blob_size))"; fi
for i in $(seq 1 12); do bctl umount "$work/dz$i" || fail "umount dz$i"; done

# ---- 8. stop: unmounts, exits 0 ----
kill -TERM "$super_pid"; wait "$super_pid"; super_pid=
if mounted "$mnt"; then fail "mnt1 still mounted after stop"; else pass "stop unmounted mnt1"; fi
if [ "$(tail -1 "$super/exits")" = 0 ]; then pass "daemon exit 0"; else fail "daemon exit $(tail -1 "$super/exits")"; fi

# ---- 9. a crash without an fd store: the next daemon opens the files again and marks them ----
"$daemon" --config "$work/config.json" >>"$work/direct.log" 2>&1 &
direct_pid=$!
wait_for 20 bctl ping >/dev/null 2>&1 || fail "direct daemon did not start"
bctl mount --domain d1 img1 "$mnt" || fail "mount img1 (direct)"
cmp -s "$t1/big/b1" "$mnt/big/b1" || fail "b1 differs (direct)"
kill -KILL "$direct_pid"; wait "$direct_pid" 2>/dev/null
"$daemon" --config "$work/config.json" >>"$work/direct.log" 2>&1 &
direct_pid=$!
wait_for 20 bctl ping >/dev/null 2>&1 || fail "second direct daemon did not start"
grep -q "took over $mnt" "$work/direct.log" && pass "mount taken over without an fd store" || fail "no takeover without an fd store"
drop_caches
if same_tree "$t1" "$mnt"; then pass "tree identical after a crash without an fd store"; else fail "tree differs after the re-mark"; fi
kill -TERM "$direct_pid"; wait "$direct_pid"; direct_pid=
if mounted "$mnt"; then fail "mnt1 still mounted"; fi

# ---- 9b. a takeover whose cache fd notifies: the daemon's own writes raise events ----
# A watcher of another group holds a mark on the cache file while the successor reopens it (what
# a dead predecessor's marks being torn down asynchronously cause, now and then, in step 9): the
# successor's writes through that fd raise events in its own group, which it must allow at once
# rather than wait for itself (a hang of every reader, seen about once in 15 runs of step 9).
"$daemon" --config "$work/config.json" >>"$work/direct.log" 2>&1 &
direct_pid=$!
wait_for 20 bctl ping >/dev/null 2>&1 || fail "direct daemon (9b) did not start"
bctl mount --domain d9 img1 "$mnt" || fail "mount img1 in d9 (9b)"  # a new, empty cache file
kill -KILL "$direct_pid"; wait "$direct_pid" 2>/dev/null
python3 "$top/tests/fanotify/premark_holder.py" "$work/cache/fanotify/d9/blobs/blob1" "$work/holder.ready" 2>"$work/holder.log" &
holder_pid=$!
wait_for 10 test -e "$work/holder.ready" || fail "premark_holder.py did not mark the cache file: $(cat "$work/holder.log")"
"$daemon" --config "$work/config.json" >>"$work/direct.log" 2>&1 &
direct_pid=$!
wait_for 20 bctl ping >/dev/null 2>&1 || fail "direct daemon (9b, successor) did not start"
kill "$holder_pid"; wait "$holder_pid" 2>/dev/null; holder_pid=  # the fd opened meanwhile keeps notifying
drop_caches
if timeout 120 sh -c "cmp -s '$t1/big/b5' '$mnt/big/b5' && cmp -s '$t1/big/b6' '$mnt/big/b6'"; then
    pass "reads through a takeover whose cache fd notifies complete"
else fail "reads after a takeover with a notifying cache fd hung or differ"; fi
self=$(stat_of 's["fanotify"]["self_events"]')
if [ "$self" -ge 1 ]; then pass "$self event(s) of the daemon's own writes allowed"; else fail "self_events = $self: the fd did not notify, nothing tested"; fi
kill -TERM "$direct_pid"; wait "$direct_pid"; direct_pid=

# ---- 10. the blob store: two domains, one download; a 4 KiB-chunk image ----
t4=$work/src/tree4k; mkdir -p "$t4"; rnd "$t4/f" $((1024 * 1024 + 999)); rnd "$t4/g" 40000
"$top/scripts/mkblobimg" --quiet --out "$blobs" --chunk-size 4096 --blob blob4k --image img4k="$t4" || fail "mkblobimg 4k"
sed 's|"store": {"enabled": false}|"store": {"enabled": true, "dir": "'"$work"'/store"}|' "$work/config.json" >"$work/store.json"
"$daemon" --config "$work/store.json" >>"$work/store.log" 2>&1 &
direct_pid=$!
wait_for 20 bctl ping >/dev/null 2>&1 || fail "daemon with the store did not start"
reqs=$(wc -l <"$web/requests")
ok=0
for d in s1 s2; do
    mkdir -p "$work/$d"
    bctl mount --domain "$d" img1 "$work/$d" && same_tree "$t1" "$work/$d" && ok=$((ok + 1))
done
if [ "$ok" = 2 ]; then pass "img1 in two domains with the store, identical"; else fail "store mounts: $ok of 2 identical"; fi
got=$(sed -n "$((reqs + 1)),\$p" "$web/requests" | awk '$1 == "/blob1" { split($2, r, "-"); n += r[2] - r[1] + 1 } END { print n + 0 }')
if [ "$got" = "$blob_size" ]; then pass "blob1 downloaded once for two domains (the store filled the second)"
else fail "blob1: $got bytes fetched for two domains with the store, expected $blob_size"; fi
mkdir -p "$work/m4k"
if bctl mount --domain s1 img4k "$work/m4k" && same_tree "$t4" "$work/m4k"; then pass "4 KiB-chunk image identical"
else fail "4 KiB-chunk image"; fi
for m in s1 s2 m4k; do bctl umount "$work/$m" || fail "umount $m"; done
kill -TERM "$direct_pid"; wait "$direct_pid"; direct_pid=

if [ "$failures" != 0 ]; then
    echo "--- daemon log:"; tail -60 "$work/daemon.log"; echo "--- direct log:"; tail -30 "$work/direct.log" 2>/dev/null
    echo "fanotify handoff tests: $failures FAILED"; exit 1
fi
echo "fanotify handoff tests: all passed"
