#!/usr/bin/env bash
# Lazy start: the time from mount to the last byte a container start reads, as users feel it.
# An erofs image is built from a real tree on this machine (default: /usr/lib/python3*,
# /usr/share/perl and /usr/lib/gcc: thousands of files of real sizes, a few hundred MiB); a
# seeded ~10 % of its files is the working set (workset.py: packages in a random order, files of
# a package in name order). nginx on loopback serves the image and its blob, behind netem.py: a
# latency on every request and one bandwidth shared by all connections. Per network profile
# (--profiles LAT_MS:MBIT,..., 0 = unlimited), side by side in one run, --reps times each:
#   erofs-blobd  the fanotify frontend on the host kernel, fresh daemon and empty cache dir,
#                default config but the HTTP source: `erofs-blobctl mount` + reading the working set
#   pull         pull-then-run: curl downloads the image and the whole blob through the same link,
#                then the same working set is read from a plain file-backed mount of the download
#   limit        computed from the workload: the wire time of a perfect fetcher that cannot know
#                the working set in advance, the better of (a) on demand: (image bytes + the working
#                set's 4 KiB blocks) / bandwidth + latency x (1 + files read: one reader opens its
#                next file only after the last, so those round trips cannot overlap) and (b) stream
#                everything: (image + blob) / bandwidth + 2 x latency; plus the measured time to read
#                the working set from a local mount whose pages are in memory (the reads themselves)
# and, on the --matrix-profile, erofs-blobd at chunk sizes 64 KiB, 256 KiB, 1 MiB and 4 MiB
# without and with prefetch: time and amplification (bytes fetched from the source by the time the
# working set is read, over the bytes it read). Page caches are dropped before every timed run.
# Targets (on the medians, at 5 ms + 200 Mbit/s): erofs-blobd within 1.3x of the limit and at
# least 3x faster than pull-then-run. cachefiles (in UML) against the simple daemon of bench/uml
# and pull-then-run, on a smaller tree: bench/uml/run.sh --only e (part of bench/run's uml section).
#
# usage: bench/lazy-start/run.sh [--bin DIR] [--reps 3] [--dir /tmp] [--tree DIR,DIR,...]
#            [--percent 10] [--seed 1] [--profiles 0:0,5:200,20:1000] [--matrix-profile 5:200]
#            [--no-matrix] [--chunks 65536,262144,1048576,4194304] [--stats-dir DIR] [--keep]
#   --stats-dir DIR  keep each erofs-blobd run's `erofs-blobctl --raw stats` there, at the end of its
#                    working set (chunkC-prefetchP-TIME.json)
#
# Output (stdout): `RESULT|<benchmark>|<measured>|<baseline>|<ratio>|<target>|<PASS|FAIL|info>`
# rows, `# ...` commentary (one line per run), or `SKIP|<benchmark>|<why>` when the host cannot
# (not root, no nginx/curl/mkfs.erofs, no pre-content events, --dir not on ext4/xfs/btrfs).
# Exit 0 unless the run itself broke (a missed target is a FAIL row, not an error).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)

bin=$top/build/bin reps=3 dir=/tmp percent=10 seed=1 keep=0 matrix=1 chunks=65536,262144,1048576,4194304
stats_dir=
tree=$(ls -d /usr/lib/python3* /usr/share/perl /usr/lib/gcc 2>/dev/null | paste -sd,)
profiles=0:0,5:200,20:1000 matrix_profile=5:200
args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=${2:?}; shift 2 ;;
        --reps) reps=${2:?}; shift 2 ;;
        --dir) dir=${2:?}; shift 2 ;;
        --tree) tree=${2:?}; shift 2 ;;
        --percent) percent=${2:?}; shift 2 ;;
        --seed) seed=${2:?}; shift 2 ;;
        --profiles) profiles=${2:?}; shift 2 ;;
        --matrix-profile) matrix_profile=${2:?}; shift 2 ;;
        --no-matrix) matrix=0; shift ;;
        --chunks) chunks=${2:?}; shift 2 ;;
        --stats-dir) stats_dir=${2:?}; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/lazy-start/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
name="lazy-start"
skip() { echo "SKIP|$name|$*"; exit 0; }
die() { echo "bench/lazy-start/run.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root (fanotify pre-content group, mount(2), drop_caches)"
for p in mkfs.erofs nginx curl python3 unshare; do command -v "$p" >/dev/null || skip "no $p"; done
[ -x "$bin/erofs-blobd" ] && [ -x "$bin/erofs-blobctl" ] || die "no erofs-blobd/erofs-blobctl in $bin"
fs=$(df --output=fstype "$dir" 2>/dev/null | tail -n 1)
case "$fs" in ext4|xfs|btrfs) ;; *) skip "$dir is on ${fs:-?}, pre-content marks need ext4, xfs or btrfs (--dir)" ;; esac
tree_mib=$(IFS=,; du -scm $tree 2>/dev/null | tail -n 1 | cut -f1)
free=$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')
[ "${free:-0}" -ge $((tree_mib * 4 + 256)) ] || skip "$dir has less than $((tree_mib * 4 + 256)) MiB free"

# Everything below runs in a private mount namespace: no mount can leak into the host's.
if [ -z "${BLOBD_LAZYBENCH_NS:-}" ]; then
    BLOBD_LAZYBENCH_NS=1 exec unshare --mount --propagation private "$0" "${args[@]}"
fi

work=$(mktemp -d "$dir/blobd-lazybench-XXXXXX")
daemon_pid= nginx_pid= netem_pid=
stop_pid() { if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then kill "$1"; wait "$1" 2>/dev/null; fi; }
cleanup() {
    stop_pid "$daemon_pid"; stop_pid "$netem_pid"; stop_pid "$nginx_pid"
    awk -v w="$work" '$2 ~ "^"w { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    if [ "$keep" = 1 ]; then echo "# work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
now() { date +%s.%N; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }

# ---- fixture: the tree, its image and blob, the working set ----
mkdir -p "$work/src" "$work/cache" "$work/mnt" "$work/pull" "$work/www/tmp"
IFS=, read -ra tree_dirs <<<"$tree"
for d in "${tree_dirs[@]}"; do
    [ -d "$d" ] || die "--tree: $d is not a directory"
    mkdir -p "$work/src$(dirname "$d")"
    cp -a "$d" "$work/src$(dirname "$d")/" || die "cannot copy $d"
done
"$top/scripts/mkblobimg" --quiet --out "$work/www" --blob blob --image img="$work/src" || die "mkblobimg failed"
img_bytes=$(command stat -c %s "$work/www/img") blob_bytes=$(command stat -c %s "$work/www/blob")
python3 "$here/workset.py" pick "$work/src" --seed "$seed" --percent "$percent" >"$work/list" || die "workset pick failed"
summary=$(tail -n 1 "$work/list")
ws_files=$(field files <<<"$summary") ws_bytes=$(field bytes <<<"$summary") ws_blocks=$(field blocks <<<"$summary")
all_files=$(field all_files <<<"$summary")

# ---- nginx on loopback, netem.py in front of it ----
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
nginx_port=$(free_port)
cat >"$work/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $work/nginx.pid; error_log stderr warn;
events { worker_connections 256; }
http { access_log off; default_type application/octet-stream; sendfile on; keepalive_timeout 60s;
  keepalive_requests 100000; client_body_temp_path $work/www/tmp/body; proxy_temp_path $work/www/tmp/proxy;
  fastcgi_temp_path $work/www/tmp/fastcgi; uwsgi_temp_path $work/www/tmp/uwsgi; scgi_temp_path $work/www/tmp/scgi;
  server { listen 127.0.0.1:$nginx_port; root $work/www; } }
EOF
nginx -e stderr -p "$work" -c "$work/nginx.conf" 2>"$work/nginx.log" &
nginx_pid=$!
up() { curl -sf -o /dev/null "http://127.0.0.1:$1/img"; }
for _ in $(seq 1 100); do up "$nginx_port" && break; sleep 0.05; done
up "$nginx_port" || die "nginx did not start: $(cat "$work/nginx.log")"
netem_port=
start_netem() {  # LAT_MS MBIT
    stop_pid "$netem_pid"
    netem_port=$(free_port)
    rm -f "$work/netem.ready"
    python3 "$here/netem.py" --listen "$netem_port" --upstream "$nginx_port" --latency-ms "$1" --mbit "$2" \
        --ready "$work/netem.ready" 2>>"$work/netem.log" &
    netem_pid=$!
    for _ in $(seq 1 100); do [ -e "$work/netem.ready" ] && break; sleep 0.05; done
    [ -e "$work/netem.ready" ] || die "netem.py did not start: $(cat "$work/netem.log")"
    # The round trip this link really has (latency plus the proxy's and nginx's own time), for the
    # limit: a perfect fetcher pays it too. A 4 KiB GET, its transfer time taken off.
    local t4 t64
    t4=$(python3 "$here/netem.py" --probe "$netem_port" --path /blob --size 4096 --count 100) || die "netem.py --probe failed"
    # The bandwidth: the one set, or unlimited: what the link (proxy and nginx on loopback) carries,
    # from 64 MiB GETs.
    if [ "$2" = 0 ]; then
        t64=$(python3 "$here/netem.py" --probe "$netem_port" --path /blob --size $((64 << 20)) --count 3) ||
            die "netem.py --probe failed"
        bps=$(awk -v a="$t4" -v b="$t64" 'BEGIN { printf "%.0f", (64 * 1048576) / (b > a ? b - a : b) }')
    else
        bps=$(awk -v m="$2" 'BEGIN { printf "%.0f", m * 1e6 / 8 }')
    fi
    rtt=$(awk -v t="$t4" -v r="$bps" 'BEGIN { x = t - 4096 / r; printf "%.6f", (x > 0 ? x : 0) }')
}

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# mount(2) without mount(8) (which would put a loop device under a regular file).
plain_mount() {
    python3 - "$1" "$2" "device=$3" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.mount(sys.argv[1].encode(), sys.argv[2].encode(), b"erofs", 1 | 2 | 4, sys.argv[3].encode()) != 0:
    e = ctypes.get_errno(); print(f"mount: {os.strerror(e)}", file=sys.stderr); sys.exit(1)
PY
}
ctl() { "$bin/erofs-blobctl" --socket "$work/ctl.sock" "$@"; }

# One cold run of erofs-blobd: CHUNK|default PREFETCH(true|false|default) VERIFY(0|1); prints
# "secs fetched chunk_size". default: the key left out of the config.
daemon_run() {
    rm -rf "$work/cache"; mkdir "$work/cache"
    local extra=
    [ "$1" = default ] || extra+=", \"chunk_size\": $1"
    [ "$2" = default ] || extra+=", \"prefetch\": $2"
    cat >"$work/config.json" <<JSON
{"cache": {"dir": "$work/cache"}, "frontend": "fanotify", "control_socket": "$work/ctl.sock",
 "sources": [{"type": "http", "url": "http://127.0.0.1:$netem_port"}]$extra}
JSON
    "$bin/erofs-blobd" --config "$work/config.json" >"$work/daemon.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 1 100); do
        ctl ping >/dev/null 2>&1 && break
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.05
    done
    if ! ctl ping >/dev/null 2>&1; then
        if line=$(grep -m1 "frontend fanotify:" "$work/daemon.log"); then skip "the daemon's probe failed: $line"; fi
        cat "$work/daemon.log" >&2; die "the daemon did not start"
    fi
    drop
    local t0 out secs fetched chunk_used
    t0=$(now)
    ctl mount img "$work/mnt" >/dev/null || die "erofs-blobctl mount failed: $(tail -n 3 "$work/daemon.log")"
    out=$(python3 "$here/workset.py" read "$work/mnt" "$work/list") || die "reading the working set failed"
    secs=$(secs_since "$t0")
    ctl --raw stats >"$work/stats.json" || die "erofs-blobctl stats failed"
    read -r fetched chunk_used < <(python3 -c 'import json,sys; j = json.load(open(sys.argv[1])); print(j["upstream_bytes"], j["chunk_size"])' "$work/stats.json")
    if [ -n "$stats_dir" ]; then
        mkdir -p "$stats_dir"
        cp "$work/stats.json" "$stats_dir/chunk$1-prefetch$2-$(date +%s%N).json"
    fi
    if [ "$3" = 1 ]; then
        python3 "$here/workset.py" read "$work/mnt" "$work/list" --verify "$work/src" >/dev/null ||
            die "the working set read through erofs-blobd differs from the tree"
    fi
    ctl umount "$work/mnt" >/dev/null || die "erofs-blobctl umount failed"
    stop_pid "$daemon_pid"; daemon_pid=
    echo "$secs $fetched $chunk_used"
}
# One pull-then-run: prints "total_secs download_secs run_secs warm_run_secs".
pull_run() {
    rm -f "$work/pull/img" "$work/pull/blob"
    drop
    local t0 t1 dl run warm
    t0=$(now)
    curl -sf -o "$work/pull/img" "http://127.0.0.1:$netem_port/img" &&
        curl -sf -o "$work/pull/blob" "http://127.0.0.1:$netem_port/blob" || die "curl failed"
    dl=$(secs_since "$t0"); t1=$(now)
    plain_mount "$work/pull/img" "$work/mnt" "$work/pull/blob" || skip "plain file-backed erofs mount failed (CONFIG_EROFS_FS_BACKED_BY_FILE?)"
    python3 "$here/workset.py" read "$work/mnt" "$work/list" >/dev/null || die "reading the working set (pull) failed"
    run=$(secs_since "$t1")
    # The reads alone, everything in memory: the floor under any fetcher.
    warm=$(python3 "$here/workset.py" read "$work/mnt" "$work/list" | field secs)
    umount "$work/mnt"
    echo "$(secs_since "$t0") $dl $run $warm"
}

# The wire time of a perfect fetcher that does not know the working set in advance: the better of
# fetching exactly the working set's blocks on demand (the image, then one round trip per file: a
# single reader's next file is unknown until it opens it) and streaming the whole image and blob
# (two round trips), both at the full bandwidth; a round trip and an unlimited link's bandwidth
# are what the link measured ($rtt, $bps).
wire_secs() {  # RTT_SECS BYTES_PER_SEC
    awk -v ib="$img_bytes" -v bb="$blob_bytes" -v wb=$((ws_blocks * 4096)) -v f="$ws_files" -v r="$2" -v l="$1" '
        BEGIN {
                demand = (r ? (ib + wb) / r : 0) + l * (1 + f)
                stream = (r ? (ib + bb) / r : 0) + 2 * l
                printf "%.4f", (demand < stream ? demand : stream) }'
}
med() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
spread() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
ptag() { if [ "$1" = 0 ] && [ "$2" = 0 ]; then echo "0 ms, unlimited"; else echo "$1 ms, $( [ "$2" = 0 ] && echo unlimited || echo "$2 Mbit/s")"; fi; }

echo "# tree ${tree} -> image $(mib "$img_bytes") + blob $(mib "$blob_bytes") ($all_files files);" \
     "working set $ws_files files, $(mib "$ws_bytes") (${percent} %, seed $seed); $reps reps"

IFS=, read -ra plist <<<"$profiles"
for prof in "${plist[@]}"; do
    lat=${prof%%:*} mbit=${prof##*:}
    start_netem "$lat" "$mbit"
    tag=$(ptag "$lat" "$mbit")
    d_s=() p_s=() warm_s=() lim_s=() vs_lim=() vs_pull=() amp=()
    for r in $(seq 1 "$reps"); do
        # Alternate which side goes first.
        if [ $((r % 2)) = 1 ]; then
            read -r ds df dchunk < <(daemon_run default default "$([ "$r" = 1 ] && echo 1 || echo 0)")
            read -r pt pd pr pw < <(pull_run)
        else
            read -r pt pd pr pw < <(pull_run)
            read -r ds df dchunk < <(daemon_run default default 0)
        fi
        [ -n "${ds:-}" ] && [ -n "${pw:-}" ] || die "a run failed (profile $prof)"
        wire=$(wire_secs "$rtt" "$bps")
        lim=$(awk -v w="$wire" -v x="$pw" 'BEGIN { printf "%.3f", w + x }')
        d_s+=("$ds") p_s+=("$pt") warm_s+=("$pw") lim_s+=("$lim")
        vs_lim+=("$(ratio "$ds" "$lim")") vs_pull+=("$(ratio "$pt" "$ds")") amp+=("$(ratio "$df" "$ws_bytes")")
        echo "# lazy-start [$tag] rep $r: erofs-blobd ${ds}s (fetched $(mib "$df"), ${amp[-1]}x of what was read);" \
             "pull-then-run ${pt}s (download ${pd}s + run ${pr}s); limit ${lim}s (wire ${wire}s with a measured" \
             "round trip of $(awk -v x="$rtt" 'BEGIN { printf "%.2f", x * 1000 }') ms + reads ${pw}s)"
    done
    rl=$(med "${vs_lim[@]}") rp=$(med "${vs_pull[@]}")
    if [ "$lat:$mbit" = 5:200 ]; then
        vl=$(awk -v r="$rl" 'BEGIN { print (r <= 1.3 ? "PASS" : "FAIL") }') tl="<= 1.30x"
        vp=$(awk -v r="$rp" 'BEGIN { print (r >= 3 ? "PASS" : "FAIL") }') tp=">= 3.00x"
    else
        vl=info tl=- vp=info tp=-
    fi
    echo "RESULT|lazy-start: erofs-blobd vs limit [$tag]|$(med "${d_s[@]}") s|limit $(med "${lim_s[@]}") s|$(printf '%.2f' "$rl")x of the limit ($(spread "${vs_lim[@]}"))|$tl|$vl"
    echo "RESULT|lazy-start: erofs-blobd vs pull-then-run [$tag]|$(med "${d_s[@]}") s|pull $(med "${p_s[@]}") s|$(printf '%.2f' "$rp")x faster ($(spread "${vs_pull[@]}"))|$tp|$vp"
    # The most any fetcher that does not know the working set could reach against pull-then-run.
    echo "RESULT|lazy-start: limit vs pull-then-run [$tag]|limit $(med "${lim_s[@]}") s|pull $(med "${p_s[@]}") s|$(ratio "$(med "${p_s[@]}")" "$(med "${lim_s[@]}")")x faster|-|info"
    echo "RESULT|lazy-start: amplification, default config ($((dchunk / 1024)) KiB chunks) [$tag]|$(med "${amp[@]}")x fetched/read|-|-|-|info"
done

# ---- chunk sizes, with and without prefetch ----
if [ "$matrix" = 1 ]; then
    lat=${matrix_profile%%:*} mbit=${matrix_profile##*:}
    start_netem "$lat" "$mbit"
    tag=$(ptag "$lat" "$mbit")
    for pf in false true; do
        IFS=, read -ra chunk_list <<<"$chunks"
        for chunk in "${chunk_list[@]}"; do
            t=() a=()
            for r in $(seq 1 "$reps"); do
                read -r ds df _ < <(daemon_run "$chunk" "$pf" "$([ "$r" = 1 ] && echo 1 || echo 0)")
                [ -n "${ds:-}" ] || die "a run failed (chunk $chunk, prefetch $pf)"
                t+=("$ds") a+=("$(ratio "$df" "$ws_bytes")")
            done
            echo "# lazy-start [$tag] chunk $((chunk / 1024)) KiB prefetch $pf: ${t[*]} s, amplification ${a[*]}"
            echo "RESULT|lazy-start: chunk $((chunk / 1024)) KiB, prefetch $([ "$pf" = true ] && echo on || echo off) [$tag]|$(med "${t[@]}") s ($(spread "${t[@]}"))|-|$(med "${a[@]}")x fetched/read|-|info"
        done
    done
fi
echo "# lazy-start: cachefiles (UML) against the simple daemon and pull-then-run: bench/uml/run.sh --only e"
