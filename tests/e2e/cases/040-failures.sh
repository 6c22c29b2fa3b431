#!/bin/bash
# Description: failures reach the reader as errors, never hangs, and the daemon keeps serving:
# a missing blob fails the mount; a hostile fsid ("../x") is refused; a blob that shrinks under the
# daemon gives the reader EIO; once the blob is back, the same file reads correctly; later correct
# mounts work.
. "$(dirname "$0")/../lib.sh"
start_daemon

step "img9 needs blob9, which no source has: reading its data fails, without hanging"
mkdir -p /run/mnt/x
# 6.1 mounts the image even though the blob's OPEN was refused (the device cookie is acquired
# asynchronously); the failure surfaces when a file's data is read.
if timeout 60 mount -t erofs none -o fsid=img9,domain_id=d1 /run/mnt/x 2>/run/mount.err; then
    echo "info: mount succeeded; reading"
    if timeout 60 cat /run/mnt/x/unreachable >/dev/null 2>/run/cat.err; then fail "read data of a missing blob"; fi
    rc=$?; [ $rc = 124 ] && fail "reader hung on a missing blob"
    echo "ok: reader got: $(cat /run/cat.err)"
    umount /run/mnt/x || fail "umount of img9"
else
    rc=$?; [ $rc = 124 ] && fail "mount of img9 hung"
    echo "ok: mount failed: $(cat /run/mount.err)"
fi
[ "$(stat open_failures)" -ge 1 ] || fail "the refused OPEN was not counted"

step "a hostile fsid in a domain reaches the daemon as cookie \"../x\" and is refused"
# (Without domain_id the volume key itself would hold "../x" and cachefiles refuses it first.)
if timeout 60 mount -t erofs none -o fsid=../x,domain_id=dx /run/mnt/x 2>/run/mount.err; then
    fail "mount with fsid=../x succeeded"
fi
[ $? = 124 ] && fail "mount with a hostile fsid hung"
echo "ok: refused: $(cat /run/mount.err)"
grep -q 'cookie name' "$DAEMON_LOG" || fail "no log line names the refused cookie"

step "img5 mounts; then blob5 shrinks in the source: reading gives EIO, not a hang"
mount_erofs /run/mnt/v fsid=img5,domain_id=d5
cp "$BLOBS/blob5" /run/blob5.good
truncate -s 1048576 "$BLOBS/blob5"
if timeout 60 cat /run/mnt/v/victim >/dev/null 2>/run/cat.err; then fail "reading a truncated blob succeeded"; fi
rc=$?; [ $rc = 124 ] && fail "reader hung on a failed fetch"
grep -q 'Input/output error' /run/cat.err || fail "expected EIO, got: $(cat /run/cat.err)"
echo "ok: reader got: $(cat /run/cat.err)"
[ "$(stat fetch_errors)" -ge 1 ] || fail "fetch_errors not counted"

step "blob5 restored: the same file now reads correctly"
cp /run/blob5.good "$BLOBS/blob5"
same_tree "$E2E_DATA/src/tree5" /run/mnt/v
umount /run/mnt/v

step "a correct mount still works"
mount_erofs /run/mnt/a fsid=img1,domain_id=d1
same_tree "$E2E_DATA/src/tree1" /run/mnt/a
umount /run/mnt/a
stop_daemon
