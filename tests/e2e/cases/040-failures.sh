#!/bin/bash
# Description: failures reach the reader as errors, never hangs, and the daemon keeps serving:
# a missing blob fails the mount; a hostile fsid ("../x") is refused; a blob that shrinks under the
# daemon gives the reader EIO; a read right after fails at once without a fetch (the negative
# cache, failure_ttl_ms); once the blob is back and that time is over, the same file reads
# correctly; later correct mounts work.
# Sabotage (BLOBD_E2E_SABOTAGE=NAME; tests/e2e/selftest-checks.sh runs each and wants the FAIL):
#   hang-mount      daemon stopped before the img9 mount          -> mount of img9 hung
#   serve-missing   blob9 put into the source                     -> reading data of a missing blob succeeded
#   hang-reader     blob9 put in, daemon stopped before the read  -> reading data of a missing blob hung
#   hang-hostile    daemon stopped before the fsid=../x mount     -> mount with fsid=../x hung
#   keep-blob5      blob5 not truncated                           -> reading a truncated blob succeeded
#   hang-truncated  daemon stopped before the truncated read      -> reading a truncated blob hung
. "$(dirname "$0")/../lib.sh"
# A negative cache long enough that a slow guest's next read still falls in it (4 s).
EXTRA_CONFIG='"failure_ttl_ms": 4000'
start_daemon

step "img9 needs blob9, which no source has: reading its data fails, without hanging"
mkdir -p /run/mnt/x
if sabotage serve-missing || sabotage hang-reader; then cp "$E2E_DATA/absent/blob9" "$BLOBS/"; fi
sabotage hang-mount && pause_daemon
# 6.1 mounts the image even though the blob's OPEN was refused (the device cookie is acquired
# asynchronously); the failure surfaces when a file's data is read.
rc=0
run_limited "$HANG_S" mount -t erofs none -o fsid=img9,domain_id=d1 /run/mnt/x 2>/run/mount.err || rc=$?
case $rc in
    124) fail "mount of img9 hung (still running after ${HANG_S}s)" ;;
    0)
        echo "info: mount succeeded; reading"
        if sabotage hang-reader; then
            # the blob's OPEN comes asynchronously: wait for it, so that only the READ meets the stop
            for _ in $(seq 1 100); do [ "$(stat opens)" -ge 2 ] && break; sleep 0.1; done
            pause_daemon
        fi
        expect_fails_in "$HANG_S" "reading data of a missing blob" -- cat /run/mnt/x/unreachable
        umount /run/mnt/x || fail "umount of img9"
        ;;
    *) echo "ok: mount failed (exit $rc): $(cat /run/mount.err)" ;;
esac
[ "$(stat open_failures)" -ge 1 ] || fail "the refused OPEN was not counted"

step "a hostile fsid in a domain reaches the daemon as cookie \"../x\" and is refused"
# (Without domain_id the volume key itself would hold "../x" and cachefiles refuses it first.)
sabotage hang-hostile && pause_daemon
expect_fails_in "$HANG_S" "mount with fsid=../x" -- mount -t erofs none -o fsid=../x,domain_id=dx /run/mnt/x
grep -qF 'cookie name "../x"' "$DAEMON_LOG" || fail "no log line names the refused cookie \"../x\""

step "img5 mounts; then blob5 shrinks in the source: reading gives EIO, not a hang"
mount_erofs /run/mnt/v fsid=img5,domain_id=d5
cp "$BLOBS/blob5" /run/blob5.good
sabotage keep-blob5 || truncate -s 1048576 "$BLOBS/blob5"
sabotage hang-truncated && pause_daemon
expect_fails_in "$HANG_S" "reading a truncated blob" -- cat /run/mnt/v/victim
grep -q 'Input/output error' "$CMD_ERR" || fail "expected EIO, got: $(cat "$CMD_ERR")"
[ "$(stat fetch_errors)" -ge 1 ] || fail "fetch_errors not counted"

step "blob5 restored: within failure_ttl_ms a read still fails at once, without a fetch"
cp /run/blob5.good "$BLOBS/blob5"
fetches=$(stat chunks_fetched); fast=$(stat failed_fast)
expect_fails_in 5 "reading the file again at once" -- cat /run/mnt/v/victim
[ "$(stat failed_fast)" -gt "$fast" ] || fail "the retry was not answered by the negative cache"
[ "$(stat chunks_fetched)" = "$fetches" ] || fail "the retry fetched again within failure_ttl_ms"

step "failure_ttl_ms over: the same file now reads correctly"
sleep 4.5
same_tree "$E2E_DATA/src/tree5" /run/mnt/v
umount /run/mnt/v

step "a correct mount still works"
mount_erofs /run/mnt/a fsid=img1,domain_id=d1
same_tree "$E2E_DATA/src/tree1" /run/mnt/a
umount /run/mnt/a
stop_daemon
