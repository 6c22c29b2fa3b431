#!/bin/bash
# Description: cross-domain dedup on the real kernel. Two different images sharing one data blob named
# by its sha256 are mounted with DIFFERENT domain_ids, so the kernel opens the blob twice (two cookies,
# two cache files). With the blob store on, the source's blob bytes are read once: the second domain's
# READs are store hits; the blob is verified; both mounts show their trees byte for byte.
. "$(dirname "$0")/../lib.sh"
EXTRA_CONFIG='"store": {"enabled": true}'   # the source here is local, which bypasses it by default
start_daemon
digest=$(cat "$E2E_DATA/digest-blob")
img7=$(size_of img7) img8=$(size_of img8) blob=$(size_of "$digest")
[ -n "$blob" ] || fail "fixture blob $digest missing"
expect_eq "store enabled" "$(stat store.enabled)" true

step "mount img7 in domain dA, read everything"
mount_erofs /run/mnt/a fsid=img7,domain_id=dA
same_tree "$E2E_DATA/src/tree1" /run/mnt/a
expect_eq "source bytes after dA (img7 + blob)" "$(source_bytes)" $((img7 + blob))
expect_eq "store hits after dA" "$(stat store.hits)" 0

step "mount img8 in domain dB: its own blob cookie and cache file, bytes from the store"
mount_erofs /run/mnt/b fsid=img8,domain_id=dB
expect_eq "opens (img7, blob in dA; img8, blob in dB)" "$(stat opens)" 4
same_tree "$E2E_DATA/src/tree2" /run/mnt/b
expect_eq "source bytes after dB (img8 only: the blob came from the store)" "$(source_bytes)" \
    $((img7 + blob + img8))
expect_eq "store bytes saved (the whole blob)" "$(stat store.bytes_saved)" "$blob"
expect_eq "bytes into cache files (both blob copies)" "$(stat bytes_fetched)" $((img7 + img8 + 2 * blob))
expect_eq "upstream bytes" "$(stat upstream_bytes)" $((img7 + blob + img8))
for _ in $(seq 1 50); do [ "$(stat store.verified)" = 1 ] && break; sleep 0.1; done
expect_eq "blob verified" "$(stat store.verified)" 1
expect_eq "integrity failures" "$(stat store.integrity_failures)" 0
expect_eq "store errors" "$(stat store.store_errors)" 0
expect_eq "reads failed" "$(stat reads_failed)" 0
expect_eq "stored blob size" "$(wc -c <"$CACHE_DIR/blobd-store/sha256/$digest" 2>/dev/null || true)" "$blob"
cmp -s "$CACHE_DIR/blobd-store/sha256/$digest" "$E2E_DATA/blobs/$digest" || fail "stored blob differs from the source"
echo "ok: stored blob equals the source's"

step "umount, stop"
umount /run/mnt/a /run/mnt/b
sleep 0.3
expect_eq "objects open" "$(stat objects_open)" 0
stop_daemon
