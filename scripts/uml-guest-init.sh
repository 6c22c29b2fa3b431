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
#
# systemd mode (run-uml.sh --systemd, GUEST_SYSTEMD=1 in guest.env): after the mounts above, this
# script covers the host directories systemd writes to with guest-private tmpfs mounts, writes a
# minimal unit set to /run/blobd-e2e/units (the only unit path: nothing from the host's
# /lib/systemd/system or /etc/systemd/system is loaded, no generators run) and execs
# /lib/systemd/systemd as PID 1 with blobd-e2e.service as the unit to start. That service runs this
# script again with --systemd-stage2, which runs the guest script and ends the run as below
# (result, kernel log, halt), so the harness sees the same result files and exit status.

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

# Stage 2 of systemd mode: run as blobd-e2e.service by systemd (PID 1); the mounts are in place.
if [ "${1:-}" = --systemd-stage2 ]; then
    # shellcheck disable=SC1091
    . "$run/guest.env"
    cache_mnt=${BLOBD_CACHE_MNT:-/run/cache}
    export BLOBD_CACHE_MNT=$cache_mnt BLOBD_UML_RUN=$run BLOBD_IN_UML=1
    cd "${GUEST_CWD:-/}" 2>/dev/null || cd /
    "$GUEST_SCRIPT" "${GUEST_ARGS[@]}"
    status=$?
    # Stop the services first (systemd's own way; a daemon's fd store is released), then the rest.
    systemctl stop --no-block erofs-blobd.service 2>/dev/null   # the project's unit, if a case ran it
    finish $status
fi

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

if [ "${GUEST_SYSTEMD:-0}" = 1 ]; then
    # Everything systemd (or a unit's StateDirectory=, LogsDirectory=, PrivateTmp=, ...) may write
    # under /var goes to guest-private tmpfs: the host's / is the guest's root, read-write.
    # /etc is not covered: systemd only reads it here (/etc/machine-id must exist and be valid on
    # the host, or systemd would write one), and units come from the unit dir below.
    [ -s /etc/machine-id ] || { say "systemd mode needs a valid /etc/machine-id on the host"; finish 125; }
    for d in /var/lib /var/log /var/tmp /var/cache /var/spool; do
        [ -d "$d" ] && mount -t tmpfs -o mode=0755 tmpfs "$d"
    done
    chmod 1777 /var/tmp
    units=/run/blobd-e2e/units
    mkdir -p "$units" /run/blobd-e2e/empty
    # The targets and the slice that DefaultDependencies=yes units (the daemon's) refer to: empty.
    for t in sysinit basic shutdown umount swap local-fs-pre local-fs network network-online remote-fs-pre multi-user; do
        printf '[Unit]\nDescription=%s (blobd e2e: empty)\n' "$t" >"$units/$t.target"
    done
    printf '[Unit]\nDescription=system.slice\nDefaultDependencies=no\n[Slice]\n' >"$units/system.slice"
    cat >"$units/blobd-e2e.service" <<UNIT
[Unit]
Description=the guest test script (scripts/uml-guest-init.sh --systemd-stage2)
DefaultDependencies=no

[Service]
Type=simple
ExecStart=$0 --systemd-stage2
Environment=BLOBD_UML_RUN=$run PATH=$PATH HOME=/ TERM=linux
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
KillMode=process
# Stage 2 ends the run itself (halt); should it not even start, halt at once: run-uml.sh then
# reports "no result" instead of waiting for its timeout.
SuccessAction=halt-force
FailureAction=halt-force
UNIT
    # systemd execs from here on as PID 1; the dmesg follower stays its (adopted) child.
    # container= (empty): PID 1's own environment is authoritative for systemd's container
    # detection, and the host's /.dockerenv (seen through hostfs) would make it run in container
    # mode; this guest is a virtual machine (systemd detects "uml" from /proc/cpuinfo).
    exec env -i PATH="$PATH" container= SYSTEMD_UNIT_PATH="$units" SYSTEMD_GENERATOR_PATH=/run/blobd-e2e/empty \
        SYSTEMD_ENVIRONMENT_GENERATOR_PATH=/run/blobd-e2e/empty \
        /lib/systemd/systemd --system --unit=blobd-e2e.service --show-status=no \
        --log-target=kmsg --default-standard-output=tty --default-standard-error=tty
fi
cd "${GUEST_CWD:-/}" 2>/dev/null || cd /
"$GUEST_SCRIPT" "${GUEST_ARGS[@]}"
finish $?
