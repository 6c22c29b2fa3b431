#!/usr/bin/env bash
# Build (or reuse) the User-Mode Linux test kernel with cachefiles on-demand and erofs fscache mode.
#
# The kernel is cached outside the repository, keyed by a hash of the config fragment and of the
# Debian linux-source package version, so it is rebuilt only when either changes. Prints the path
# of the `linux` executable on stdout (the last line); build logs go to stderr.
#
#   scripts/build-uml-kernel.sh            build if needed, print the path
#   BLOBD_UML_CACHE=/some/dir ...          where kernels are cached (default /var/cache/erofs-blobd/uml)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fragment="$here/tests/e2e/uml.config"
cache_root=${BLOBD_UML_CACHE:-/var/cache/erofs-blobd/uml}
tarball=$(ls /usr/src/linux-source-6.1.tar.* 2>/dev/null | head -n1 || true)
if [ -z "$tarball" ]; then
    echo "build-uml-kernel: /usr/src/linux-source-6.1.tar.* missing: run scripts/install-deps.sh (apt-get install linux-source-6.1)" >&2
    exit 1
fi
src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %s "$tarball")
# Patches to the kernel source (scripts/uml-patches/*.patch, applied in order) are part of the key.
patches=$(ls "$here"/scripts/uml-patches/*.patch 2>/dev/null || true)
key=$( { cat "$fragment"; echo "$src_version"; echo v2; for p in $patches; do cat "$p"; done; } | sha256sum | cut -c1-16)
out="$cache_root/$key"
if [ -x "$out/linux" ]; then
    echo "$out/linux"
    exit 0
fi
mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-uml-kernel: building UML kernel $key in $work (about 7 minutes on 2 cores)" >&2
tar -C "$work" -xf "$tarball"
srcdir=$(echo "$work"/linux-source-6.1)
for p in $patches; do
    echo "build-uml-kernel: applying $(basename "$p")" >&2
    patch -s -d "$srcdir" -p1 <"$p" >&2
done
objdir="$work/obj"
mkdir -p "$objdir"
make -s -C "$srcdir" O="$objdir" ARCH=um defconfig >&2
"$srcdir/scripts/kconfig/merge_config.sh" -m -O "$objdir" "$objdir/.config" "$fragment" >&2
make -s -C "$srcdir" O="$objdir" ARCH=um olddefconfig >&2
missing=0
while IFS= read -r line; do
    case "$line" in CONFIG_*=y)
        sym=${line%%=*}
        if ! grep -qx "$sym=y" "$objdir/.config"; then echo "build-uml-kernel: $sym did not stick" >&2; missing=1; fi ;;
    esac
done < "$fragment"
[ "$missing" = 0 ] || exit 1
make -C "$srcdir" O="$objdir" ARCH=um -j"$(nproc)" linux >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; exit 1; }
mkdir -p "$out.tmp"
cp "$objdir/linux" "$objdir/.config" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out/linux"
