#!/bin/bash
# Description: two different images sharing blob1, mounted with the same domain_id: both read
# correctly and every blob byte is fetched from the source once; a third mount in another domain is
# independent (its own object, its own fetch); umount closes every object and releases its fd.
. "$(dirname "$0")/../lib.sh"
start_daemon
base_fds=$(daemon_fd_count)
img1=$(size_of img1) img2=$(size_of img2) blob=$(size_of blob1)

step "mount img1 and img2 in domain d1"
mount_erofs /run/mnt/a fsid=img1,domain_id=d1
mount_erofs /run/mnt/b fsid=img2,domain_id=d1
expect_eq "opens (img1, blob1 once, img2)" "$(stat opens)" 3
expect_eq "blobs known" "$(stat blobs)" 3

step "read everything through mount a"
same_tree "$E2E_DATA/src/tree1" /run/mnt/a
after_a=$(stat bytes_fetched)
expect_eq "fetched after a (img1 + img2 + blob1)" "$after_a" $((img1 + img2 + blob))

step "read everything through mount b: served from the shared cache file"
same_tree "$E2E_DATA/src/tree2" /run/mnt/b
expect_eq "fetched after b" "$(stat bytes_fetched)" "$after_a"
expect_eq "bytes read from the source dir" "$(source_bytes)" "$after_a"

step "img1 again in domain d2: independent objects and fetches"
mount_erofs /run/mnt/c fsid=img1,domain_id=d2
expect_eq "opens" "$(stat opens)" 5
same_tree "$E2E_DATA/src/tree1" /run/mnt/c
expect_eq "fetched after c" "$(stat bytes_fetched)" $((after_a + img1 + blob))
expect_eq "reads failed" "$(stat reads_failed)" 0

step "umount all: every object closed, fds released"
umount /run/mnt/a /run/mnt/b /run/mnt/c
sleep 0.3
expect_eq "closes" "$(stat closes)" 5
expect_eq "objects open" "$(stat objects_open)" 0
expect_eq "daemon fds back to baseline" "$(daemon_fd_count)" "$base_fds"
# cachefiles keeps objects as unlinked tmpfiles while in use and links them in when released.
expect_eq "cache files (img1, img2, blob1 in d1; img1, blob1 in d2)" "$(find "$CACHE_DIR" -type f | wc -l)" 5
stop_daemon
