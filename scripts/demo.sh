#!/usr/bin/env bash
# The project's demo command: installs what is needed, builds, and shows the daemon serving real
# erofs mounts in a shared domain.
#
#   scripts/demo.sh
#
# Two different erofs images whose file data lives in one shared data blob are mounted in fscache
# mode with the same domain_id; every file is read through both mounts and compared with its source
# tree; the daemon's counters show that the blob was fetched once for both. The host kernel is used
# when it has cachefiles on-demand mode; otherwise (the usual case) the demo runs in the User-Mode
# Linux test kernel, built on first use (~7 minutes on 2 cores, then cached). Then, when the host
# kernel has fanotify pre-content events (Linux >= 6.14) and the demo runs as root, the same images
# through the fanotify frontend on the host (scripts/demo-fanotify.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/install-deps.sh"
echo "=== building erofs-blobd"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target erofs-blobd erofs-blobctl

data=$top/build/demo-data
echo "=== making two erofs images that share one data blob (mkfs.erofs + scripts/mkblobimg)"
"$top/tests/e2e/make-fixtures.sh" "$data" >/dev/null

host_ondemand() {
    local cfg=/boot/config-$(uname -r)
    [ -r "$cfg" ] && grep -q '^CONFIG_CACHEFILES_ONDEMAND=y' "$cfg" && grep -q '^CONFIG_EROFS_FS_ONDEMAND=y' "$cfg" \
        && { [ -c /dev/cachefiles ] || modprobe cachefiles 2>/dev/null; }
}
if [ "$(id -u)" = 0 ] && host_ondemand; then
    echo "=== the host kernel has on-demand mode: running the demo here"
    run=$(mktemp -d /var/tmp/erofs-blobd-demo.XXXXXX)
    mkdir -p "$run/cache"
    E2E_BIN=$top/build/bin E2E_DATA=$data BLOBD_CACHE_MNT=$run/cache BLOBD_UML_RUN=$run \
        "$top/scripts/demo-guest.sh"
else
    echo "=== the host kernel lacks cachefiles on-demand mode: using the User-Mode Linux test kernel"
    kernel=$("$top/scripts/build-uml-kernel.sh" | tail -n1)
    BLOBD_UML_KERNEL=$kernel "$top/scripts/run-uml.sh" --timeout 300 \
        --env E2E_BIN="$top/build/bin" --env E2E_DATA="$data" -- "$top/scripts/demo-guest.sh"
fi

if [ "$(id -u)" = 0 ]; then
    echo "=== the second frontend: fanotify pre-content events on the host kernel ($(uname -r))"
    rc=0
    "$top/scripts/demo-fanotify.sh" "$top/build/bin" "$data" || rc=$?
    if [ "$rc" = 77 ]; then echo "(this host cannot run the fanotify frontend: see the reason above)"
    elif [ "$rc" != 0 ]; then exit "$rc"; fi
fi
