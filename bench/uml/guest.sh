#!/bin/bash
# Guest side of the real-kernel benchmarks (bench/uml/run.sh boots UML with this as the guest
# script; not meant to be run by hand). Runs every measurement BENCH_REPS times in this one boot,
# each with a fresh daemon, a fresh cache dir and dropped page caches, and appends raw figures to
# $BLOBD_UML_RUN/results as `R|<rep>|<key>|<value>` (run.sh turns them into ROW lines).
#
# Environment (run.sh passes it with --env):
#   BENCH_BIN     dir with erofs-blobd and erofs-blobctl
#   BENCH_TOOLS   dir with simple_daemon and randread (built by run.sh)
#   BENCH_DATA    fixtures: blobs/ (images and blobs, named by cookie), src/ (their trees), sizes
#   BENCH_REPS    repetitions (3)        BENCH_ONLY   subset of "abcde" to run (abcde)
#   BENCH_OPS1    random reads for the single reader (2000)
#   BENCH_OPS16   random reads in all for the 16 readers (8000)
#   BENCH_CHUNKS  erofs-blobd chunk sizes to measure; the first is the headline (1048576 65536)
#   BENCH_STORAGE    storage for a, b and d: ram (default) or ubd
#   BENCH_C_STORAGES storages c runs on, in this order ("ram ubd")
#     ram: the cache dir is on ext4 on a loop device over a guest tmpfs file (mounted with
#          discard); blob sources and the loop-mounted image are on tmpfs: no UML block I/O at all,
#          the figures are the software path (daemon, fscache, copies), CPU-bound on 1 vCPU.
#     ubd: cache dir, blob sources and the loop-mounted image on the ext4 ubd disk (its host file
#          is on the host's /dev/shm): every cache write / source read is a UML block I/O round
#          trip, whose completion latency is erratic (0.5..10 ms), like a slow disk.
#   BENCH_LZ      e's network: LATENCY_MS:MBIT (5:200)
#   BENCH_LZ_TOOLS   bench/lazy-start (netem.py, workset.py)
#   BENCH_BLOBD_ENV  extra NAME=VALUE words for erofs-blobd's environment (experiments; default none)
#   BENCH_STEP_TIMEOUT  seconds one timed step may take before it counts as hung (300)
# A hung step (a reader that never returns) is fatal: the kernel's blocked tasks (sysrq-w), the
# readers' kernel stacks and the daemon's counters are saved in $BLOBD_UML_RUN/logs/hang.txt.
set -u
: "${BENCH_BIN:?}" "${BENCH_TOOLS:?}" "${BENCH_DATA:?}" "${BLOBD_UML_RUN:?}" "${BLOBD_CACHE_MNT:?}"
REPS=${BENCH_REPS:-3}
ONLY=${BENCH_ONLY:-abcde}
BENCH_LZ=${BENCH_LZ:-5:200}
OPS1=${BENCH_OPS1:-2000}
OPS16=${BENCH_OPS16:-8000}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-300}
read -r -a CHUNKS <<<"${BENCH_CHUNKS:-1048576 65536}"
OUT=$BLOBD_UML_RUN/results
LOGS=$BLOBD_UML_RUN/logs
STORAGE=${BENCH_STORAGE:-ram}
read -r -a C_STORAGES <<<"${BENCH_C_STORAGES:-ram ubd}"
SOCK=/run/blobd/ctl.sock
RR=$BENCH_TOOLS/randread
: >"$OUT"
mkdir -p "$LOGS" /run/blobd /run/mnt
rep=0

# Process creation is slow in UML (a host process per exec): the helpers below use bash builtins.
us() { echo "${EPOCHREALTIME/./}"; }
T0=$(us) CLK_TCK=$(getconf CLK_TCK)
say() { local t=$(( ($(us) - T0) / 100000 )); printf '[%5d.%ds] %s\n' $((t / 10)) $((t % 10)) "$*"; }
die() { echo "guest: FAIL: $*" >&2; exit 1; }
rec() { echo "R|$rep|$1|$2" >>"$OUT"; say "  $1 = $2"; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
field() {  # field KEY LINE: the value of KEY=VALUE in a "RESULT ..." line
    [[ " $2 " =~ \ $1=([^ ]*)\  ]] && echo "${BASH_REMATCH[1]}"
}
size_of() { awk -v n="$1" '$1 == n { print $2 }' "$BENCH_DATA/sizes"; }

# ---- hang guard: run a step; if it has not finished after STEP_TIMEOUT s, dump state and fail ----
hang_dump() {  # hang_dump WHAT
    {
        echo "=== hang in: $1 (after ${STEP_TIMEOUT}s)"
        if [ -n "${BLOBD_PID:-}" ]; then
            echo "--- erofs-blobd counters"
            timeout 10 "$BENCH_BIN/erofs-blobctl" --socket "$SOCK" stats 2>&1
            echo "--- erofs-blobd threads"
            for t in /proc/"$BLOBD_PID"/task/*; do echo "$t $(cat "$t/comm") wchan=$(cat "$t/wchan")"; cat "$t/stack" 2>/dev/null; done
        fi
        [ -n "${SIMPLE_PID:-}" ] && { echo "--- simple_daemon"; cat "/proc/$SIMPLE_PID/stack" 2>/dev/null; }
        echo "--- tasks in D state"
        for p in /proc/[0-9]*; do
            s=$(awk '{ print $3 }' "$p/stat" 2>/dev/null)
            [ "$s" = D ] || continue
            echo "$p $(cat "$p/comm") wchan=$(cat "$p/wchan")"; cat "$p/stack" 2>/dev/null
        done
        echo w >/proc/sysrq-trigger; sleep 1
        echo "--- dmesg (sysrq-w: blocked tasks)"
        dmesg | tail -n 300
    } >"$LOGS/hang.txt" 2>&1
}
guard() {  # guard WHAT CMD...: runs CMD (its stdout passes through), returns its status
    local what=$1; shift
    "$@" &
    local pid=$!
    sleep "$STEP_TIMEOUT" >/dev/null 2>&1 &
    local timer=$! first rc
    wait -n -p first "$pid" "$timer"; rc=$?
    if [ "$first" = "$timer" ]; then
        hang_dump "$what"
        echo "guest: HANG: $what did not finish in ${STEP_TIMEOUT}s; state saved in $LOGS/hang.txt" >&2
        kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        return 124
    fi
    kill "$timer" 2>/dev/null; wait "$timer" 2>/dev/null
    return $rc
}

# ---- storages: where the cache dir (DISK), the blob sources and the loop-mounted image (SRC) live ----
# ram: ext4 on a loop device over a guest tmpfs file + sources on tmpfs; ubd: the ext4 ubd disk.
truncate -s 1G /run/cachefs.img
mkfs.ext4 -F -q -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 /run/cachefs.img || die "mkfs.ext4 failed"
CACHEDEV=$(losetup -f --show /run/cachefs.img) || die "losetup failed"
mkdir -p /run/cachefs
# discard: the blocks rm -rf frees between runs are punched out of the tmpfs file (guest RAM)
mount -t ext4 -o discard "$CACHEDEV" /run/cachefs || die "cannot mount the cache fs"
use_storage() {
    case "$1" in
        ram) DISK=/run/cachefs SRC=/run/src ;;
        ubd) DISK=$BLOBD_CACHE_MNT SRC=$BLOBD_CACHE_MNT/src ;;
        *) die "unknown storage '$1' (ram or ubd)" ;;
    esac
}
for st in $(printf '%s\n' "$STORAGE" "${C_STORAGES[@]}" | sort -u); do
    use_storage "$st"
    mkdir -p "$SRC" && cp "$BENCH_DATA"/blobs/* "$SRC"/ || die "cannot copy the blobs to $SRC"
done
sync
say "storage $STORAGE for a, b, d; c on: ${C_STORAGES[*]}; guest: $(uname -r), $(nproc) cpu, $(awk '/MemTotal/ { print int($2 / 1024) " MiB" }' /proc/meminfo)"

# ---- fresh cache dirs: one per run, the previous one removed ----
run_no=0 CACHE=
new_cache() {
    [ -n "$CACHE" ] && rm -rf "$CACHE"
    run_no=$((run_no + 1))
    CACHE=$DISK/cache.$run_no
    mkdir -p "$CACHE"
}

# ---- the daemons: start_daemon blobd CHUNK | start_daemon simple; stop_daemon ----
# erofs-blobd is started and stopped by the e2e tests' helpers (blobd_start, blobd_stop).
. "${BASH_SOURCE[0]%/*}/../../tests/e2e/daemon.sh" || die "cannot source tests/e2e/daemon.sh"
DAEMON='' DAEMON_PID='' BLOBD_PID='' SIMPLE_PID=''
# start_daemon blobd CHUNK|default [SOURCES_JSON] | start_daemon simple: SIMPLE_SOURCE says where
# the simple daemon reads blobs (default: --blobs $SRC); SOURCES_JSON erofs-blobd's (default: local $SRC).
SIMPLE_SOURCE=()
start_daemon() {
    new_cache
    DAEMON=$1
    if [ "$1" = blobd ]; then
        local chunk= sources="[{\"type\": \"local\", \"path\": \"$SRC\"}]"
        [ "$2" = default ] || chunk="\"chunk_size\": $2, "
        [ -z "${3:-}" ] || sources=$3
        cat >/run/blobd/config.json <<JSON
{"cache": {"dir": "$CACHE", "tag": "bench"}, $chunk
 "sources": $sources, "control_socket": "$SOCK", "log_level": "notice"}
JSON
        local rc=0
        # shellcheck disable=SC2086  # BENCH_BLOBD_ENV: NAME=VALUE words (experiments, e.g. GLIBC_TUNABLES)
        blobd_start "$BENCH_BIN" /run/blobd/config.json "$SOCK" "$LOGS/blobd.log" ${BENCH_BLOBD_ENV:-} || rc=$?
        BLOBD_PID=$DAEMON_PID
        case $rc in
            0) ;;
            1) die "erofs-blobd exited at startup (see $LOGS/blobd.log)" ;;
            *) die "erofs-blobd did not answer on $SOCK" ;;
        esac
    else
        : >/run/simple.log
        local src=(--blobs "$SRC")
        [ ${#SIMPLE_SOURCE[@]} = 0 ] || src=("${SIMPLE_SOURCE[@]}")
        "$BENCH_TOOLS/simple_daemon" --cache-dir "$CACHE" --tag bench "${src[@]}" 2>/run/simple.log &
        SIMPLE_PID=$! DAEMON_PID=$!
        for _ in $(seq 1 200); do
            grep -q bound /run/simple.log && return 0
            kill -0 "$SIMPLE_PID" 2>/dev/null || { cat /run/simple.log >&2; die "simple_daemon exited at startup"; }
            sleep 0.05
        done
        die "simple_daemon did not bind"
    fi
}
bstat() { timeout 20 "$BENCH_BIN/erofs-blobctl" --socket "$SOCK" stats --get "$1"; }
# daemon_counters KEY: what the daemon did for the timed part (before any verification read):
# kernel READs served, bytes fetched (erofs-blobd), page faults and CPU time of the daemon process.
daemon_counters() {
    local key=$1 reads
    if [ "$DAEMON" = blobd ]; then
        reads=$(bstat reads)
        local b; b=$(bstat bytes_fetched)
        rec "$key.fetched_mib" "$((b / 1048576)).$((b % 1048576 * 10 / 1048576))"
    else
        local n; n=$(grep -c 'counters:' /run/simple.log)
        kill -USR1 "$SIMPLE_PID"
        for _ in $(seq 1 100); do [ "$(grep -c 'counters:' /run/simple.log)" -gt "$n" ] && break; sleep 0.02; done
        reads=$(field reads "$(grep 'counters:' /run/simple.log | tail -n1)")
    fi
    rec "$key.reads" "$reads"
    local st; st=$(cat "/proc/$DAEMON_PID/stat") || return 0
    st=${st##*) }   # the fields after "(comm) ": index 0 is field 3 (state)
    local a; read -r -a a <<<"$st"
    rec "$key.minflt" "${a[7]}"
    rec "$key.cpu_ms" "$(( (a[11] + a[12]) * 1000 / CLK_TCK ))"
}
stop_daemon() {
    local rc=0
    blobd_stop || rc=$?   # SIGTERM and wait: the same for simple_daemon
    [ "$rc" = 0 ] || die "$DAEMON exited with $rc after SIGTERM"
    [ "$DAEMON" = simple ] && cat /run/simple.log >>"$LOGS/simple.log"
    DAEMON='' DAEMON_PID='' BLOBD_PID='' SIMPLE_PID=''
}

# ---- mounts ----
LOOPDEV=
mount_loop() {  # mount_loop IMAGE MNT
    LOOPDEV=$(losetup -f --show -r "$1") || die "losetup $1 failed"
    mkdir -p "$2"; mount -t erofs -o ro "$LOOPDEV" "$2" || die "mount $LOOPDEV failed"
}
umount_loop() { umount "$1" && losetup -d "$LOOPDEV"; LOOPDEV=; }
mount_fs() {  # mount_fs MNT OPTS
    mkdir -p "$1"; timeout 120 mount -t erofs none -o "$2" "$1" || die "mount -o $2 $1 failed"
}
verify() {  # verify FILE REF: only in the first repetition (costs a full read)
    [ "$rep" = 1 ] || return 0
    guard "verify $1" cmp -s "$1" "$2" || die "$1 differs from $2"
    say "  verified $1 byte for byte"
}

BIG=data.bin
REF=$BENCH_DATA/src/big/$BIG

report() {  # MODE KEY RESULT-LINE
    if [ "$1" = seq ]; then rec "$2.mbps" "$(field MBps "$3")"
    else
        rec "$2.ops" "$(field ops_s "$3")"; rec "$2.p50" "$(field p50_us "$3")"; rec "$2.p99" "$(field p99_us "$3")"
    fi
}
timed_read() {  # timed_read MODE(seq|rand1|rand16) FILE
    case "$1" in
        seq) guard "seq read $2" "$RR" "$2" --seq --bs 1M ;;
        rand1) guard "random reads $2" "$RR" "$2" --threads 1 --ops "$OPS1" --seed "$rep" ;;
        rand16) guard "16 random readers $2" "$RR" "$2" --threads 16 --ops "$OPS16" --seed "$rep" ;;
    esac
}

# a. cold sequential read of the 64 MiB file; b. cold 4 KiB random reads, one reader:
# the plain image p64 through a daemon (fscache) ...
measure_plain() {  # DAEMON(blobd|simple) MODE(seq|rand1) CHUNK KEY
    start_daemon "$1" "$3"
    mount_fs /run/mnt/p fsid=p64
    drop
    local out; out=$(timed_read "$2" /run/mnt/p/$BIG) || die "randread failed: $out"
    daemon_counters "$4"
    # The same reads again from a cold page cache but a warm cache file: the steady state of an
    # image whose data was fetched once (no daemon work expected: erofs -> cachefiles -> ext4).
    local r0='' warm
    [ "$1" = blobd ] && r0=$(bstat reads)
    drop
    warm=$(timed_read "$2" /run/mnt/p/$BIG) || die "randread failed: $warm"
    [ "$1" = blobd ] && rec "$4.warm.reads" "$(( $(bstat reads) - r0 ))"
    verify /run/mnt/p/$BIG "$REF"
    umount /run/mnt/p
    stop_daemon
    report "$2" "$4" "$out"
    report "$2" "$4.warm" "$warm"
}
# ... vs the same image on a loop device
measure_loop() {  # MODE KEY
    mount_loop "$SRC/p64" /run/mnt/l
    drop
    local out; out=$(timed_read "$1" /run/mnt/l/$BIG) || die "randread failed: $out"
    verify /run/mnt/l/$BIG "$REF"
    umount_loop /run/mnt/l
    report "$1" "$2" "$out"
}
# A reference for the daemon's share of a cold sequential read: the copy such a read cannot avoid
# (the source into the cache file; the anon fd writes through to the backing file with direct I/O:
# fs/cachefiles/ondemand.c, io.c), done by dd alone (1 MiB blocks, oflag=direct) from a cold page
# cache. run.sh sets blobd's effective copy rate (from its cold and cache-hit reads) beside it.
measure_copy() {  # KEY
    new_cache
    drop
    local s e bytes
    bytes=$(size_of p64)
    s=$(us)
    guard "copy into a cache file" dd if="$SRC/p64" of="$CACHE/copy" bs=1M oflag=direct status=none || die "dd failed"
    e=$(us)
    rec "$1.mbps" "$(( bytes / (e - s) )).$(( bytes * 10 / (e - s) % 10 ))"
}

# c. 16 concurrent random readers on the chunked image c64 (its data in blob64, 4 KiB erofs chunks)
measure_rand16() {  # DAEMON(blobd|simple) CHUNK KEY
    start_daemon "$1" "$2"
    mount_fs /run/mnt/c fsid=c64
    drop
    local out; out=$(timed_read rand16 /run/mnt/c/$BIG) || die "randread failed: $out"
    daemon_counters "$3"
    verify /run/mnt/c/$BIG "$REF"
    umount /run/mnt/c
    stop_daemon
    report rand "$3" "$out"
}

# d. 8 mounts (img1..img8, one shared blob dblob) read concurrently, with and without a domain
read_all_mounts() {
    local i pids=()
    for i in 1 2 3 4 5 6 7 8; do
        (set -o pipefail; cd /run/mnt/d$i && find . -type f -print0 | sort -z | xargs -0 cat >/dev/null) &
        pids+=($!)
    done
    local rc=0
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    return $rc
}
measure_domain() {  # with|without KEY
    start_daemon blobd "${CHUNKS[0]}"
    local i opts
    for i in 1 2 3 4 5 6 7 8; do
        opts=fsid=img$i; [ "$1" = with ] && opts="$opts,domain_id=bench"
        mount_fs /run/mnt/d$i "$opts"
    done
    drop
    local before; before=$(bstat bytes_fetched)
    local s e; s=$(us)
    guard "8 readers on 8 mounts $1 domain" read_all_mounts || die "a reader failed"
    e=$(us)
    local after opens; after=$(bstat bytes_fetched) opens=$(bstat opens)
    if [ "$rep" = 1 ]; then
        for i in 1 8; do diff -r "$BENCH_DATA/src/dom" /run/mnt/d$i >/dev/null || die "/run/mnt/d$i differs"; done
        say "  verified mounts d1 and d8 against the source tree"
    fi
    for i in 1 2 3 4 5 6 7 8; do umount /run/mnt/d$i; done
    stop_daemon
    rec "$2.blob_fetched" "$((after - before))"
    rec "$2.total_fetched" "$after"
    rec "$2.opens" "$opens"
    rec "$2.secs" "$(( (e - s) / 1000000 )).$(printf %03d $(( (e - s) / 1000 % 1000 )))"
}

# e. lazy start over a network (bench/lazy-start, here with cachefiles): image limg + blob lblob
# served by nginx on the guest's loopback behind netem.py (BENCH_LZ: a latency per request, one
# shared bandwidth); a seeded 10 % of the files (lz.list) read from mount to the last byte by
# erofs-blobd (default config, http source), by the simple daemon (one ranged GET per READ), and
# pull-then-run (curl both files through the same link, loop devices, a plain erofs mount); the
# limit is computed from the workload and the round trip the link measured.
LZ_LIST=$BENCH_DATA/lz.list LZ_NGINX=18080 LZ_PORT=18081 LZ_WARM=0
lz_up() {
    ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up || die "cannot bring up lo"
    mkdir -p /run/lz/tmp
    cat >/run/lz/nginx.conf <<NGINX
daemon off; master_process off; worker_processes 1; pid /run/lz/nginx.pid; error_log stderr warn;
events { worker_connections 64; }
http { access_log off; default_type application/octet-stream; sendfile on; keepalive_timeout 60s;
  keepalive_requests 100000; client_body_temp_path /run/lz/tmp/body; proxy_temp_path /run/lz/tmp/proxy;
  fastcgi_temp_path /run/lz/tmp/fastcgi; uwsgi_temp_path /run/lz/tmp/uwsgi; scgi_temp_path /run/lz/tmp/scgi;
  server { listen 127.0.0.1:$LZ_NGINX; root $SRC; } }
NGINX
    nginx -e stderr -p /run/lz -c /run/lz/nginx.conf 2>"$LOGS/nginx.log" &
    LZ_NGINX_PID=$!
    python3 "$BENCH_LZ_TOOLS/netem.py" --listen "$LZ_PORT" --upstream "$LZ_NGINX" --latency-ms "${BENCH_LZ%%:*}" \
        --mbit "${BENCH_LZ##*:}" --ready /run/lz/netem.ready 2>"$LOGS/netem.log" &
    LZ_NETEM_PID=$!
    for _ in $(seq 1 200); do
        [ -e /run/lz/netem.ready ] && curl -sf -o /dev/null "http://127.0.0.1:$LZ_PORT/limg" && return 0
        sleep 0.1
    done
    die "nginx or netem.py did not start: $(cat "$LOGS/nginx.log" "$LOGS/netem.log")"
}
lz_read() {  # lz_read ROOT [--verify SRC]: reads the working set
    guard "working set under $1" python3 "$BENCH_LZ_TOOLS/workset.py" read "$1" "$LZ_LIST" "${@:2}" >/dev/null ||
        die "reading the working set under $1 failed"
}
secs_since() { local d=$(( $(us) - $1 )); echo "$((d / 1000000)).$(printf %06d $((d % 1000000)))"; }
measure_lazy() {  # blobd|simple|pull KEY
    local s la lb secs
    if [ "$1" = pull ]; then
        new_cache
        drop
        s=$(us)
        curl -sf -o "$CACHE/limg" "http://127.0.0.1:$LZ_PORT/limg" && curl -sf -o "$CACHE/lblob" "http://127.0.0.1:$LZ_PORT/lblob" ||
            die "curl through the link failed"
        rec "$2.download_secs" "$(secs_since "$s")"
        lb=$(losetup -f --show -r "$CACHE/lblob") && la=$(losetup -f --show -r "$CACHE/limg") || die "losetup failed"
        mkdir -p /run/mnt/z
        mount -t erofs -o ro,device="$lb" "$la" /run/mnt/z || die "plain mount of limg + lblob failed"
        lz_read /run/mnt/z
        secs=$(secs_since "$s")
        # The reads alone, everything in memory: the floor under any fetcher.
        local w0; w0=$(us); lz_read /run/mnt/z; LZ_WARM=$(secs_since "$w0"); rec "$2.warm_secs" "$LZ_WARM"
        umount /run/mnt/z; losetup -d "$la"; losetup -d "$lb"
    else
        SIMPLE_SOURCE=(--http "$LZ_PORT")
        start_daemon "$1" default "[{\"type\": \"http\", \"url\": \"http://127.0.0.1:$LZ_PORT\"}]"
        SIMPLE_SOURCE=()
        drop
        s=$(us)
        mount_fs /run/mnt/z fsid=limg
        lz_read /run/mnt/z
        secs=$(secs_since "$s")
        daemon_counters "$2"
        if [ "$rep" = 1 ]; then lz_read /run/mnt/z --verify "$BENCH_DATA/src/lz"; say "  verified the working set byte for byte"; fi
        umount /run/mnt/z
        stop_daemon
    fi
    rec "$2.secs" "$secs"
}
lz_limit() {  # prints "WIRE RTT": a perfect fetcher's wire time (bench/lazy-start/run.sh: wire_secs), the round trip
    local rtt w
    rtt=$(python3 "$BENCH_LZ_TOOLS/netem.py" --probe "$LZ_PORT" --path /lblob --size 4096) || die "netem.py --probe failed"
    w=$(awk '/^# files=/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["files"], v["blocks"] }' "$LZ_LIST")
    awk -v t="$rtt" -v m="${BENCH_LZ##*:}" -v ib="$(size_of limg)" -v bb="$(size_of lblob)" -v w="$w" '
        BEGIN { split(w, ws, " "); r = m * 1e6 / 8; l = t - 4096 / r; if (l < 0) l = 0
                demand = (ib + ws[2] * 4096) / r + l * (1 + ws[1]); stream = (ib + bb) / r + 2 * l
                printf "%.6f %.6f\n", (demand < stream ? demand : stream), l }'
}

echo "R|0|blob_size|$(size_of dblob)" >>"$OUT"
echo "R|0|tree_bytes|$(find "$BENCH_DATA/src/dom" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')" >>"$OUT"

use_storage "$STORAGE"
for rep in $(seq 1 "$REPS"); do
    say "=== repetition $rep of $REPS"
    # The two sides of each pair run back to back; which goes first alternates between repetitions.
    odd=$((rep % 2))
    if [[ $ONLY == *a* ]]; then
        say "a. cold sequential read, 64 MiB, plain image"
        if [ $odd = 1 ]; then measure_loop seq seq.loop; measure_plain blobd seq "${CHUNKS[0]}" seq.blobd
        else measure_plain blobd seq "${CHUNKS[0]}" seq.blobd; measure_loop seq seq.loop; fi
        for c in "${CHUNKS[@]:1}"; do measure_plain blobd seq "$c" "seq.blobd$c"; done
        measure_plain simple seq 0 seq.simple
        measure_copy seq.copy
    fi
    if [[ $ONLY == *b* ]]; then
        say "b. cold 4 KiB random reads, 1 reader, $OPS1 reads, plain image"
        if [ $odd = 1 ]; then measure_loop rand1 rand1.loop; measure_plain blobd rand1 "${CHUNKS[0]}" rand1.blobd
        else measure_plain blobd rand1 "${CHUNKS[0]}" rand1.blobd; measure_loop rand1 rand1.loop; fi
        for c in "${CHUNKS[@]:1}"; do measure_plain blobd rand1 "$c" "rand1.blobd$c"; done
        measure_plain simple rand1 0 rand1.simple
    fi
    if [[ $ONLY == *c* ]]; then
        for st in "${C_STORAGES[@]}"; do
            use_storage "$st"
            say "c. 16 concurrent 4 KiB random readers, $OPS16 reads, chunked image + blob, storage $st"
            if [ $odd = 1 ]; then measure_rand16 simple 0 rand16.$st.simple; measure_rand16 blobd "${CHUNKS[0]}" rand16.$st.blobd
            else measure_rand16 blobd "${CHUNKS[0]}" rand16.$st.blobd; measure_rand16 simple 0 rand16.$st.simple; fi
            for c in "${CHUNKS[@]:1}"; do measure_rand16 blobd "$c" "rand16.$st.blobd$c"; done
        done
        use_storage "$STORAGE"
    fi
    if [[ $ONLY == *e* ]]; then
        say "e. lazy start over a network (${BENCH_LZ%%:*} ms, ${BENCH_LZ##*:} Mbit/s): working set of $(grep -c -v '^#' "$LZ_LIST") files"
        [ -n "${LZ_NETEM_PID:-}" ] || lz_up
        if [ $odd = 1 ]; then measure_lazy blobd lz.blobd; measure_lazy simple lz.simple; measure_lazy pull lz.pull
        else measure_lazy pull lz.pull; measure_lazy simple lz.simple; measure_lazy blobd lz.blobd; fi
        read -r wire rtt < <(lz_limit)
        rec lz.rtt_ms "$(awk -v x="$rtt" 'BEGIN { printf "%.3f", x * 1000 }')"
        rec lz.lat_ms "${BENCH_LZ%%:*}"
        rec lz.limit.secs "$(awk -v w="$wire" -v x="$LZ_WARM" 'BEGIN { printf "%.4f", w + x }')"
    fi
    if [[ $ONLY == *d* ]]; then
        say "d. 8 mounts sharing one blob, read concurrently"
        if [ $odd = 1 ]; then measure_domain with dom.with; measure_domain without dom.without
        else measure_domain without dom.without; measure_domain with dom.with; fi
    fi
done
[ -n "${LZ_NETEM_PID:-}" ] && kill "$LZ_NETEM_PID" "$LZ_NGINX_PID" 2>/dev/null
[ -n "$CACHE" ] && rm -rf "$CACHE"
umount /run/cachefs && losetup -d "$CACHEDEV"
say "done"
