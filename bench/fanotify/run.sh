#!/usr/bin/env bash
# Host-kernel benchmark of the fanotify frontend (docs/fanotify.md): erofs-blobd serving a
# file-backed erofs mount through fanotify pre-content events, against a plain file-backed erofs
# mount of the same image with the complete blob (mount(2) with device=<blob>, what
# `erofs-blobctl mount` does, but with the full blob file and no daemon; never mount(8) on a file,
# which attaches a loop device). Side by side in one run, --reps times, `drop_caches` before every
# timed read (so both sides read the blob from the disk):
#   cold   sequential read of a SIZE MiB file, 1 MiB preads (--bs): fresh mount, empty cache file (every
#          byte is fetched from the local blob source and written into the cache file)
#   filled the same read again after drop_caches: the cache file is full (every event is a hit)
# Each fanotify read is paired with a plain read right before or after it (alternating by
# repetition), and the ratio is taken within the pair: the VM's disk speed drifts within seconds.
#   rand   OPS 4 KiB preads at seeded random offsets (the same set on both sides), fresh mount
# Ratios are plain time / fanotify time (higher is better; 1.0 = as fast as the plain mount), the
# median over the repetitions with the min-max spread, and best/best: the fastest plain time over
# the fastest fanotify time (the reads the disk disturbed least). Targets (on the median): cold
# >= 0.8x, filled >= 0.95x.
#
# usage: bench/fanotify/run.sh --bin DIR [--reps 5] [--size 64] [--ops 512] [--seed 1]
#                              [--dir /tmp] [--read-ahead-kb N] [--plain-read-ahead-kb N]
#                              [--chunk-size 1048576] [--bs 1M] [--nice N] [--keep]
#   --bin DIR               erofs-blobd and erofs-blobctl (default <repo>/build/bin)
#   --dir DIR               where the work dir goes (blobs, images, cache dir): ext4, xfs or btrfs
#   --read-ahead-kb N       the daemon's "fanotify.read_ahead_kb" (default: the daemon's default)
#   --plain-read-ahead-kb N also set the plain mount's bdi read_ahead_kb (default: kernel default)
#   --chunk-size N          the daemon's chunk_size (the image always has 1 MiB chunks)
#   --bs SIZE               pread size of the sequential reads (default 1M, as dd bs=1M; 128k: as cat)
#   --nice N                run the readers and the daemon under `nice -n N`
#
# Output (stdout): `RESULT|<benchmark>|<measured>|<baseline>|<ratio>|<target>|<PASS|FAIL|info>`
# rows, `# ...` commentary (one line per repetition), or `SKIP|<benchmark>|<why>` when the host
# cannot run it (not root, no mkfs.erofs, no pre-content events, no ext4/xfs/btrfs for the dir).
# Exit 0 unless the run itself broke (a missed target is a FAIL row, not an error).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)

bin=$top/build/bin reps=5 size=64 ops=512 seed=1 bs=1M dir=/tmp ra_kb= plain_ra_kb= chunk=1048576 nice_n= keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=${2:?}; shift 2 ;;
        --reps) reps=${2:?}; shift 2 ;;
        --size) size=${2:?}; shift 2 ;;
        --ops) ops=${2:?}; shift 2 ;;
        --bs) bs=${2:?}; shift 2 ;;
        --seed) seed=${2:?}; shift 2 ;;
        --dir) dir=${2:?}; shift 2 ;;
        --read-ahead-kb) ra_kb=${2:?}; shift 2 ;;
        --plain-read-ahead-kb) plain_ra_kb=${2:?}; shift 2 ;;
        --chunk-size) chunk=${2:?}; shift 2 ;;
        --nice) nice_n=${2:?}; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/fanotify/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
name="fanotify"
skip() { echo "SKIP|$name|$*"; exit 0; }

[ "$(id -u)" = 0 ] || skip "needs root (fanotify pre-content group, mount(2), drop_caches)"
command -v mkfs.erofs >/dev/null || skip "no mkfs.erofs"
command -v python3 >/dev/null || skip "no python3"
command -v unshare >/dev/null || skip "no unshare"
[ -x "$bin/erofs-blobd" ] && [ -x "$bin/erofs-blobctl" ] || { echo "bench/fanotify/run.sh: no erofs-blobd/erofs-blobctl in $bin" >&2; exit 1; }
fs=$(df --output=fstype "$dir" 2>/dev/null | tail -n 1)
case "$fs" in ext4|xfs|btrfs) ;; *) skip "$dir is on ${fs:-?}, pre-content marks need ext4, xfs or btrfs (--dir)" ;; esac
free=$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')
[ "${free:-0}" -ge $((size * 3 + 64)) ] || skip "$dir has less than $((size * 3 + 64)) MiB free"

# Everything below runs in a private mount namespace: no mount can leak into the host's.
if [ -z "${BLOBD_FANBENCH_NS:-}" ]; then
    BLOBD_FANBENCH_NS=1 exec unshare --mount --propagation private "$0" --bin "$bin" --reps "$reps" --size "$size" \
        --ops "$ops" --seed "$seed" --bs "$bs" --dir "$dir" ${ra_kb:+--read-ahead-kb "$ra_kb"} \
        ${plain_ra_kb:+--plain-read-ahead-kb "$plain_ra_kb"} --chunk-size "$chunk" ${nice_n:+--nice "$nice_n"} \
        $([ "$keep" = 1 ] && echo --keep)
fi

work=$(mktemp -d "$dir/blobd-fanbench-XXXXXX")
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null
    fi
    awk -v w="$work" '$2 ~ "^"w { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    if [ "$keep" = 1 ]; then echo "# work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
run() { if [ -n "$nice_n" ]; then nice -n "$nice_n" "$@"; else "$@"; fi; }

# ---- fixture: one SIZE MiB file, image with 1 MiB chunks, the data in one blob ----
mkdir -p "$work/src" "$work/cache" "$work/mnt-plain" "$work/mnt-fan"
head -c $((size * 1024 * 1024)) /dev/urandom >"$work/src/big"
"$top/scripts/mkblobimg" --quiet --out "$work/blobs" --chunk-size 1048576 --blob blob --image img="$work/src" ||
    { echo "bench/fanotify/run.sh: mkblobimg failed" >&2; exit 1; }
rm -f "$work/src/big"
g++ -std=c++20 -O2 -pthread "$top/bench/uml/randread.cpp" -o "$work/randread" ||
    { echo "bench/fanotify/run.sh: cannot build randread" >&2; exit 1; }

# mount(2) without mount(8) (which would put a loop device under a regular file); umount(8) is fine.
python3 - "$work/blobs/img" "$work/mnt-plain" "device=$work/blobs/blob" <<'PY' || skip "plain file-backed erofs mount failed (CONFIG_EROFS_FS_BACKED_BY_FILE?)"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV = 1, 2, 4
if libc.mount(sys.argv[1].encode(), sys.argv[2].encode(), b"erofs", MS_RDONLY | MS_NOSUID | MS_NODEV, sys.argv[3].encode()) != 0:
    e = ctypes.get_errno(); print(f"mount: {os.strerror(e)}", file=sys.stderr); sys.exit(1)
PY
# The bdi of a file-backed erofs mount: FS_IOC_GETFSSYSFSPATH on it says "erofs/erofs-N", and erofs
# names its sysfs dir after its bdi (/sys/class/bdi/erofs-N); see frontends/fanotify/bdi.hpp.
bdi_of() {
    python3 - "$1" <<'PY'
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
b = fcntl.ioctl(fd, (2 << 30) | (129 << 16) | (0x15 << 8) | 1, bytes(129))
print("/sys/class/bdi/" + b[1:1 + b[0]].decode().split("/", 1)[1])
PY
}
plain_bdi=$(bdi_of "$work/mnt-plain") || { echo "bench/fanotify/run.sh: no bdi for the plain mount" >&2; exit 1; }
if [ -n "$plain_ra_kb" ]; then echo "$plain_ra_kb" >"$plain_bdi/read_ahead_kb"; fi

extra=
if [ -n "$ra_kb" ]; then extra=", \"fanotify\": {\"read_ahead_kb\": $ra_kb}"; fi
cat >"$work/config.json" <<JSON
{"cache": {"dir": "$work/cache"}, "frontend": "fanotify",
 "sources": [{"type": "local", "path": "$work/blobs"}],
 "control_socket": "$work/ctl.sock", "chunk_size": $chunk$extra}
JSON
run "$bin/erofs-blobd" --config "$work/config.json" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
ctl() { "$bin/erofs-blobctl" --socket "$work/ctl.sock" "$@"; }
for _ in $(seq 1 100); do
    ctl ping >/dev/null 2>&1 && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
done
if ! ctl ping >/dev/null 2>&1; then
    if line=$(grep -m1 "frontend fanotify:" "$work/daemon.log"); then skip "the daemon's probe failed: $line"; fi
    cat "$work/daemon.log" >&2; echo "bench/fanotify/run.sh: the daemon did not start" >&2; exit 1
fi
stat_of() { ctl --raw stats | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
fan_mount() { ctl mount img "$work/mnt-fan" >/dev/null || { echo "bench/fanotify/run.sh: erofs-blobctl mount failed" >&2; exit 1; }; }
fan_umount() { ctl umount "$work/mnt-fan" >/dev/null || { echo "bench/fanotify/run.sh: erofs-blobctl umount failed" >&2; exit 1; }; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
seq_secs() { drop; run "$work/randread" "$1/big" --seq --bs "$bs" | field secs; }
rand_out() { drop; run "$work/randread" "$1/big" --ops "$ops" --seed "$seed"; }

fan_mount
fan_bdi=$(bdi_of "$work/mnt-fan") || { echo "bench/fanotify/run.sh: no bdi for the fanotify mount" >&2; exit 1; }
echo "# plain mount: $plain_bdi read_ahead_kb=$(cat "$plain_bdi/read_ahead_kb"); fanotify mount: $fan_bdi" \
     "read_ahead_kb=$(cat "$fan_bdi/read_ahead_kb"); chunk_size=$chunk; $size MiB file; $ops random 4 KiB reads"
fan_umount

cold=() filled=() rand=() fan_cold_s=() plain_s=() plain2_s=() fan_filled_s=() fan_rand_ops=() plain_rand_ops=()
for r in $(seq 1 "$reps"); do
    # Alternate which side goes first, so that neither always follows the other.
    e0=$(stat_of 's["fanotify"]["events"]')
    fan_mount
    # Each fanotify read has its own plain read next to it (the disk's speed drifts within seconds).
    if [ $((r % 2)) = 1 ]; then
        p=$(seq_secs "$work/mnt-plain"); fc=$(seq_secs "$work/mnt-fan")
    else
        fc=$(seq_secs "$work/mnt-fan"); p=$(seq_secs "$work/mnt-plain")
    fi
    e1=$(stat_of 's["fanotify"]["events"]')
    if [ $((r % 2)) = 1 ]; then
        p2=$(seq_secs "$work/mnt-plain"); ff=$(seq_secs "$work/mnt-fan")
    else
        ff=$(seq_secs "$work/mnt-fan"); p2=$(seq_secs "$work/mnt-plain")
    fi
    e2=$(stat_of 's["fanotify"]["events"]')
    if ! cmp -s "$work/mnt-plain/big" "$work/mnt-fan/big"; then
        echo "bench/fanotify/run.sh: the fanotify mount's file differs from the plain mount's" >&2; exit 1
    fi
    fan_umount
    fan_mount
    if [ $((r % 2)) = 1 ]; then
        pr=$(rand_out "$work/mnt-plain"); fr=$(rand_out "$work/mnt-fan")
    else
        fr=$(rand_out "$work/mnt-fan"); pr=$(rand_out "$work/mnt-plain")
    fi
    e3=$(stat_of 's["fanotify"]["events"]')
    fan_umount
    for v in "$p" "$p2" "$fc" "$ff"; do
        [ -n "$v" ] || { echo "bench/fanotify/run.sh: a sequential read failed" >&2; exit 1; }
    done
    fro=$(field ops_s <<<"$fr"); pro=$(field ops_s <<<"$pr")
    [ -n "$fro" ] && [ -n "$pro" ] || { echo "bench/fanotify/run.sh: a random read failed: $fr / $pr" >&2; exit 1; }
    ps=$p
    cold+=("$(awk -v a="$ps" -v b="$fc" 'BEGIN { printf "%.3f", a / b }')")
    filled+=("$(awk -v a="$p2" -v b="$ff" 'BEGIN { printf "%.3f", a / b }')")
    rand+=("$(awk -v a="$fro" -v b="$pro" 'BEGIN { printf "%.3f", a / b }')")
    fan_cold_s+=("$fc") plain_s+=("$ps") fan_filled_s+=("$ff") plain2_s+=("$p2") fan_rand_ops+=("$fro") plain_rand_ops+=("$pro")
    rand_events=$((e3 - e2))
    printf '# fanotify rep %d: plain %.3fs / cold %.3fs (%.2fx, %d events), plain %.3fs / filled %.3fs (%.2fx, %d events);' \
        "$r" "$ps" "$fc" "${cold[-1]}" $((e1 - e0)) "$p2" "$ff" "${filled[-1]}" $((e2 - e1))
    printf ' rand %s/%s ops/s (%.2fx, %d events), p50 %s/%s us\n' "$fro" "$pro" "${rand[-1]}" "$rand_events" \
        "$(field p50_us <<<"$fr")" "$(field p50_us <<<"$pr")"
done
echo "# stats after the run: $(ctl --raw stats | python3 -c 'import json,sys; s=json.load(sys.stdin); f=s["fanotify"]; print(" ".join(f"{k}={v}" for k, v in f.items()))')"

# median and min-max of the arguments
med() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
spread() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }
mibs() { awk -v s="$1" -v m="$size" 'BEGIN { printf "%.0f MiB/s", m / s }'; }
# the fastest plain time over the fastest fanotify time: the pair least disturbed by the disk
best() { awk -v a="$(printf '%s\n' "${@:2}" | sort -g | head -n 1)" -v b="$1" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t ? "PASS" : "FAIL") }'; }
rc=$(med "${cold[@]}"); rf=$(med "${filled[@]}"); rr=$(med "${rand[@]}")
tag="$size MiB, ${reps} reps, plain/fanotify time"
echo "RESULT|fanotify: cold seq read [$tag]|$(mibs "$(med "${fan_cold_s[@]}")")|plain $(mibs "$(med "${plain_s[@]}")")|$(printf '%.2f' "$rc")x ($(spread "${cold[@]}"); best/best $(best "$(printf '%s\n' "${fan_cold_s[@]}" | sort -g | head -n 1)" "${plain_s[@]}")x)|>= 0.80x|$(verdict "$rc" 0.8)"
echo "RESULT|fanotify: filled re-read [$tag]|$(mibs "$(med "${fan_filled_s[@]}")")|plain $(mibs "$(med "${plain2_s[@]}")")|$(printf '%.2f' "$rf")x ($(spread "${filled[@]}"); best/best $(best "$(printf '%s\n' "${fan_filled_s[@]}" | sort -g | head -n 1)" "${plain2_s[@]}")x)|>= 0.95x|$(verdict "$rf" 0.95)"
echo "RESULT|fanotify: $ops cold 4 KiB random reads [$tag]|$(med "${fan_rand_ops[@]}") ops/s|plain $(med "${plain_rand_ops[@]}") ops/s|$(printf '%.2f' "$rr")x ($(spread "${rand[@]}"))|-|info"
