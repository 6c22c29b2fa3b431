#!/bin/bash
# Description: one plain image without domain_id: mount, read every file byte for byte, umount
# closes the object; the bound daemon has dropped every capability. The image size is not a block multiple (padded tail write).
. "$(dirname "$0")/../lib.sh"
start_daemon
# Bound: the daemon dropped every capability (daemon/capabilities.cpp), reads still work.
expect_caps "after bind"
base_fds=$(daemon_fd_count)
step "mount fsid=p1"
mount_erofs /run/mnt/p1 fsid=p1
expect_eq "opens after mount" "$(stat opens)" 1
same_tree "$E2E_DATA/src/plain" /run/mnt/p1
expect_eq "open failures" "$(stat open_failures)" 0
expect_eq "reads failed" "$(stat reads_failed)" 0
fetched=$(stat bytes_fetched)
[ "$fetched" -le "$(size_of p1)" ] || fail "fetched $fetched bytes of a $(size_of p1)-byte image"
step "umount"
umount /run/mnt/p1
sleep 0.3
expect_eq "closes" "$(stat closes)" 1
expect_eq "objects open" "$(stat objects_open)" 0
expect_eq "daemon fds back to baseline" "$(daemon_fd_count)" "$base_fds"
stop_daemon
