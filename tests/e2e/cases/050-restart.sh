#!/bin/bash
# Description: the daemon is stopped (SIGTERM, exit 0) and a new one started on the same cache dir:
# data cached by the first is served to a new mount without fetching it again.
. "$(dirname "$0")/../lib.sh"
start_daemon
mount_erofs /run/mnt/a fsid=img1,domain_id=d1
same_tree "$E2E_DATA/src/tree1" /run/mnt/a
first=$(stat bytes_fetched)
umount /run/mnt/a
stop_daemon
echo "ok: first daemon fetched $first bytes and stopped cleanly"

step "second daemon, same cache dir"
start_daemon
mount_erofs /run/mnt/a fsid=img1,domain_id=d1
same_tree "$E2E_DATA/src/tree1" /run/mnt/a
expect_eq "opens" "$(stat opens)" 2
expect_eq "bytes fetched by the second daemon" "$(stat bytes_fetched)" 0
umount /run/mnt/a
stop_daemon
