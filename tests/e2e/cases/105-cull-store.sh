#!/usr/bin/env bash
# Description: one space keeper for the cache files and the blob store, in one eviction order. The
# cache disk is 96 MiB of ext4 and holds the blob store too ("store.enabled": true, so the local
# source's blobs are stored); every image read writes 14 MiB into its cache file and 14 MiB into
# the store, with brun/bcull/bstop 40/35/3 %:
#   - space2 is read and unmounted: its blob is now in a cache file and in the store;
#   - space3 is read: the disk runs short near the end of its fetch, and what goes is space2's store
#     copy (a cache file holds the same blob: tier 0), which is enough: space2's cache files stay,
#     although they are older; nothing in use (space3's own files) goes;
#   - space4 in another domain: space3's store copy goes next, then cache files, least recently
#     used first; reads stay byte for byte right; the counters match the store files that went.
# Disk-size: 96M
. "$(dirname "$0")/../lib.sh"
SPACE=$E2E_DATA/space
TREE=$E2E_DATA/src/space
STORE=$BLOBD_CACHE_MNT/store
write_config() {
    cat >"$CONF" <<JSON
{"cache": {"dir": "$CACHE_DIR", "tag": "e2e", "brun": 40, "bcull": 35, "bstop": 3, "check_interval_ms": 500},
 "store": {"enabled": true, "dir": "$STORE", "verify": false},
 "sources": [{"type": "local", "path": "$SPACE"}],
 "control_socket": "$SOCK", "log_level": "info"}
JSON
}
space() { "$E2E_BIN/erofs-blobctl" --socket "$SOCK" stats --get "space.$1"; }
total_blocks() { command stat -f -c %b "$BLOBD_CACHE_MNT"; }
free_blocks() { command stat -f -c %a "$BLOBD_CACHE_MNT"; }
pct_free() { echo $(($(free_blocks) * 100 / $(total_blocks))); }
bstop_blocks=$(($(total_blocks) * 3 / 100))
above_bstop() {
    [ "$(free_blocks)" -ge "$bstop_blocks" ] || fail "$1: free space $(free_blocks) blocks, below bstop ($bstop_blocks)"
    echo "ok: $1: $(pct_free) % free ($(free_blocks) blocks, bstop $bstop_blocks)"
}
store_has() { find "$STORE" -type f -name "$1" | grep -q .; }
cache_has() { find "$CACHE_DIR/cache" -type f -name "D$1" | grep -q .; }

start_daemon
step "space2: read and unmounted; its blob is in a cache file and in the store"
mount_erofs /run/mnt/s fsid=space2,domain_id=sp
same_tree "$TREE" /run/mnt/s
umount /run/mnt/s
wait_until 10 "space2's blob file is linked into the cache" cache_has spaceblob2
store_has spaceblob2 || fail "space2's blob is not in the store"
above_bstop "after space2"
expect_eq "nothing culled yet" "$(space culled_objects)/$(space store_culled_files)" "0/0"

step "space3: the store copy of space2's blob goes first, not space2's older cache files"
mount_erofs /run/mnt/s fsid=space3,domain_id=sp
same_tree "$TREE" /run/mnt/s
above_bstop "after reading space3"
[ "$(space store_culled_files)" -ge 1 ] || fail "no store file was culled (store_culled_files $(space store_culled_files))"
if store_has spaceblob2; then fail "space2's store copy is still there"; fi
cache_has spaceblob2 || fail "space2's cache file was culled before its store copy (tier 0) was enough"
expect_eq "cache files culled while space3 is read" "$(space culled_objects)" 0
store_has spaceblob3 || fail "space3's store file (in use) went"
umount /run/mnt/s

step "space4 in another domain: space3's store copy next, then the least recently used cache files"
mount_erofs /run/mnt/s fsid=space4,domain_id=sp2
same_tree "$TREE" /run/mnt/s
above_bstop "after reading space4"
umount /run/mnt/s
if store_has spaceblob3; then fail "space3's store copy (tier 0) is still there"; fi
# The order, from the daemon's log: the tier-0 store copy went before the first cache file.
store3_at=$(grep -n 'spaceblob3: deleted from the blob store' "$DAEMON_LOG" | head -n1 | cut -d: -f1)
cache_at=$(grep -n 'space: culled [0-9]* cache files' "$DAEMON_LOG" | head -n1 | cut -d: -f1)
[ -n "$store3_at" ] || fail "the log does not say space3's store copy was deleted"
if [ -n "$cache_at" ] && [ "$cache_at" -lt "$store3_at" ]; then
    fail "a cache file was culled (log line $cache_at) before space3's store copy (line $store3_at)"
fi
echo "ok: store copy deleted at log line $store3_at, first cache cull at line ${cache_at:-none}"
expect_eq "reads failed" "$(stat reads_failed)" 0
expect_eq "cache writes refused for space" "$(stat nospace_writes)" 0
# Every store file that went was counted: of the six (bootstrap and blob of space2..4), those not
# there any more.
left=$(find "$STORE" -type f | wc -l)
expect_eq "store files culled = store files that went" "$(space store_culled_files)" $((6 - left))
expect_eq "cull errors" "$(space errors)" 0
stop_daemon
