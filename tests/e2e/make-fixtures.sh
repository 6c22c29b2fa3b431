#!/usr/bin/env bash
# Builds the source trees and erofs images the end-to-end tests mount (host side, before booting).
#
#   tests/e2e/make-fixtures.sh OUT
#
# OUT/src/<tree>   source trees (what the mounts must show, byte for byte)
# OUT/blobs/       what the daemon serves from (a local source): bootstraps and data blobs, named
#                  after the cookie the kernel asks for
#   p1             plain image of src/plain (no blob), plus 100 trailing bytes: mount -o fsid=p1
#   img1, img2     two different bootstraps (src/tree1, src/tree2) sharing the data blob blob1
#   img5           bootstrap of src/tree5 whose data is blob5 (the failure test truncates blob5)
#   img9           bootstrap of src/tree9 whose blob blob9 is deliberately absent (kept in OUT/absent/)
#   img7, img8     bootstraps of src/tree1 and src/tree2 whose shared blob is named by the sha256 of
#                  its bytes (64 hex digits; the name is in OUT/digest-blob): the store's dedup case
# OUT/space/       the culling case's (100-cull) own source, not copied into the guest: space1..space6,
#                  bootstraps of src/space whose data blobs spaceblob1..6 (14 MiB each, 84 MiB in
#                  all: nearly twice its 48 MiB cache disk) are hard links of one file
# OUT/sizes        "name size" per file in blobs/
# OUT/oci/         content-addressed copies for the registry case: img1 and img2 rebuilt with the
#                  blob tag = the 64-hex sha256 of blob1 (= the same bytes), every file named by the
#                  64-hex sha256 of its contents (the fsid to mount, the cookie the kernel asks for)
# OUT/oci/index    "role hex size" lines: img1, img2, blob1
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:?usage: make-fixtures.sh OUT}
rm -rf "$out"
mkdir -p "$out/src" "$out/blobs"
out=$(cd "$out" && pwd)

rnd() { head -c "$2" /dev/urandom >"$1"; }

# plain: assorted shapes (empty file, tails that are not block multiples, nested dirs, a symlink).
p=$out/src/plain
mkdir -p "$p/dir/sub/deeper" "$p/empty-dir"
: >"$p/empty"
printf 'hello, erofs\n' >"$p/hello.txt"
rnd "$p/dir/one-block" 4096
rnd "$p/dir/odd-size" 123457
rnd "$p/dir/sub/big" $((3 * 1024 * 1024 + 77))
rnd "$p/dir/sub/deeper/tiny" 1
ln -s dir/sub/big "$p/link-to-big"

# tree1 and tree2: the same file contents under the same names (so mkfs.erofs lays out identical
# blobs), but different images: tree2 has extra directories, a symlink and other modes.
t1=$out/src/tree1
mkdir -p "$t1/bin" "$t1/lib/x" "$t1/share"
rnd "$t1/bin/tool" $((2 * 1024 * 1024 + 4096 * 3 + 5))
rnd "$t1/lib/libbig.so" $((5 * 1024 * 1024 + 333))
rnd "$t1/lib/x/data" 65536
printf 'shared config\n' >"$t1/share/config"
for i in $(seq 1 40); do rnd "$t1/share/f$i" $((i * 997)); done
rnd "$t1/share/odd-a" 123457   # 123 KB files: the outage case's "cat of a 123 KB file"
rnd "$t1/share/odd-b" 123457
cp -a "$t1" "$out/src/tree2"
t2=$out/src/tree2
mkdir -p "$t2/only-in-2/nested"
ln -s ../bin/tool "$t2/only-in-2/tool-link"
chmod 0700 "$t2/bin/tool"
printf '' >"$t2/only-in-2/empty"

t5=$out/src/tree5
mkdir -p "$t5"
rnd "$t5/victim" $((3 * 1024 * 1024))
t9=$out/src/tree9
mkdir -p "$t9"
rnd "$t9/unreachable" 100000

mk=$top/scripts/mkblobimg
"$mk" --quiet --out "$out/blobs" --plain p1="$p"
"$mk" --quiet --out "$out/blobs" --blob blob1 --image img1="$t1" --image img2="$t2"
"$mk" --quiet --out "$out/blobs" --blob blob5 --image img5="$t5"
"$mk" --quiet --out "$out/blobs" --blob blob9 --image img9="$t9"
mkdir -p "$out/absent"   # not served; a sabotaged run of 040-failures copies it back in
mv "$out/blobs/blob9" "$out/absent/blob9"
"$mk" --out "$out/blobs" --blob-digest --image img7="$t1" --image img8="$t2" |
    awk '$1 == "blob" { print $2 }' >"$out/digest-blob"
[ "$(wc -c <"$out/digest-blob")" = 65 ] || { echo "make-fixtures: no digest-named blob" >&2; exit 1; }

# Content-addressed set: the tag of the blob is its digest, known once blob1 exists; mkfs lays out
# the same blob again (same trees), checked below.
oci=$out/oci
mkdir -p "$oci"
blob_hex=$(sha256sum "$out/blobs/blob1" | cut -d' ' -f1)
"$mk" --quiet --out "$oci" --blob "$blob_hex" --image img1="$t1" --image img2="$t2"
[ "$(sha256sum "$oci/$blob_hex" | cut -d' ' -f1)" = "$blob_hex" ] || { echo "make-fixtures: oci blob differs from blob1" >&2; exit 1; }
echo "blob1 $blob_hex $(stat -c %s "$oci/$blob_hex")" >"$oci/index"
for img in img1 img2; do
    hex=$(sha256sum "$oci/$img" | cut -d' ' -f1)
    mv "$oci/$img" "$oci/$hex"
    echo "$img $hex $(stat -c %s "$oci/$hex")" >>"$oci/index"
done
# space: one tree, six images, six blob names (the kernel caches each blob in a file of its own).
sp=$out/src/space
mkdir -p "$sp/d" "$out/space"
rnd "$sp/d/big" $((14 * 1024 * 1024))
printf 'space\n' >"$sp/small"
for n in 1 2 3 4 5 6; do
    "$mk" --quiet --out "$out/space" --blob "spaceblob$n" --image "space$n=$sp"
    [ "$n" = 1 ] || ln -f "$out/space/spaceblob1" "$out/space/spaceblob$n"
done

# p1 gets 100 trailing bytes erofs never reads, so its size is not a multiple of 4096: the daemon's
# zero-padded tail write (direct I/O needs whole blocks) is exercised on the real kernel.
head -c 100 /dev/urandom >>"$out/blobs/p1"
(cd "$out/blobs" && for f in *; do echo "$f $(stat -c %s "$f")"; done) >"$out/sizes"
cat "$out/sizes" "$oci/index"
