#!/bin/bash
# The demo itself (run by scripts/demo.sh, inside the UML guest or on a capable host as root).
. "$(dirname "$0")/../tests/e2e/lib.sh"
human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 B"; }
tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

echo
echo "erofs-blobd demo: two erofs images sharing one data blob, in one fscache domain"
echo "  kernel: $(uname -sr)    cache dir: $CACHE_DIR    blob source: $BLOBS (local)"
start_daemon
mount_erofs /run/mnt/img1 fsid=img1,domain_id=demo
mount_erofs /run/mnt/img2 fsid=img2,domain_id=demo
echo
echo "mounted:"
awk '$3 == "erofs" { printf "  %-16s %s\n", $2, $4 }' /proc/mounts
echo "the kernel asked the daemon to open $(stat opens) cache objects: img1, img2 and blob1 (once, shared)"
echo
echo "reading every file through both mounts and comparing with the source trees:"
# same_tree's fail exits the pipeline's subshell only, and the pipeline's status is sed's: check it.
same_tree "$E2E_DATA/src/tree1" /run/mnt/img1 | sed 's/^/  /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "/run/mnt/img1 does not show tree1"
after1=$(stat bytes_fetched)
same_tree "$E2E_DATA/src/tree2" /run/mnt/img2 | sed 's/^/  /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "/run/mnt/img2 does not show tree2"
after2=$(stat bytes_fetched)
read1=$(tree_bytes /run/mnt/img1) read2=$(tree_bytes /run/mnt/img2)
echo
printf '  %-44s %12s\n' "file bytes read through img1" "$(human "$read1")"
printf '  %-44s %12s\n' "file bytes read through img2" "$(human "$read2")"
printf '  %-44s %12s\n' "bytes fetched from the source after img1" "$(human "$after1")"
printf '  %-44s %12s\n' "bytes fetched from the source after img2" "$(human "$after2")"
printf '  %-44s %12s\n' "size of the shared blob (blob1)" "$(human "$(size_of blob1)")"
echo
if [ "$after2" = "$after1" ]; then
    echo "=> $(human $((read1 + read2))) of file data were read, $(human "$after2") fetched: the second image was"
    echo "   served entirely from the shared cache file (one download for every mount in the domain)."
else
    fail "the second mount fetched $((after2 - after1)) more bytes"
fi
echo
echo "erofs-blobctl stats:"
"$E2E_BIN/erofs-blobctl" --socket "$SOCK" stats | sed 's/^/  /'
umount /run/mnt/img1 /run/mnt/img2
stop_daemon
echo "demo: OK"
