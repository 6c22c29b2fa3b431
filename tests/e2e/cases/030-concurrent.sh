#!/bin/bash
# Description: 8 concurrent readers over the shared blob (4 per mount, two images in one domain),
# with 4 KiB fetch chunks so that many READs race for the same ranges: every reader sees the right
# bytes and each blob byte is still fetched once.
. "$(dirname "$0")/../lib.sh"
CHUNK_SIZE=4096 start_daemon
mount_erofs /run/mnt/a fsid=img1,domain_id=d1
mount_erofs /run/mnt/b fsid=img2,domain_id=d1
# pipefail: a find that fails half-way must fail the reader, not just give a shorter list; xargs -r:
# an empty list must not checksum stdin (two empty trees would then "agree").
(set -o pipefail; cd "$E2E_DATA/src/tree1" && find bin lib share -type f | sort | xargs -r sha256sum) >/run/expected.sum ||
    fail "checksumming the source tree failed"
n=$(wc -l </run/expected.sum)
[ "$n" -ge 40 ] || fail "only $n files in the source tree's checksum list"
pids=()
for i in 1 2 3 4 5 6 7 8; do
    m=/run/mnt/a; [ $((i % 2)) = 0 ] && m=/run/mnt/b
    (set -o pipefail; cd $m && find bin lib share -type f | sort | xargs -r sha256sum >/run/got.$i.sum) &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "reader $p failed"; done
for i in 1 2 3 4 5 6 7 8; do
    cmp -s /run/expected.sum /run/got.$i.sum || { diff /run/expected.sum /run/got.$i.sum | head; fail "reader $i saw other bytes"; }
done
echo "ok: 8 readers saw identical, correct contents ($n files each)"
expect_eq "reads failed" "$(stat reads_failed)" 0
expect_eq "fetched (each byte once)" "$(stat bytes_fetched)" $(( $(size_of img1) + $(size_of img2) + $(size_of blob1) ))
echo "info: $(stat reads) READs, $(stat fetch_joins) joined an in-flight fetch"
umount /run/mnt/a /run/mnt/b
stop_daemon
