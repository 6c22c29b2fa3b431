#!/usr/bin/env bash
# Boot the User-Mode Linux test kernel, run GUEST_SCRIPT inside it, return its exit status.
#
# usage: scripts/run-uml.sh [options] -- GUEST_SCRIPT [ARGS...]
#   --timeout SEC     kill the guest after SEC seconds (default 120) -> exit 124
#   --mem SIZE        guest memory (default 256M)
#   --disk FILE       cache disk (ubd0). An existing FILE is reused as is (persistence tests: same
#                     disk across boots); a missing FILE is created (fresh ext4). Never deleted.
#                     Default: a fresh ext4 image in the run's work dir.
#   --disk-size SIZE  size of a newly created disk (default 256M; sparse file)
#   --keep-disk       keep the default (work dir) disk: implies keeping the work dir
#   --log FILE        copy the guest's kernel log (dmesg) to FILE
#   --workdir DIR     use DIR as the work dir (created; kept). Default: a temp dir under
#                     $BLOBD_UML_TMP (default /tmp), removed after a passing run, kept on failure
#   --env NAME=VALUE  export NAME=VALUE to the guest script (repeatable)
#   --systemd         boot systemd (/lib/systemd/systemd) as PID 1 in the guest: it runs
#                     GUEST_SCRIPT as blobd-e2e.service and the script can manage units from the
#                     guest-private unit dir /run/blobd-e2e/units with systemctl (see
#                     scripts/uml-guest-init.sh and docs/real-kernel-testing.md)
#   --verbose         show all kernel messages on the console (default `quiet`: errors and worse)
#   -h, --help        this text
#
# The kernel: $BLOBD_UML_KERNEL if set, else the path printed by scripts/build-uml-kernel.sh (which
# builds it the first time, ~7 min). Must run as root (UML, hostfs, the guest mounts things).
#
# Inside the guest (init = scripts/uml-guest-init.sh): the host's / is the root (hostfs), so host
# binaries and absolute host paths work, and relative paths too: the script starts in the caller's
# cwd. Mounted: proc, sysfs, devtmpfs on /dev (with /dev/cachefiles), a private tmpfs on /run, the
# ext4 cache disk at $BLOBD_CACHE_MNT (/run/cache). /tmp is the host's /tmp (shared!).
# Environment of the guest script: BLOBD_CACHE_MNT, BLOBD_UML_RUN (host-visible work dir, for
# outputs), BLOBD_IN_UML=1, PATH, plus --env values. Nothing else from the host environment.
# When the script ends, init kills leftover processes, unmounts erofs mounts and the cache disk,
# writes the exit status and the kernel log to the work dir and halts.
#
# Exit status: the guest script's status (keep its own codes below 124), or
#   124 timeout, 125 infrastructure failure (no result, bad usage, UML crashed),
#   126 kernel log has WARNING:/BUG:/Oops/general protection/Kernel panic although the script passed
#       (if the script failed too, its status is returned; the message is printed either way).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog=run-uml

die() { echo "$prog: $*" >&2; exit 125; }
usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

timeout_s=120 mem=256M disk='' disk_size=256M keep_disk=0 log='' workdir='' verbose=0 systemd=0
envs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) timeout_s=${2:?}; shift 2 ;;
        --mem) mem=${2:?}; shift 2 ;;
        --disk) disk=${2:?}; shift 2 ;;
        --disk-size) disk_size=${2:?}; shift 2 ;;
        --keep-disk) keep_disk=1; shift ;;
        --log) log=${2:?}; shift 2 ;;
        --workdir) workdir=${2:?}; shift 2 ;;
        --env) case "${2:?}" in [A-Za-z_]*=*) envs+=("$2") ;; *) die "--env wants NAME=VALUE, got '$2'" ;; esac
               shift 2 ;;
        --verbose) verbose=1; shift ;;
        --systemd) systemd=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) echo "$prog: unknown option '$1'" >&2; usage >&2; exit 125 ;;
    esac
done
[ $# -ge 1 ] || { usage >&2; die "missing -- GUEST_SCRIPT"; }
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds"
[ "$(id -u)" = 0 ] || die "must run as root"
script=$1; shift
[ -f "$script" ] || die "guest script '$script' not found"
[ -x "$script" ] || die "guest script '$script' is not executable"
script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")

# The kernel
if [ -n "${BLOBD_UML_KERNEL:-}" ]; then
    kernel=$BLOBD_UML_KERNEL
else
    kernel=$("$here/build-uml-kernel.sh" | tail -n1) || die "scripts/build-uml-kernel.sh failed"
fi
[ -x "$kernel" ] || die "UML kernel '$kernel' is not an executable"
init="$here/uml-guest-init.sh"
[ -x "$init" ] || die "$init missing or not executable"

# Work dir: must be reachable by the guest through hostfs under the same path, and its path goes on
# the kernel command line, so no whitespace.
keep_work=0
if [ -n "$workdir" ]; then
    mkdir -p "$workdir" || die "cannot create $workdir"
    work=$(cd "$workdir" && pwd); keep_work=1
    rm -f "$work/result" "$work/result.tmp" "$work/dmesg" "$work/kmsg.stream" "$work/console.log"
else
    mkdir -p "${BLOBD_UML_TMP:-/tmp}"
    work=$(mktemp -d "${BLOBD_UML_TMP:-/tmp}/run-uml.XXXXXX") || die "mktemp failed"
fi
case "$work$init" in *[[:space:]]*) die "paths with whitespace are not supported: $work $init" ;; esac
[ $keep_disk = 1 ] && keep_work=1

# The cache disk
new_disk() {
    if ! { truncate -s 0 "$1" && truncate -s "$disk_size" "$1" && mkfs.ext4 -F -q -b 4096 "$1"; }; then
        die "cannot create ext4 image $1"
    fi
}
if [ -n "$disk" ]; then
    if [ ! -e "$disk" ]; then
        mkdir -p "$(dirname "$disk")"; new_disk "$disk"
    fi
    disk=$(cd "$(dirname "$disk")" && pwd)/$(basename "$disk")
else
    disk="$work/cache.ext4"; new_disk "$disk"
fi
case "$disk" in *[[:space:],]*) die "disk path with whitespace or comma is not supported: $disk" ;; esac

# What the guest init runs
{
    printf 'GUEST_SCRIPT=%q\n' "$script"
    printf 'GUEST_ARGS=('; [ $# -gt 0 ] && printf '%q ' "$@"; printf ')\n'
    printf 'GUEST_CWD=%q\n' "$PWD"
    printf 'GUEST_SYSTEMD=%s\n' "$systemd"
    for e in "${envs[@]}"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
} >"$work/guest.env"

# UML backs guest memory with an unlinked temp file in $TMPDIR: it needs a writable, exec-mountable
# directory; /dev/shm (tmpfs) is fastest.
if [ -d /dev/shm ] && [ -w /dev/shm ] && ! findmnt -no OPTIONS /dev/shm 2>/dev/null | grep -qw noexec; then
    export TMPDIR=/dev/shm
else
    export TMPDIR=$work
fi

loglevel=quiet
[ $verbose = 1 ] && loglevel=loglevel=7
ulimit -c 0  # a panicking UML aborts: no core files
start=$(date +%s.%N)
# Own process group via timeout (without --foreground): on expiry the whole UML process tree dies.
timeout --kill-after=5 "$timeout_s" "$kernel" \
    mem="$mem" rootfstype=hostfs rootflags=/ rw ubd0="$disk" init="$init" \
    con=null con0=fd:0,fd:1 "$loglevel" BLOBD_UML_RUN="$work" \
    </dev/null 2>&1 | tr -d '\r' | tee "$work/console.log"
uml_rc=${PIPESTATUS[0]}
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

# Restore the terminal in case UML left it in raw mode (only when attached to one).
[ -t 1 ] && stty sane 2>/dev/null

klog="$work/dmesg"
[ -s "$klog" ] || klog="$work/kmsg.stream"
if [ -n "$log" ]; then
    mkdir -p "$(dirname "$log")"
    if [ -s "$klog" ]; then cat "$klog"; else cat "$work/console.log"; fi >"$log" 2>/dev/null
fi

status='' why=''
if [ "$uml_rc" = 124 ] || [ "$uml_rc" = 137 ]; then
    echo "$prog: TIMEOUT: guest did not finish within ${timeout_s}s (UML killed); kernel log: $klog" >&2
    status=124 why="timeout"
elif [ ! -s "$work/result" ]; then
    echo "$prog: FAIL: the guest wrote no result (UML exit $uml_rc: crash, panic or init failure);" \
         "console: $work/console.log" >&2
    status=125 why="no result"
else
    status=$(cat "$work/result")
    if [[ "$status" =~ ^[0-9]+$ ]]; then
        why="guest script"
    else
        echo "$prog: bad result file content '$status'" >&2; status=125 why="bad result"
    fi
fi

# Kernel problems in the log. A panic never reaches the dmesg file, only the console; the console
# also carries the guest script's own output, so only the panic line is looked for there.
bad=$( { grep -E 'WARNING:|BUG:|Oops|general protection|Kernel panic' "$klog";
         grep -E 'Kernel panic - not syncing' "$work/console.log"; } 2>/dev/null | head -n 20)
if [ -n "$bad" ]; then
    echo "$prog: FAIL: kernel log reports a problem (full log: ${log:-$klog}):" >&2
    printf '    %s\n' "${bad//$'\n'/$'\n'    }" >&2
    [ "$status" = 0 ] && status=126 why="kernel log problem"
elif [ ! -s "$klog" ] && [ "$status" = 0 ]; then
    # An empty or missing log would pass the check above whatever the kernel did.
    echo "$prog: FAIL: no kernel log ($work/dmesg and $work/kmsg.stream are empty): cannot check it" >&2
    status=125 why="no kernel log"
fi

if [ "$status" = 0 ]; then
    echo "$prog: PASS in ${elapsed}s" >&2
    if [ $keep_work = 1 ] && [ -z "$workdir" ]; then echo "$prog: work dir kept: $work (disk: $disk)" >&2; fi
    [ $keep_work = 0 ] && rm -rf "$work"
else
    echo "$prog: FAIL: exit status $status ($why) after ${elapsed}s; work dir kept: $work" >&2
fi
exit "$status"
