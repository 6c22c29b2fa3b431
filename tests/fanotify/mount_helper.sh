#!/usr/bin/env bash
# Description: mount.erofs-blobd, mount(8)'s helper for `mount -t erofs-blobd`, and "frontend":
# "auto", on the host kernel (Linux >= 6.14 with pre-content events and file-backed erofs), as root:
#   - the daemon with "frontend": "auto" and a "device" that does not exist picks fanotify, logs
#     why (the cachefiles reason), and `erofs-blobctl status` shows the frontend in use; a reload
#     with "auto" again changes nothing, one to "cachefiles" is refused;
#   - "auto" with neither (no device, cache dir on tmpfs) exits 2 with one line naming both reasons;
#   - `mount -t erofs-blobd -o domain_id=D FSID DIR` through the real mount(8) (util-linux), with
#     the daemon on its default socket, every file compared byte for byte; an fstab line
#     (`mount -T FSTAB DIR`) with _netdev and x-systemd.* options; socket=; -f and -s;
#   - bad options (noexec, fsid=) and a missing bootstrap: a clear error, mount(8)'s exit code
#     (1, 32) and nothing mounted; explicit rw still gives a read-only mount.
#
#   tests/fanotify/mount_helper.sh DAEMON BLOBCTL MOUNT_HELPER SOURCE_DIR
#
# Runs itself in a private mount namespace (unshare --mount --propagation private). There, mount(8)
# finds the helper in /sbin through a read-only overlay of the helper's temp dir over /sbin's real
# directory, and /run is a fresh tmpfs (the daemon's default socket path, mount(8)'s utab): the
# host's /sbin and /run are never touched. Everything else (cache dir included) lives in a temp
# dir on ext4 under /tmp; the EXIT trap unmounts what is left. Exit 0: all passed; 1: a check
# failed; 77: skipped (not root, no mkfs.erofs, no overlayfs, or no kernel support), a failure
# instead when BLOBD_E2E_REQUIRED=1.
set -uo pipefail
daemon=$(realpath "${1:?usage: mount_helper.sh DAEMON BLOBCTL MOUNT_HELPER SOURCE_DIR}")
ctl=$(realpath "${2:?}")
helper=$(realpath "${3:?}")
top=$(realpath "${4:?}")

suite="mount helper tests"
. "$(dirname "$0")/lib.sh"
fan_enter "$0" "$daemon" "$ctl" "$helper" "$top"

work=$(mktemp -d /tmp/blobd-mnt-XXXXXX)
sbin=$(realpath /sbin)
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null
    fi
    unmount_under "$work"
    # Only in this namespace; it goes with it anyway.
    umount "$sbin" 2>/dev/null
    umount /run 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The mount options of the mount at $1 (the per-mount field of mountinfo) and its type.
mount_opts() { awk -v m="$1" '$5 == m { print $6 }' /proc/self/mountinfo; }
mount_type() { awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo; }
# expect NAME WANT_RC PATTERN -- CMD...: exit status and a line of the output (stdout + stderr).
expect() {
    local name=$1 want=$2 pat=$3; shift 4
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" != "$want" ]; then fail "$name: exit $rc, wanted $want: $out"
    elif ! grep -qE -- "$pat" <<<"$out"; then fail "$name: output lacks /$pat/: $out"
    else pass "$name: $(head -1 <<<"$out")"; fi
}

# ---- the helper where mount(8) looks: /sbin, in this namespace only ----
mkdir -p "$work/helper"
cp "$helper" "$work/helper/mount.erofs-blobd"
if ! mount -t overlay overlay -o "lowerdir=$work/helper:$sbin" "$sbin" 2>"$work/err"; then
    skip "cannot overlay $sbin: $(cat "$work/err")"
fi
[ -x /sbin/mount.erofs-blobd ] || { echo "FAIL: the overlay does not show /sbin/mount.erofs-blobd"; exit 1; }
mount -t tmpfs -o mode=0755 tmpfs /run || { echo "FAIL: cannot mount a tmpfs on /run in the namespace"; exit 1; }

# ---- fixtures ----
rnd() { head -c "$2" /dev/urandom >"$1"; }
t1=$work/src/tree1
mkdir -p "$t1/bin" "$t1/lib" "$t1/share"
rnd "$t1/bin/tool" $((2 * 1024 * 1024 + 4096 * 3 + 5))
rnd "$t1/lib/libbig.so" $((3 * 1024 * 1024 + 333))
for i in $(seq 1 10); do rnd "$t1/share/f$i" $((i * 997)); done
ln -s ../lib/libbig.so "$t1/bin/link"
cp -a "$t1" "$work/src/tree2"
mkdir -p "$work/src/tree2/only-in-2"; printf "" >"$work/src/tree2/only-in-2/empty"
blobs=$work/blobs
"$top/scripts/mkblobimg" --quiet --out "$blobs" --chunk-size 1048576 --blob blob1 \
    --image img1="$t1" --image img2="$work/src/tree2" || { echo "mkblobimg failed"; exit 1; }
mkdir -p "$work/cache" "$work/mnt1" "$work/mnt2" "$work/mnt3" "$work/mnt4"

# ---- 0. "auto" with neither frontend possible: exit 2, one line with both reasons ----
mkdir -p "$work/tmpfs"
mount -t tmpfs tmpfs "$work/tmpfs"
cat >"$work/neither.json" <<JSON
{"cache": {"dir": "$work/tmpfs"}, "frontend": "auto", "device": "$work/no-cachefiles",
 "sources": [{"type": "local", "path": "$blobs"}], "control_socket": "$work/neither.sock"}
JSON
timeout 30 "$daemon" --config "$work/neither.json" >"$work/neither.log" 2>&1
rc=$?
line=$(grep "frontend auto" "$work/neither.log")
if [ "$rc" = 2 ] && [ "$(wc -l <<<"$line")" = 1 ] && grep -q "cachefiles: cannot open $work/no-cachefiles" <<<"$line" &&
        grep -q "fanotify: cache dir $work/tmpfs is on tmpfs" <<<"$line"; then
    pass "auto, neither possible: exit 2: $line"
else
    fail "auto, neither possible: exit $rc: $(cat "$work/neither.log")"
fi
umount "$work/tmpfs"

# ---- 1. "auto" with no cachefiles device picks fanotify, on the default socket ----
cat >"$work/config.json" <<JSON
{"cache": {"dir": "$work/cache"}, "frontend": "auto", "device": "$work/no-cachefiles",
 "sources": [{"type": "local", "path": "$blobs"}], "chunk_size": 1048576}
JSON
"$daemon" --config "$work/config.json" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 100); do
    "$ctl" ping >/dev/null 2>&1 && break
    if ! kill -0 "$daemon_pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if ! "$ctl" ping >/dev/null 2>&1; then
    cat "$work/daemon.log"
    if grep -q "neither frontend can run here" "$work/daemon.log"; then skip "no fanotify here: $(grep "frontend auto" "$work/daemon.log")"; fi
    echo "FAIL: the daemon did not start"; exit 1
fi
if grep -q "frontend auto: fanotify (its probe passed; cachefiles: cannot open $work/no-cachefiles" "$work/daemon.log"; then
    pass "auto chose fanotify, and the log says why: $(grep -o 'frontend auto: .*' "$work/daemon.log")"
else
    fail "no 'frontend auto: fanotify' line in the log: $(head -5 "$work/daemon.log")"
fi
if "$ctl" status | grep -Eq '^frontend: +fanotify$'; then pass "status shows the frontend in use: fanotify"
else fail "status: $("$ctl" status | head -4)"; fi
if [ "$("$ctl" --get frontend status)" = fanotify ]; then pass "status JSON: frontend fanotify"; else fail "status JSON frontend: $("$ctl" --get frontend status)"; fi

# The running config holds the resolved name: a reload of the same "auto" changes nothing, one
# that names another frontend is refused.
expect "reload with \"auto\" again" 0 "reloaded: nothing changed" -- "$ctl" reload
sed -i 's/"frontend": "auto"/"frontend": "cachefiles"/' "$work/config.json"
expect "reload to \"cachefiles\" refused" 1 "frontend" -- "$ctl" reload
sed -i 's/"frontend": "cachefiles"/"frontend": "auto"/' "$work/config.json"

# ---- 2. mount -t erofs-blobd -o domain_id=D FSID DIR ----
expect "mount.erofs-blobd --help" 0 "domain_id=D" -- /sbin/mount.erofs-blobd --help
expect "mount -t erofs-blobd -o domain_id=d1 img1" 0 "" -- mount -t erofs-blobd -o domain_id=d1 img1 "$work/mnt1"
if mounted "$work/mnt1"; then pass "img1 is mounted"; else fail "img1 not in /proc/self/mounts"; fi
if [ "$(mount_type "$work/mnt1")" = erofs ]; then pass "mountinfo type: erofs"; else fail "mountinfo type: $(mount_type "$work/mnt1")"; fi
case ",$(mount_opts "$work/mnt1")," in
    *,ro,*) pass "read-only, although mount(8) passed rw: $(mount_opts "$work/mnt1")" ;;
    *) fail "not read-only: $(mount_opts "$work/mnt1")" ;;
esac
if same_tree "$t1" "$work/mnt1"; then pass "img1 identical to its tree"; else fail "img1 content differs"; fi
if [ -d "$work/cache/fanotify/d1/blobs" ]; then pass "domain_id=d1 reached the daemon"; else fail "no cache files of domain d1"; fi

# ---- 3. an fstab line: mount -T FSTAB DIR ----
printf 'img2 %s erofs-blobd domain_id=d1,noauto,_netdev,nofail,x-systemd.requires=erofs-blobd.service 0 0\n' \
    "$work/mnt2" >"$work/fstab"
expect "fstab line, mount -T FSTAB DIR" 0 "" -- mount -T "$work/fstab" "$work/mnt2"
if mounted "$work/mnt2" && same_tree "$work/src/tree2" "$work/mnt2"; then pass "img2 from fstab identical to its tree"
else fail "img2 from fstab not mounted or different"; fi
n=$(find "$work/cache/fanotify/d1/blobs" -type f | wc -l)
if [ "$n" = 1 ]; then pass "img1 and img2 share blob1's cache file in d1"; else fail "$n cache files in d1"; fi

# ---- 4. bad options, bad sources: a clear error, mount(8)'s exit code, nothing mounted ----
expect "unknown option noexec" 1 "unknown mount option 'noexec'" -- \
    mount -t erofs-blobd -o domain_id=d3,noexec img1 "$work/mnt3"
expect "several unknown options, each named" 1 "unknown mount options 'sync', 'fsid=img1'" -- \
    mount -t erofs-blobd -o sync,fsid=img1 img1 "$work/mnt3"
expect "a missing bootstrap" 32 "bootstrap img-nope" -- mount -t erofs-blobd img-nope "$work/mnt3"
expect "socket= naming no daemon" 32 "no daemon socket at $work/none.sock" -- \
    mount -t erofs-blobd -o socket="$work/none.sock" img1 "$work/mnt3"
expect "a mount point that is taken" 32 "already has img1" -- mount -t erofs-blobd -o domain_id=d1 img1 "$work/mnt1"
if mounted "$work/mnt3"; then fail "something got mounted at mnt3"; else pass "nothing mounted at mnt3"; fi
if [ -e "$work/cache/fanotify/d3" ] && [ -n "$(find "$work/cache/fanotify/d3" -type f)" ]; then
    fail "files left for d3: $(find "$work/cache/fanotify/d3" -type f)"
else pass "nothing left in the cache for the refused mounts"; fi

# ---- 5. -f, -s, socket=, explicit rw ----
expect "mount -f (fake)" 0 "" -- mount -f -t erofs-blobd -o domain_id=d3 img1 "$work/mnt3"
if mounted "$work/mnt3"; then fail "-f mounted"; else pass "-f mounted nothing"; fi
ln -s /run/erofs-blobd/control.sock "$work/link.sock"
expect "-s: noexec ignored with a warning; socket=, explicit rw" 0 "ignoring the unknown option 'noexec'" -- \
    mount -s -t erofs-blobd -o rw,noexec,domain_id=d3,socket="$work/link.sock" img1 "$work/mnt3"
case ",$(mount_opts "$work/mnt3")," in
    *,ro,*) pass "explicit rw: mounted read-only ($(mount_opts "$work/mnt3"))" ;;
    *) fail "explicit rw: $(mount_opts "$work/mnt3")" ;;
esac
if mounted "$work/mnt3" && cmp -s "$t1/lib/libbig.so" "$work/mnt3/lib/libbig.so"; then pass "img1 in d3 via socket= reads right"
else fail "img1 in d3 not mounted or different"; fi

# ---- 6. unmount with erofs-blobctl, then stop: nothing left ----
for m in mnt1 mnt2 mnt3; do
    if "$ctl" umount "$work/$m"; then pass "erofs-blobctl umount $m"; else fail "erofs-blobctl umount $m"; fi
done
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
daemon_pid=
if [ "$rc" = 0 ]; then pass "daemon stopped, exit 0"; else fail "daemon exit $rc"; fi
if awk -v w="$work" '$2 ~ "^"w { f = 1 } END { exit !f }' /proc/self/mounts; then fail "mounts left under $work"
else pass "nothing mounted under the work dir"; fi

if [ "$failures" != 0 ]; then
    echo "--- daemon log:"; tail -40 "$work/daemon.log"
    echo "mount helper tests: $failures FAILED"; exit 1
fi
echo "mount helper tests: all passed"
