#!/usr/bin/env bash
# Description: the fanotify frontend on the host kernel (Linux >= 6.14 with pre-content events and
# file-backed erofs), as root: images built by scripts/mkblobimg (bootstrap + chunk-based blob), the
# daemon with "frontend": "fanotify" and a local source, `erofs-blobctl mount`, every file compared
# byte for byte, counters, two images sharing one blob (read once from the source), a missing blob
# (clear error, nothing mounted, nothing left), a blob shrunk in the source (EIO, never a hang),
# 16 concurrent readers, umount, and a stop that unmounts what is still mounted.
#
#   tests/fanotify/run.sh DAEMON BLOBCTL SOURCE_DIR
#
# Runs itself in a private mount namespace (unshare --mount --propagation private), so no mount
# leaks into the host's, and unmounts everything under its work dir in an EXIT trap anyway. Work dir
# (cache dir included) on ext4 under /tmp. Exit 0: all passed; 1: a check failed; 77: skipped (not
# root, no mkfs.erofs, or the kernel/filesystem cannot do pre-content events).
set -uo pipefail
daemon=$(realpath "${1:?usage: run.sh DAEMON BLOBCTL SOURCE_DIR}")
ctl=$(realpath "${2:?}")
top=$(realpath "${3:?}")

suite="fanotify tests"
. "$(dirname "$0")/lib.sh"
fan_enter "$0" "$daemon" "$ctl" "$top"

work=$(mktemp -d /tmp/blobd-fan-XXXXXX)
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null
    fi
    unmount_under "$work"
    rm -rf "$work"
}
trap cleanup EXIT

stat_of() {  # stat_of PYTHON-EXPR over the stats JSON `s`
    "$ctl" --socket "$work/ctl.sock" --raw stats | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"
}

# ---- fixtures ----
rnd() { head -c "$2" /dev/urandom >"$1"; }
t1=$work/src/tree1
mkdir -p "$t1/bin" "$t1/lib/x" "$t1/share"
rnd "$t1/bin/tool" $((2 * 1024 * 1024 + 4096 * 3 + 5))
rnd "$t1/lib/libbig.so" $((5 * 1024 * 1024 + 333))
rnd "$t1/lib/x/data" 65536
printf 'shared config\n' >"$t1/share/config"
for i in $(seq 1 20); do rnd "$t1/share/f$i" $((i * 997)); done
rnd "$t1/share/odd" 123457
ln -s ../lib/libbig.so "$t1/bin/link"
cp -a "$t1" "$work/src/tree2"
mkdir -p "$work/src/tree2/only-in-2"
printf '' >"$work/src/tree2/only-in-2/empty"
t5=$work/src/tree5; mkdir -p "$t5"; rnd "$t5/victim" $((3 * 1024 * 1024))
t9=$work/src/tree9; mkdir -p "$t9"; rnd "$t9/unreachable" 100000
blobs=$work/blobs
mk=$top/scripts/mkblobimg
"$mk" --quiet --out "$blobs" --chunk-size 1048576 --blob blob1 --image img1="$t1" --image img2="$work/src/tree2" || { echo "mkblobimg failed"; exit 1; }
"$mk" --quiet --out "$blobs" --chunk-size 1048576 --blob blob5 --image img5="$t5" || exit 1
"$mk" --quiet --out "$blobs" --blob blob9 --image img9="$t9" || exit 1
rm "$blobs/blob9"
mkdir -p "$work/cache"

cat >"$work/config.json" <<JSON
{"cache": {"dir": "$work/cache"}, "frontend": "fanotify",
 "sources": [{"type": "local", "path": "$blobs"}],
 "control_socket": "$work/ctl.sock", "chunk_size": 1048576, "read_deadline_ms": 5000}
JSON

start_daemon "$work/config.json" "$work/ctl.sock" "$work/daemon.log"


# ---- 0. the daemon kept only CAP_SYS_ADMIN (bit 21: fanotify_init, mount) in every thread ----
caps_bad=0
for t in /proc/"$daemon_pid"/task/*; do
    for k in CapEff CapPrm CapBnd; do
        v=$(awk -v k="$k:" '$1 == k { print $2 }' "$t/status")
        [ $((16#$v)) = $((1 << 21)) ] || { echo "$k of thread ${t##*/}: $v"; caps_bad=1; }
    done
done
if [ $caps_bad = 0 ]; then pass "capabilities: only cap_sys_admin kept"; else fail "capabilities not dropped to cap_sys_admin"; fi

# ---- 1. mount, read everything, compare ----
mkdir -p "$work/mnt1" "$work/mnt2" "$work/mnt3" "$work/mnt5" "$work/mnt9"
if "$ctl" --socket "$work/ctl.sock" mount --domain d1 img1 "$work/mnt1"; then pass "mount img1"; else fail "mount img1"; fi
if mounted "$work/mnt1"; then pass "img1 is mounted"; else fail "img1 not in /proc/self/mounts"; fi
if same_tree "$t1" "$work/mnt1"; then pass "img1 identical to its tree"; else fail "img1 content differs"; fi
events=$(stat_of 's["fanotify"]["events"]')
fetched=$(stat_of 's["bytes_fetched"]')
if [ "$events" -gt 0 ]; then pass "fanotify events: $events"; else fail "no fanotify events counted"; fi
if [ "$fetched" -gt 0 ]; then pass "bytes fetched: $fetched"; else fail "no bytes fetched"; fi
if "$ctl" --socket "$work/ctl.sock" mount --domain d1 img1 "$work/mnt1" 2>"$work/err"; then
    fail "a second mount at the same mountpoint succeeded"
elif grep -q "already has img1" "$work/err"; then pass "mount at a busy mountpoint refused: $(cat "$work/err")"
else fail "unexpected error for a busy mountpoint: $(cat "$work/err")"; fi

# ---- 2. a second image sharing blob1 in domain d1: the blob is read from the source once ----
if "$ctl" --socket "$work/ctl.sock" mount --domain d1 img2 "$work/mnt2"; then pass "mount img2"; else fail "mount img2"; fi
if same_tree "$work/src/tree2" "$work/mnt2"; then pass "img2 identical to its tree"; else fail "img2 content differs"; fi
src_bytes=$(stat_of 's["sources"][0]["bytes"]')
want=$(( $(stat -c %s "$blobs/img1") + $(stat -c %s "$blobs/img2") + $(stat -c %s "$blobs/blob1") ))
if [ "$src_bytes" = "$want" ]; then pass "source read $src_bytes bytes = both bootstraps + blob1 once"
else fail "source read $src_bytes bytes, expected $want (blob1 once)"; fi
ncache=$(find "$work/cache/fanotify/d1/blobs" -type f | wc -l)
if [ "$ncache" = 1 ]; then pass "one cache file for blob1 in domain d1"; else fail "$ncache cache files in d1"; fi

# ---- 3. 16 concurrent readers on a fresh (cold) mount of img1 in another domain ----
if "$ctl" --socket "$work/ctl.sock" mount --domain d3 img1 "$work/mnt3"; then pass "mount img1 in d3"; else fail "mount img1 in d3"; fi
pids=()
for i in $(seq 1 16); do
    case $((i % 4)) in
        0) f=lib/libbig.so ;; 1) f=bin/tool ;; 2) f=share/odd ;; 3) f=lib/x/data ;;
    esac
    ( timeout 60 cmp "$t1/$f" "$work/mnt3/$f" ) &
    pids+=($!)
done
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
if [ "$bad" = 0 ]; then pass "16 concurrent readers got identical bytes"; else fail "$bad of 16 concurrent readers failed"; fi

# ---- 4. a missing blob: a clear error, nothing mounted, nothing left behind ----
if "$ctl" --socket "$work/ctl.sock" mount img9 "$work/mnt9" 2>"$work/err"; then fail "mount of img9 (blob missing) succeeded"
elif grep -q "blob9" "$work/err" && grep -qi "no such file" "$work/err"; then pass "missing blob: $(cat "$work/err")"
else fail "unclear error for a missing blob: $(cat "$work/err")"; fi
if mounted "$work/mnt9"; then fail "img9 left mounted"; else pass "img9 not mounted"; fi
left=$(find "$work/cache/fanotify/img9" -type f 2>/dev/null | wc -l)
if [ "$left" = 0 ]; then pass "nothing left in the cache for img9"; else fail "$left files left for img9"; fi
if "$ctl" --socket "$work/ctl.sock" mount img-nope "$work/mnt9" 2>"$work/err"; then fail "mount of a missing bootstrap succeeded"
elif grep -q "bootstrap img-nope" "$work/err"; then pass "missing bootstrap: $(cat "$work/err")"
else fail "unclear error for a missing bootstrap: $(cat "$work/err")"; fi
if "$ctl" --socket "$work/ctl.sock" mount 'a,b' "$work/mnt9" 2>"$work/err"; then fail "fsid with ',' accepted"
else pass "bad fsid refused: $(cat "$work/err")"; fi

# ---- 5. a blob shrunk in the source after mounting: EIO, never a hang ----
if "$ctl" --socket "$work/ctl.sock" mount img5 "$work/mnt5"; then pass "mount img5"; else fail "mount img5"; fi
truncate -s 1048576 "$blobs/blob5"
timeout 30 cat "$work/mnt5/victim" >/dev/null 2>"$work/err"
rc=$?
if [ "$rc" = 124 ]; then fail "reader of a shrunk blob hung (timeout)"
elif [ "$rc" != 0 ] && grep -q "Input/output error" "$work/err"; then pass "shrunk blob: reader got EIO ($(cat "$work/err"))"
else fail "shrunk blob: cat exited $rc: $(cat "$work/err")"; fi
denied=$(stat_of 's["fanotify"]["events_denied"]')
if [ "$denied" -gt 0 ]; then pass "events denied: $denied"; else fail "no denied events counted"; fi

# ---- 6. umount ----
for m in mnt2 mnt3 mnt5; do
    if "$ctl" --socket "$work/ctl.sock" umount "$work/$m"; then pass "umount $m"; else fail "umount $m"; fi
    if mounted "$work/$m"; then fail "$m still mounted"; fi
done
if "$ctl" --socket "$work/ctl.sock" umount "$work/mnt2" 2>"$work/err"; then fail "umount of nothing succeeded"
else pass "umount of nothing: $(cat "$work/err")"; fi
# blob1 of d1 is still used by img1 at mnt1; d3's and img5's are gone.
if [ -e "$work/cache/fanotify/d1/blobs/blob1" ]; then pass "d1/blob1 kept while img1 uses it"; else fail "d1/blob1 removed too early"; fi
if [ -e "$work/cache/fanotify/d3/blobs/blob1" ]; then fail "d3/blob1 left after its last umount"; else pass "d3/blob1 released"; fi
if same_tree "$t1" "$work/mnt1"; then pass "img1 still identical"; else fail "img1 differs after the other umounts"; fi

# ---- 7. stop with img1 still mounted: the daemon unmounts it, exits 0 ----
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
daemon_pid=
if [ "$rc" = 0 ]; then pass "daemon stopped, exit 0"; else fail "daemon exit $rc"; fi
if mounted "$work/mnt1"; then fail "mnt1 still mounted after the daemon stopped"; else pass "stop unmounted mnt1"; fi
if awk -v w="$work" '$2 ~ "^"w { f = 1 } END { exit !f }' /proc/self/mounts; then fail "mounts left under $work"
else pass "nothing mounted under the work dir"; fi

if grep -q "ERROR\|<3>" "$work/daemon.log"; then echo "--- daemon errors (expected ones: img9, img-nope, a,b, blob5):"; grep "<3>" "$work/daemon.log" | head -20; fi
if [ "$failures" != 0 ]; then
    echo "--- daemon log:"; tail -50 "$work/daemon.log"
    echo "fanotify tests: $failures FAILED"; exit 1
fi
echo "fanotify tests: all passed"
