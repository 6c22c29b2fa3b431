#!/bin/bash
# PID 1 of the User-Mode Linux guest booted by scripts/run-uml.sh. Not meant to be run by hand.
#
# The host root filesystem is the guest's root (hostfs), so host binaries and host paths work.
# run-uml.sh passes BLOBD_UML_RUN=<host run dir> on the kernel command line (the kernel hands
# unknown KEY=VALUE arguments to init as environment). That directory holds:
#   guest.env      written by run-uml.sh: GUEST_SCRIPT, GUEST_ARGS (array), GUEST_CWD, extra env
#   result         written here: the guest script's exit status
#   dmesg          written here: the kernel log at the end of the run
#   kmsg.stream    written here while the guest runs (kernel log, followed live)
# Guest view: proc, sysfs, devtmpfs (/dev, /dev/cachefiles), a private tmpfs at /run, the ubd0
# disk (ext4) mounted at $BLOBD_CACHE_MNT (default /run/cache). /tmp is the host's /tmp.
# Init must never exit (the kernel would panic), so it ends with `busybox halt -f`.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 022
run=${BLOBD_UML_RUN:-}
bb=/bin/busybox

say() { echo "uml-guest-init: $*" >&2; }

finish() {
    local status=$1
    # Stop whatever the guest script left running (daemons), then unmount erofs and the cache disk
    # cleanly so a kept disk (--keep-disk / --disk) is consistent for the next boot.
    kill -TERM -1 2>/dev/null
    local _ p x left
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        # any user process left besides init? (kernel threads have an empty cmdline; builtins only)
        left=0
        for p in /proc/[0-9]*; do
            [ "${p#/proc/}" = 1 ] && continue
            x=
            { IFS= read -r -d '' x <"$p/cmdline"; } 2>/dev/null
            [ -n "$x" ] && { left=1; break; }
        done
        [ $left = 0 ] && break
        sleep 0.1
    done
    kill -KILL -1 2>/dev/null
    [ -n "${follower:-}" ] && wait "$follower" 2>/dev/null
    awk '$3 == "erofs" { print $2 }' /proc/mounts | tac | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    if [ -n "${cache_mnt:-}" ] && mountpoint -q "$cache_mnt"; then
        sync
        umount "$cache_mnt" 2>/dev/null || mount -o remount,ro "$cache_mnt" 2>/dev/null \
            || say "could not unmount or remount read-only $cache_mnt"
    fi
    if [ -n "$run" ] && [ -d "$run" ]; then
        dmesg >"$run/dmesg" 2>&1
        echo "$status" >"$run/result.tmp" && mv "$run/result.tmp" "$run/result"
    fi
    sync
    $bb halt -f
    # not reached; never let init exit
    while :; do sleep 1000; done
}

mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm 2>/dev/null
# devtmpfs lacks the /dev/fd links that bash process substitution uses.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
for i in 0:stdin 1:stdout 2:stderr; do [ -e "/dev/${i#*:}" ] || ln -s "/proc/self/fd/${i%%:*}" "/dev/${i#*:}"; done
mount -t tmpfs -o mode=0755 tmpfs /run

if [ -z "$run" ] || [ ! -f "$run/guest.env" ]; then
    say "BLOBD_UML_RUN not set or $run/guest.env missing"
    run=
    finish 125
fi
# Kernel log, followed live, so a hung run still leaves the log on the host.
dmesg -w >"$run/kmsg.stream" 2>&1 &
follower=$!

# shellcheck disable=SC1091
. "$run/guest.env"
cache_mnt=${BLOBD_CACHE_MNT:-/run/cache}
export BLOBD_CACHE_MNT=$cache_mnt BLOBD_UML_RUN=$run BLOBD_IN_UML=1
mkdir -p "$cache_mnt"
if ! mount -t ext4 /dev/ubda "$cache_mnt"; then
    say "cannot mount /dev/ubda (ext4) at $cache_mnt"
    finish 125
fi
cd "${GUEST_CWD:-/}" 2>/dev/null || cd /
"$GUEST_SCRIPT" "${GUEST_ARGS[@]}"
finish $?
