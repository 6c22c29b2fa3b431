#!/bin/bash
# Description: the space keeper keeps a small cache disk from filling. The cache disk is 48 MiB of
# ext4; six images (space1..space6, one 14 MiB data blob each, 84 MiB in all) are read in one
# domain with brun/bcull/bstop 30/25/5 %:
#   - space1 is mounted and read first and stays mounted: it is never culled (read again at the
#     end from its cache file, nothing fetched);
#   - space2..space6 are mounted, read byte for byte and unmounted one after another: the keeper
#     culls the least recently used closed ones in between; no read fails, free space is never
#     below bstop after an image, and the culled counters match the cache files that went;
#   - culling on request: `erofs-blobctl cull --blob` of a mounted image whose file is in the cache
#     is refused (exit 1, "in use"), succeeds once it is unmounted; `cull --domain` empties the domain;
#   - a restart on a full cache: with the daemon down the disk is filled below bcull (a file
#     outside the cache); the restarted daemon culls at once until above brun, and reads work.
# Sabotage (tests/e2e/selftest-checks.sh):
#   no-keeper   "cache.cull" false: a read fails once the disk is full (ENOBUFS below bstop)
# Disk-size: 48M
. "$(dirname "$0")/../lib.sh"
SPACE=$E2E_DATA/space
TREE=$E2E_DATA/src/space
CULL=true
sabotage no-keeper && CULL=false
write_config() {
    cat >"$CONF" <<JSON
{"cache": {"dir": "$CACHE_DIR", "tag": "e2e", "brun": 30, "bcull": 25, "bstop": 5,
           "cull": $CULL, "check_interval_ms": 500},
 "sources": [{"type": "local", "path": "$SPACE"}],
 "control_socket": "$SOCK", "log_level": "info"}
JSON
}
space() { "$E2E_BIN/erofs-blobctl" --socket "$SOCK" stats --get "space.$1"; }
blobctl() { "$E2E_BIN/erofs-blobctl" --socket "$SOCK" "$@"; }
total_blocks() { command stat -f -c %b "$BLOBD_CACHE_MNT"; }
free_blocks() { command stat -f -c %a "$BLOBD_CACHE_MNT"; }
pct_free() { echo $(($(free_blocks) * 100 / $(total_blocks))); }
cache_files() { find "$CACHE_DIR/cache" -type f | wc -l; }
# What the kernel's bstop is (fs/cachefiles/daemon.c: f_blocks * bstop / 100).
bstop_blocks=$(($(total_blocks) * 5 / 100))
above_bstop() {
    [ "$(free_blocks)" -ge "$bstop_blocks" ] || fail "$1: free space $(free_blocks) blocks, below bstop ($bstop_blocks)"
    echo "ok: $1: $(pct_free) % free ($(free_blocks) blocks, bstop $bstop_blocks)"
}
not_culling() { [ "$(space culling)" = 0 ]; }

start_daemon
step "space1: mounted, read, and held for the whole case"
mount_erofs /run/mnt/held fsid=space1,domain_id=sp
same_tree "$TREE" /run/mnt/held

step "space2..space6 one after another on a disk that holds less than three"
for n in 2 3 4 5 6; do
    mount_erofs /run/mnt/s fsid=space$n,domain_id=sp
    same_tree "$TREE" /run/mnt/s
    umount /run/mnt/s
    above_bstop "after space$n"
    echo "    culled so far: $(space culled_objects) files, $(space culled_bytes) bytes; cache files: $(cache_files)"
done
expect_eq "reads failed" "$(stat reads_failed)" 0
expect_eq "cache writes refused for space" "$(stat nospace_writes)" 0
[ "$(space culled_objects)" -ge 4 ] || fail "the keeper culled $(space culled_objects) files, expected 4 or more (two images)"
wait_until 30 "culling done (above brun again)" not_culling
[ "$(pct_free)" -ge 30 ] || fail "culling stopped at $(pct_free) % free, below brun (30 %)"
# Every closed image left two cache files (bootstrap and blob); space1's are still unlinked
# tmpfiles of the kernel while it is mounted. What is not there any more was culled by the keeper.
sleep 0.5
expect_eq "culled files = cache files that went" "$(space culled_objects)" $((10 - $(cache_files)))
expect_eq "cull errors" "$(space errors)" 0

step "the held image was never culled: read again from its cache file, nothing fetched"
fetched=$(stat bytes_fetched)
echo 3 >/proc/sys/vm/drop_caches
same_tree "$TREE" /run/mnt/held
expect_eq "bytes fetched for the second read of space1" "$(stat bytes_fetched)" "$fetched"

step "culling on request"
umount /run/mnt/held   # space1's files are linked into the cache now
blob1() { ls "$CACHE_DIR/cache/Ierofs,sp/"*/Dspaceblob1 >/dev/null 2>&1; }
wait_until 10 "space1's blob file is in the cache once unmounted" blob1
mount_erofs /run/mnt/held fsid=space1,domain_id=sp   # the kernel opens (holds) that file again
rc=0
blobctl cull --domain sp --blob spaceblob1 >/run/cull.out 2>&1 || rc=$?
cat /run/cull.out
[ "$rc" = 1 ] || fail "cull of a mounted image's blob exited $rc, expected 1"
grep -q "in use" /run/cull.out || fail "cull of a mounted image did not say it is in use"
blob1 || fail "the mounted image's blob was culled"
same_tree "$TREE" /run/mnt/held
umount /run/mnt/held
# The kernel lets go of the file shortly after the unmount.
wait_until 10 "cull of spaceblob1 once unmounted" blobctl cull --domain sp --blob spaceblob1
if blob1; then fail "spaceblob1 still has a cache file"; fi
blobctl cull --domain sp || fail "cull --domain sp failed"
expect_eq "cache files left in domain sp" "$(cache_files)" 0
expect_eq "reads failed" "$(stat reads_failed)" 0

step "restart on a full cache"
mount_erofs /run/mnt/s fsid=space2,domain_id=sp
same_tree "$TREE" /run/mnt/s
umount /run/mnt/s
stop_daemon
[ "$(cache_files)" -ge 2 ] || fail "expected space2 in the cache, found $(cache_files) files"
# Fill the disk outside the cache down to 20 % free, below bcull (25 %), above bstop (5 %).
fill=$(( ($(free_blocks) - $(total_blocks) * 20 / 100) * $(command stat -f -c %S "$BLOBD_CACHE_MNT") ))
[ "$fill" -gt 0 ] || fail "the cache disk is already below 20 % free ($(pct_free) %)"
head -c "$fill" /dev/zero >"$BLOBD_CACHE_MNT/filler"
sync
echo "    before the restart: $(pct_free) % free"
[ "$(pct_free)" -lt 25 ] || fail "precondition: the cache disk should be below bcull, is at $(pct_free) % free"
start_daemon
wait_until 30 "the restarted daemon culled (culled objects > 0)" test "$(space culled_objects)" -gt 0
wait_until 30 "culling done after the restart" not_culling
[ "$(pct_free)" -ge 30 ] || fail "after the restart culling stopped at $(pct_free) % free, below brun"
rm -f "$BLOBD_CACHE_MNT/filler"   # room for space3's files to stay after it is unmounted
mount_erofs /run/mnt/s fsid=space3,domain_id=sp
same_tree "$TREE" /run/mnt/s
umount /run/mnt/s
expect_eq "reads failed after the restart" "$(stat reads_failed)" 0
# Disk use per blob on request: what the files in the domain's volume take (once the kernel has
# linked space3's files in, a little after the umount).
space3_linked() { ls "$CACHE_DIR/cache/Ierofs,sp/"*/Dspaceblob3 >/dev/null 2>&1; }
wait_until 10 "space3's files are in the cache" space3_linked
on_disk=$(find "$CACHE_DIR/cache/Ierofs,sp" -type f -printf '%b\n' | awk '{ s += $1 * 512 } END { print s + 0 }')
expect_eq "usage --domain sp: bytes" "$(blobctl usage --domain sp --get cache_bytes)" "$on_disk"
expect_eq "usage --domain sp: files" "$(blobctl usage --domain sp --get cache_files)" "$(cache_files)"
blobctl usage --domain sp --raw | grep -q '"blob":"spaceblob3"' || fail "usage does not list spaceblob3"
domain_files=$("$E2E_BIN/erofs-blobctl" --socket "$SOCK" stats --raw |
    python3 -c 'import json, sys; print([d["cache_files"] for d in json.load(sys.stdin)["domains"] if d["domain"] == "sp"][0])')
expect_eq "stats: domains[sp].cache_files" "$domain_files" "$(cache_files)"
stop_daemon
