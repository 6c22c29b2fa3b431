#!/usr/bin/env bash
# Real-kernel benchmarks of erofs-blobd: boots the User-Mode Linux test kernel once and measures,
# side by side in that boot, erofs over fscache served by erofs-blobd against
#   a. the same image on a loop device: cold sequential read of a 64 MiB file (MB/s)
#   b. the same pair: cold 4 KiB random reads, one reader (ops/s, p50/p99 latency)
#   c. a deliberately simple synchronous daemon (bench/uml/simple_daemon.cpp): 16 concurrent
#      random 4 KiB readers on a chunked image whose data lives in a blob (ops/s)
#   d. 8 mounts of images sharing one blob, with one domain_id vs without: bytes fetched
#   e. lazy start over a network (bench/lazy-start with cachefiles): a seeded 10 % of a real tree's
#      files read from mount to the last byte, blobs from nginx behind a latency + bandwidth link
#      (netem.py) in the guest: erofs-blobd vs the simple daemon (one GET per READ) vs pull-then-run
#      vs the limit computed from the workload (secs)
# Each measurement: fresh daemon, fresh cache dir, `echo 3 > drop_caches` before the timed read.
# Repeated --reps times in the boot; medians are printed. See bench/uml/README.md.
#
# usage: bench/uml/run.sh [--reps 3] [--only abcde] [--bin DIR] [--data DIR] [--storage ram|ubd]
#                         [--c-storages "ram ubd"] [--lz-tree DIR] [--lz-net 5:200]
#                         [--chunks "1048576 65536"] [--ops1 2000] [--ops16 8000] [--mem 2G]
#                         [--timeout 1800] [--keep] [--no-pin] [--no-rt] [--nice N] [--blobd-env 'NAME=VALUE ...']
#   --bin DIR    erofs-blobd and erofs-blobctl (default: $BLOBD_BIN or <repo>/build/bin)
#   --data DIR   fixture dir to make (or reuse when it holds a complete set); default: a temp dir
#   --storage    for a, b, d. ram (default): cache fs (ext4 on a loop device over a guest tmpfs
#                file), blob sources and the loop-mounted image in guest RAM: no UML block I/O,
#                stable figures of the software path. ubd: all of it on the ext4 ubd disk (its
#                host file is on /dev/shm): block I/O round trips, whose latency in UML is erratic
#   --c-storages the storages c runs on (default both: "ram ubd"), one ROW each
#   --chunks     erofs-blobd chunk sizes; the first is the headline figure, others are INFO rows
#   --lz-tree    e's tree (default /usr/share/perl: about 1200 files, 21 MiB); copied, then built
#                into image limg + blob lblob, 10 % of its files (seed 1) the working set
#   --lz-net     e's link: LATENCY_MS:MBIT (default 5:200; MBIT > 0)
#   --keep       keep the work dir (UML logs, daemon logs, raw results)
#   --no-pin     by default the UML kernel runs pinned to the host's last CPU (taskset): its
#                processes (UML kernel, guest processes under ptrace, ubd I/O thread) then never
#                bounce between CPUs, which makes guest syscalls 2-3x cheaper and steady
#   --no-rt      by default it runs as SCHED_FIFO (chrt -f 10): a loaded host (other builds) then
#                barely moves the figures. UML sleeps when idle and the kernel's RT throttling
#                leaves 5% of that CPU to others; the guest has one vCPU, so one host core at most
#   --nice N     with --no-rt: run it under `nice -n N`
#   --blobd-env  extra environment for erofs-blobd in the guest (experiments, e.g. GLIBC_TUNABLES=...)
#
# Output (stdout): one line per figure, `ROW|<benchmark>|<measured>|<baseline>|<ratio>|<target>|<status>`,
# or `SKIP|<why>` when the machine cannot run it (not root, no kernel source). Progress, the guest's
# console and per-repetition figures go to stderr. Exit status 0 unless the run itself failed
# (a missed target is a FAIL row, not an error).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)

reps=3 only=abcde lz_tree=/usr/share/perl lz_net=5:200 bin=${BLOBD_BIN:-$top/build/bin} data='' storage=ram c_storages="ram ubd" chunks="1048576 65536" ops1=2000 ops16=8000
mem=2G timeout_s=1800 keep=0 nice_n=0 rt=1 pin=1 blobd_env=
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps=${2:?}; shift 2 ;;
        --only) only=${2:?}; shift 2 ;;
        --bin) bin=${2:?}; shift 2 ;;
        --data) data=${2:?}; shift 2 ;;
        --storage) storage=${2:?}; shift 2 ;;
        --c-storages) c_storages=${2:?}; shift 2 ;;
        --chunks) chunks=${2:?}; shift 2 ;;
        --lz-tree) lz_tree=${2:?}; shift 2 ;;
        --lz-net) lz_net=${2:?}; shift 2 ;;
        --ops1) ops1=${2:?}; shift 2 ;;
        --ops16) ops16=${2:?}; shift 2 ;;
        --mem) mem=${2:?}; shift 2 ;;
        --timeout) timeout_s=${2:?}; shift 2 ;;
        --keep) keep=1; shift ;;
        --nice) nice_n=${2:?}; shift 2 ;;
        --rt) rt=1; shift ;;
        --no-rt) rt=0; shift ;;
        --no-pin) pin=0; shift ;;
        --blobd-env) blobd_env=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/uml/run.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done

skip() { echo "SKIP|$*"; exit 0; }
log() { echo "bench/uml: $*" >&2; }
[ "$(id -u)" = 0 ] || skip "uml benchmarks need root (User-Mode Linux, mounts, /dev/cachefiles)"
if [ -z "${BLOBD_UML_KERNEL:-}" ]; then
    ls /usr/src/linux-source-6.1.tar.* >/dev/null 2>&1 || skip "linux-source-6.1 not installed: no UML kernel (scripts/install-deps.sh)"
fi
[[ $lz_net =~ ^[0-9.]+:[0-9.]*[1-9][0-9.]*$ ]] || { echo "bench/uml/run.sh: --lz-net wants LATENCY_MS:MBIT, MBIT > 0" >&2; exit 2; }
tools=(mkfs.erofs mkfs.ext4 losetup g++ python3)
[[ $only == *e* ]] && tools+=(nginx curl)
for t in "${tools[@]}"; do
    command -v "$t" >/dev/null || skip "$t not installed"
done
bin_abs=$(cd "$bin" 2>/dev/null && pwd) || skip "no build dir $bin (build erofs-blobd first, or --bin DIR)"
bin=$bin_abs
[ -x "$bin/erofs-blobd" ] && [ -x "$bin/erofs-blobctl" ] || skip "erofs-blobd/erofs-blobctl not built in $bin"

start=$(date +%s)
log "host load at start: $(uptime)"
kernel=${BLOBD_UML_KERNEL:-$("$top/scripts/build-uml-kernel.sh" | tail -n1)} || { echo "bench/uml: kernel build failed" >&2; exit 1; }
[ -x "$kernel" ] || { echo "bench/uml: no UML kernel at '$kernel'" >&2; exit 1; }
export BLOBD_UML_KERNEL=$kernel

work=$(mktemp -d /tmp/uml-bench.XXXXXX)
disk_dir=
cleanup() {
    [ -n "$disk_dir" ] && rm -rf "$disk_dir"
    if [ $keep = 1 ]; then log "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A snapshot of the daemon binaries: a rebuild of the build dir during the run cannot change them.
mkdir -p "$work/bin" "$work/tools"
cp "$bin/erofs-blobd" "$bin/erofs-blobctl" "$work/bin/" || { echo "bench/uml: cannot copy the binaries" >&2; exit 1; }
log "erofs-blobd: $bin/erofs-blobd ($(stat -c '%y' "$bin/erofs-blobd" | cut -d. -f1))"
# The two tools, built standalone (the baseline daemon needs only the vendored uapi header).
g++ -std=c++20 -O2 -Wall -Wextra -I"$top" "$here/simple_daemon.cpp" -o "$work/tools/simple_daemon" &&
    g++ -std=c++20 -O2 -Wall -Wextra -pthread "$here/randread.cpp" -o "$work/tools/randread" ||
    { echo "bench/uml: building the tools failed" >&2; exit 1; }

# Fixtures: src/big/data.bin (64 MiB random): plain image p64, chunked image c64 + blob blob64;
# src/dom (about 16.6 MiB: 8 x 2 MiB + 32 small files): img1..img8, identical bootstraps, sharing dblob.
[ -n "$data" ] || data=$work/data
mkdir -p "$data"; data=$(cd "$data" && pwd)
if [ ! -s "$data/sizes" ]; then
    log "making fixtures in $data"
    rm -rf "$data/src" "$data/blobs"
    mkdir -p "$data/src/big" "$data/src/dom/lib" "$data/src/dom/etc" "$data/blobs"
    head -c $((64 << 20)) /dev/urandom >"$data/src/big/data.bin"
    for i in 1 2 3 4 5 6 7 8; do head -c $((2 << 20)) /dev/urandom >"$data/src/dom/lib/part$i.so"; done
    for i in $(seq 1 32); do head -c $((i * 1237)) /dev/urandom >"$data/src/dom/etc/conf$i"; done
    mk=$top/scripts/mkblobimg
    dom_images=()
    for i in 1 2 3 4 5 6 7 8; do dom_images+=(--image "img$i=$data/src/dom"); done
    "$mk" --quiet --out "$data/blobs" --plain p64="$data/src/big" --blob blob64 --image c64="$data/src/big" >&2 &&
        "$mk" --quiet --out "$data/blobs" --blob dblob "${dom_images[@]}" >&2 ||
        { echo "bench/uml: mkblobimg failed" >&2; exit 1; }
    (cd "$data/blobs" && for f in *; do echo "$f $(stat -c %s "$f")"; done) >"$data/sizes.tmp" && mv "$data/sizes.tmp" "$data/sizes"
fi
# e: a copy of a real tree (its files as they are on this machine) as image limg + blob lblob, and
# the working set (bench/lazy-start/workset.py: seeded, packages in a random order).
if [[ $only == *e* ]] && [ ! -s "$data/lz.list" ]; then
    [ -d "$lz_tree" ] || skip "--lz-tree $lz_tree is not a directory"
    log "making the lazy-start fixture from $lz_tree"
    rm -rf "$data/src/lz"; mkdir -p "$data/src/lz"
    cp -a "$lz_tree/." "$data/src/lz/" &&
        "$top/scripts/mkblobimg" --quiet --out "$data/blobs" --blob lblob --image limg="$data/src/lz" >&2 &&
        python3 "$top/bench/lazy-start/workset.py" pick "$data/src/lz" --seed 1 --percent 10 >"$data/lz.list.tmp" &&
        mv "$data/lz.list.tmp" "$data/lz.list" || { echo "bench/uml: the lazy-start fixture failed" >&2; exit 1; }
    (cd "$data/blobs" && for f in *; do echo "$f $(stat -c %s "$f")"; done) >"$data/sizes.tmp" && mv "$data/sizes.tmp" "$data/sizes"
fi

# The cache disk (ubd0): on the host's /dev/shm when possible. ubd turns every guest flush (ext4
# journal commits, which cachefiles' block allocations cause) into an fsync() of the disk file:
# on a real host disk shared with other jobs that makes the figures swing several-fold. Inode
# tables and journal are initialised now, so no ext4lazyinit thread writes during the measurements.
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=$work
disk_dir=$(mktemp -d "$shm/uml-bench-disk.XXXXXX")
disk=$disk_dir/cache.ext4
truncate -s 2G "$disk" && mkfs.ext4 -F -q -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 "$disk" ||
    { echo "bench/uml: cannot make the cache disk $disk" >&2; rm -rf "$disk_dir"; exit 1; }
sched=()
cpu=$(( $(nproc) - 1 ))
if [ $pin = 1 ] && taskset -c "$cpu" true 2>/dev/null; then sched+=(taskset -c "$cpu"); fi
if [ $rt = 1 ] && chrt -f 10 true 2>/dev/null; then sched+=(chrt -f 10); else sched+=(nice -n "$nice_n"); fi
log "booting UML: reps=$reps only=$only storage=$storage c-storages='$c_storages'"
log "          chunks='$chunks' ops1=$ops1 ops16=$ops16 mem=$mem sched='${sched[*]}'${blobd_env:+ blobd-env=$blobd_env}"
"${sched[@]}" "$top/scripts/run-uml.sh" --timeout "$timeout_s" --mem "$mem" --disk "$disk" --workdir "$work/uml" \
    --log "$work/uml/kernel.log" \
    --env BENCH_BIN="$work/bin" --env BENCH_TOOLS="$work/tools" --env BENCH_DATA="$data" \
    --env BENCH_REPS="$reps" --env BENCH_ONLY="$only" --env BENCH_STORAGE="$storage" --env BENCH_C_STORAGES="$c_storages" --env BENCH_CHUNKS="$chunks" \
    --env BENCH_OPS1="$ops1" --env BENCH_OPS16="$ops16" --env BENCH_BLOBD_ENV="$blobd_env" \
    --env BENCH_LZ="$lz_net" --env BENCH_LZ_TOOLS="$top/bench/lazy-start" \
    -- "$here/guest.sh" >&2
rc=$?
rm -rf "$disk_dir"
log "host load at end: $(uptime)"
log "whole run: $(( $(date +%s) - start ))s"
if [ $rc != 0 ]; then
    keep=1
    why="exit $rc"; [ -s "$work/uml/logs/hang.txt" ] && why="a step hung: $work/uml/logs/hang.txt"
    echo "bench/uml: the guest run failed ($why); logs in $work/uml" >&2
fi

# The host's own file-to-file copy rate on tmpfs (RAM, no UML): a ceiling for any copy in the guest.
if [[ $only == *a* ]] && [ -s "$work/uml/results" ]; then
    src=$disk_dir.copy
    if head -c $((256 << 20)) /dev/zero >"$src" 2>/dev/null; then
        for r in $(seq 1 "$reps"); do
            s=$(date +%s%N)
            dd if="$src" of="$src.out" bs=1M status=none && e=$(date +%s%N) &&
                echo "R|$r|host.copy.mbps|$(( (256 << 20) * 1000 / (e - s) ))" >>"$work/uml/results"
            rm -f "$src.out"
        done
    fi
    rm -f "$src" "$src.out"
fi

# A guest that "passed" without figures, or a summary that crashed, is a failed run, not an empty one.
py_rc=0
[ -s "$work/uml/results" ] || { [ $rc = 0 ] && rc=1 why="the guest recorded no figures"; keep=1; }
[ -s "$work/uml/results" ] && python3 - "$work/uml/results" "$chunks" "$storage" "$c_storages" "$lz_net" <<'PY' || py_rc=$?
import statistics, sys
from collections import defaultdict

path, chunks, storage, c_storages, lz_net = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4].split(), sys.argv[5]
vals = defaultdict(dict)   # key -> rep -> value
for line in open(path):
    parts = line.rstrip("\n").split("|")
    if len(parts) != 4 or parts[0] != "R":
        continue
    _, rep, key, value = parts
    try:
        vals[key][int(rep)] = float(value)
    except ValueError:
        pass

def med(key):
    v = list(vals[key].values())
    return statistics.median(v) if v else None

def ratio(mkey, bkey):
    """Median of the per-repetition ratios (each pair measured back to back)."""
    r = [vals[mkey][k] / vals[bkey][k] for k in vals[mkey] if k in vals[bkey] and vals[bkey][k]]
    return statistics.median(r) if r else None

print("bench/uml: medians of every raw figure (key: median [per repetition]):", file=sys.stderr)
for key in sorted(vals):
    v = [vals[key][r] for r in sorted(vals[key])]
    print(f"bench/uml:   {key}: {statistics.median(v):g} {[round(x, 2) for x in v]}", file=sys.stderr)

def fmt(v, nd):
    return "-" if v is None else f"{v:.{nd}f}"

def row(name, mkey, bkey, nd, target=None, status=None):
    m, b, r = med(mkey), med(bkey), ratio(mkey, bkey)
    if m is None or b is None:
        return
    if status is None:
        if target is None:
            status = "INFO"
        else:
            op, t = target[:2], float(target[2:])
            ok = r >= t if op == ">=" else r <= t
            status = "PASS" if ok else "FAIL"
    per_rep = " ".join(f"{vals[mkey][k]:.{nd}f}/{vals[bkey][k]:.{nd}f}" for k in sorted(vals[mkey]) if k in vals[bkey])
    print(f"bench/uml: {name}: per repetition {per_rep}", file=sys.stderr)
    print(f"ROW|{name}|{fmt(m, nd)}|{fmt(b, nd)}|{fmt(r, 2)}|{target or '-'}|{status}")

def kib(c):
    c = int(c)
    return f"{c >> 20}M" if c >= 1 << 20 else f"{c >> 10}K"

head = chunks[0]
# The >= 0.9x-of-loop target is retired (issue 16): the source -> cache file copy the cold path
# must do bounds it (rows below); bench/lazy-start is the real-kernel figure users feel. Info only.
row("uml cold seq read MB/s (blobd vs loop)", "seq.blobd.mbps", "seq.loop.mbps", 1)
for c in chunks[1:]:
    row(f"uml cold seq read MB/s (blobd chunk {kib(c)} vs loop)", f"seq.blobd{c}.mbps", "seq.loop.mbps", 1)
row("uml cold seq read MB/s (simple daemon vs loop)", "seq.simple.mbps", "seq.loop.mbps", 1)
row("uml cache-hit seq read MB/s (blobd, data in cache file, vs cold loop)", "seq.blobd.warm.mbps", "seq.loop.mbps", 1)
# Why the cold read stays far below the loop device: its time is the cache-hit read plus the
# daemon's work (source -> cache file, round trips), and one vCPU overlaps nothing. Per repetition:
#   blobd's copy rate   1 / (1/cold - 1/cache-hit): the daemon's share of the cold read, as MB/s
#   needed copy rate    1 / (1/(0.9 loop) - 1/cache-hit): what any daemon's share would have to be
#                       for 0.9x of the loop device (inf when the cache-hit read alone is slower)
# compared with dd copying the source into a cache file (oflag=direct, like the anon fd) in the
# guest, and with dd copying a file to a file on the host's tmpfs (no UML, no disk: RAM speed).
def per_rep(out, f, *keys):
    for r in vals[keys[0]]:
        xs = [vals[k].get(r) for k in keys]
        if all(xs):
            vals[out][r] = f(*xs)
per_rep("seq.blobd.copy.mbps", lambda c, w: 1 / (1 / c - 1 / w) if c < w else float("inf"),
        "seq.blobd.mbps", "seq.blobd.warm.mbps")
per_rep("seq.need.mbps", lambda l, w: 1 / (1 / (0.9 * l) - 1 / w) if 0.9 * l < w else float("inf"),
        "seq.loop.mbps", "seq.blobd.warm.mbps")
row("uml cold seq: source -> cache file MB/s (blobd's share of the cold read vs dd oflag=direct)",
    "seq.blobd.copy.mbps", "seq.copy.mbps", 1)
row("uml cold seq: copy MB/s any daemon needs for 0.9x of loop (vs blobd's)", "seq.need.mbps", "seq.blobd.copy.mbps", 1)
row("uml cold seq: that needed copy MB/s vs the host's own tmpfs file copy (dd, no UML)", "seq.need.mbps", "host.copy.mbps", 1)
row("uml cold 4K rand read ops/s, 1 reader (blobd vs loop)", "rand1.blobd.ops", "rand1.loop.ops", 0)
row("uml cold 4K rand read p50 us, 1 reader (blobd vs loop)", "rand1.blobd.p50", "rand1.loop.p50", 0)
row("uml cold 4K rand read p99 us, 1 reader (blobd vs loop)", "rand1.blobd.p99", "rand1.loop.p99", 0)
for c in chunks[1:]:
    row(f"uml cold 4K rand read ops/s, 1 reader (blobd chunk {kib(c)} vs loop)", f"rand1.blobd{c}.ops", "rand1.loop.ops", 0)
    row(f"uml cold 4K rand read p50 us, 1 reader (blobd chunk {kib(c)} vs loop)", f"rand1.blobd{c}.p50", "rand1.loop.p50", 0)
row("uml cold 4K rand read ops/s, 1 reader (simple daemon vs loop)", "rand1.simple.ops", "rand1.loop.ops", 0)
row("uml cache-hit 4K rand read ops/s, 1 reader (blobd, data in cache file, vs cold loop)", "rand1.blobd.warm.ops", "rand1.loop.ops", 0)
where = {"ram": "in RAM", "ubd": "on ubd disk"}
for st in c_storages:
    w = where.get(st, st)
    row(f"uml 16 rand readers ops/s, {w} (blobd vs simple daemon)", f"rand16.{st}.blobd.ops", f"rand16.{st}.simple.ops", 0, ">=2")
    row(f"uml 16 rand readers p99 us, {w} (blobd vs simple daemon)", f"rand16.{st}.blobd.p99", f"rand16.{st}.simple.p99", 0)
    row(f"uml 16 rand readers: kernel READs, {w} (blobd vs simple daemon)", f"rand16.{st}.blobd.reads", f"rand16.{st}.simple.reads", 0)
    for c in chunks[1:]:
        row(f"uml 16 rand readers ops/s, {w} (blobd chunk {kib(c)} vs simple daemon)", f"rand16.{st}.blobd{c}.ops", f"rand16.{st}.simple.ops", 0, ">=2", "INFO")
# e: lazy start. Times in seconds; "vs" rows are measured / baseline, so "simple daemon vs
# erofs-blobd" is how many times faster erofs-blobd is.
if "lz.blobd.secs" in vals:
    lat, mbit = lz_net.split(":")
    net = f"{lat} ms, {mbit} Mbit/s"
    row(f"uml lazy start secs [{net}] (erofs-blobd vs the limit)", "lz.blobd.secs", "lz.limit.secs", 3, "<=1.3")
    row(f"uml lazy start secs [{net}] (simple daemon vs erofs-blobd)", "lz.simple.secs", "lz.blobd.secs", 3, ">=2")
    row(f"uml lazy start secs [{net}] (pull-then-run vs erofs-blobd)", "lz.pull.secs", "lz.blobd.secs", 3, ">=3")
    # The most any fetcher that does not know the working set could reach against pull-then-run.
    row(f"uml lazy start secs [{net}] (pull-then-run vs the limit)", "lz.pull.secs", "lz.limit.secs", 3)
    row(f"uml lazy start kernel READs [{net}] (erofs-blobd vs simple daemon)", "lz.blobd.reads", "lz.simple.reads", 0)
    row(f"uml lazy start round trip ms [{net}] (measured on the link vs the latency set)", "lz.rtt_ms", "lz.lat_ms", 3)
# d: bytes fetched for the blob by 8 mounts, against the blob's size (MiB)
if "dom.with.blob_fetched" in vals:
    blob = med("blob_size")
    for k in ("dom.with.blob_fetched", "dom.without.blob_fetched"):
        vals[k + ".mib"] = {r: v / 1048576 for r, v in vals[k].items()}
    vals["blob.mib"] = {r: blob / 1048576 for r in vals["dom.with.blob_fetched"]}
    b = blob / 1048576
    def fixed(name, key, expect):
        m = med(key)
        r = m / b
        status = "PASS" if abs(r - expect) < 0.01 * expect else "FAIL"
        print(f"ROW|{name}|{m:.2f}|{b:.2f}|{r:.2f}|={expect}x|{status}")
    fixed("uml 8 mounts, one domain: MiB fetched for the blob (vs blob MiB)", "dom.with.blob_fetched.mib", 1)
    fixed("uml 8 mounts, no domain: MiB fetched for the blob (vs blob MiB)", "dom.without.blob_fetched.mib", 8)
    row("uml 8 mounts: MiB fetched (domain vs no domain)", "dom.with.blob_fetched.mib", "dom.without.blob_fetched.mib", 2, "<=0.125")
    row("uml 8 mounts: secs to read all (domain vs no domain)", "dom.with.secs", "dom.without.secs", 2)
PY
if [ $py_rc != 0 ] && [ $rc = 0 ]; then rc=1 why="the summary (python) failed with exit $py_rc"; keep=1; fi
if [ $rc != 0 ]; then
    echo "ROW|uml benchmark run ($why)|-|-|-|completes|FAIL"
    exit 1
fi
