#!/bin/bash
# Description: the control socket opened to a group (control_socket_group), with the daemon
# checking each peer's uid (SO_PEERCRED): a real second uid (nobody, via setpriv) in that group
# runs status/domains/blobs, and its cull is refused (exit 3, "cull needs root: peer uid 65534")
# before it runs; nobody outside the group cannot connect at all (exit 3, "permission denied on");
# root's cull passes the check and culls the unmounted image's cache file.
# With the image mounted, status shows its domain with one blob and one open object, and blobs
# shows the blob's size and the bytes read into its cache file.
. "$(dirname "$0")/../lib.sh"
EXTRA_CONFIG='"control_socket_group": "nogroup"'
start_daemon
ctl() { "$E2E_BIN/erofs-blobctl" --socket "$SOCK" "$@"; }
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$E2E_BIN/erofs-blobctl" --socket "$SOCK" "$@"; }

step "the socket: 0660, group nogroup; its directory searchable by the group"
expect_eq "socket mode" "$(command stat -c '%a %G' "$SOCK")" "660 nogroup"
perm=$(command stat -c '%A' "$(dirname "$SOCK")")
[ "${perm:6:1}" = x ] || [ "${perm:9:1}" = x ] || fail "$(dirname "$SOCK") ($perm): the group cannot enter it"

step "mount fsid=p1, read it"
mount_erofs /run/mnt/p1 fsid=p1
same_tree "$E2E_DATA/src/plain" /run/mnt/p1

step "status and blobs as root"
out=$(ctl status) || fail "status failed"
echo "$out"
grep -qE '^frontend: +cachefiles$' <<<"$out" || fail "status lacks the frontend"
grep -qE "^cache dir: +$CACHE_DIR\$" <<<"$out" || fail "status lacks the cache dir"
grep -qE '^  p1 +1 +1 ' <<<"$out" || fail "status lacks domain p1 with 1 blob and 1 open object"
grep -qE '^  local:/run/blobs +ok ' <<<"$out" || fail "status lacks the healthy local source"
expect_eq "blobs: p1's size" "$(ctl --json blobs p1 | sed -n 's/.*"blob":"p1","size":\([0-9]*\).*/\1/p')" "$(size_of p1)"
cached=$(ctl --json blobs p1 | sed -n 's/.*"cached_bytes":\([0-9]*\).*/\1/p')
[ "${cached:-0}" -gt 0 ] || fail "blobs: no cached bytes for p1 after reading it"
echo "ok: p1: $cached bytes cached"
expect_eq "blobs of another domain" "$(ctl --json blobs nosuch)" '{"ok":true,"blobs":[]}'

step "as nobody in the group: read-only commands work"
out=$(as_nobody status) || fail "status as nobody failed: $out"
grep -qE '^  p1 +1 +1 ' <<<"$out" || fail "status as nobody lacks domain p1"
as_nobody domains | grep -qE '^p1 ' || fail "domains as nobody lacks p1"
as_nobody stats --get objects_open >/dev/null || fail "stats as nobody failed"

step "as nobody: cull is refused by the daemon, before it runs"
rc=0; out=$(as_nobody cull --domain p1 2>&1) || rc=$?
expect_eq "cull as nobody: exit" "$rc" 3
grep -q "permission denied: cull needs root: peer uid 65534" <<<"$out" || fail "cull as nobody said: $out"
grep -q "refused cull from uid 65534" "$DAEMON_LOG" || fail "the daemon did not log the refusal"
expect_eq "space busy after the refused cull (never ran)" "$(stat space.busy)" 0
rc=0; out=$(as_nobody umount /run/mnt/p1 2>&1) || rc=$?
expect_eq "umount as nobody: exit" "$rc" 3

step "outside the group: no connection"
rc=0; out=$(setpriv --reuid=nobody --regid=12345 --clear-groups "$E2E_BIN/erofs-blobctl" --socket "$SOCK" status 2>&1) || rc=$?
expect_eq "status outside the group: exit" "$rc" 3
grep -q "permission denied on $SOCK: run as root or as a member of control_socket_group" <<<"$out" || fail "said: $out"

step "root's cull passes the check and runs (after umount, the cache file is culled)"
umount /run/mnt/p1
sleep 0.3
rc=0; out=$(ctl cull --domain p1 2>&1) || rc=$?
expect_eq "cull as root: exit" "$rc" 0
grep -qE "^culled [1-9][0-9]* cache files" <<<"$out" || fail "cull as root said: $out"
stop_daemon
