#!/usr/bin/env bash
# The fanotify half of the demo (run by scripts/demo.sh on a host whose kernel has pre-content
# events, as root): the same two erofs images sharing one blob, mounted by the daemon itself as
# file-backed erofs mounts in one domain (erofs-blobctl mount), every file read through both and
# compared, and the bytes fetched shown against the bytes read. Exit 77 when the host cannot run
# the fanotify frontend (the daemon's probe says why).
#
#   scripts/demo-fanotify.sh BIN_DIR FIXTURES_DIR
#
# Runs in a private mount namespace; the cache dir is on the disk under /var/tmp (ext4 here;
# tmpfs has no pre-content support); everything is unmounted and removed on exit.
set -uo pipefail
bin=$(realpath "${1:?usage: demo-fanotify.sh BIN_DIR FIXTURES_DIR}")
data=$(realpath "${2:?}")
if [ -z "${BLOBD_DEMO_NS:-}" ]; then
    BLOBD_DEMO_NS=1 exec unshare --mount --propagation private "$0" "$@"
fi
run=$(mktemp -d /var/tmp/erofs-blobd-fandemo.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    awk -v w="$run" '$2 ~ "^"w { print $2 }' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$run"
}
trap cleanup EXIT
ctl() { "$bin/erofs-blobctl" --socket "$run/ctl.sock" "$@"; }
fetched() { ctl stats --get bytes_fetched; }
human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 B"; }
tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

mkdir -p "$run/cache" "$run/img1" "$run/img2"
cat >"$run/config.json" <<JSON
{"cache": {"dir": "$run/cache"}, "frontend": "fanotify",
 "sources": [{"type": "local", "path": "$data/blobs"}], "control_socket": "$run/ctl.sock"}
JSON
echo
echo "erofs-blobd demo, fanotify frontend: the same images as file-backed erofs mounts in one domain"
echo "  kernel: $(uname -sr)    cache dir: $run/cache    blob source: $data/blobs (local)"
"$bin/erofs-blobd" --config "$run/config.json" 2>"$run/daemon.log" &
pid=$!
for _ in $(seq 1 100); do ctl ping >/dev/null 2>&1 && break; sleep 0.1; done
if ! ctl ping >/dev/null 2>&1; then
    # The probe names what the host lacks (kernel, filesystem, root): not a failure of the demo.
    if grep -q "frontend fanotify:" "$run/daemon.log"; then grep "frontend fanotify:" "$run/daemon.log"; exit 77; fi
    cat "$run/daemon.log"; echo "demo: the daemon did not start"; exit 1
fi
ctl mount --domain demo img1 "$run/img1" || exit 1
ctl mount --domain demo img2 "$run/img2" || exit 1
echo "mounted (erofs-blobctl mount --domain demo IMG DIR):"
awk -v w="$run" '$3 == "erofs" && $2 ~ "^"w { printf "  %-40s %s\n", $2, $1 }' /proc/self/mounts
ok=1
diff -r --no-dereference "$data/src/tree1" "$run/img1" >/dev/null || ok=0
after1=$(fetched)
diff -r --no-dereference "$data/src/tree2" "$run/img2" >/dev/null || ok=0
after2=$(fetched)
[ "$ok" = 1 ] || { echo "demo: a mount does not show its source tree"; exit 1; }
echo "  every file of both mounts is identical to its source tree"
printf '  %-44s %12s\n' "file bytes read through img1 and img2" "$(human $(( $(tree_bytes "$run/img1") + $(tree_bytes "$run/img2") )))"
printf '  %-44s %12s\n' "bytes fetched after img1 (bootstraps + blob)" "$(human "$after1")"
printf '  %-44s %12s\n' "bytes fetched after img2" "$(human "$after2")"
printf '  %-44s %12s\n' "pre-content events answered" "$(ctl stats --get fanotify.events)"
if [ $((after2 - after1)) -le $(command stat -c %s "$data/blobs/img2") ]; then
    echo "=> img2 fetched only its bootstrap: its data came from the domain's one cache file of blob1."
else
    echo "demo: img2 fetched $((after2 - after1)) bytes, more than its bootstrap"; exit 1
fi
ctl umount "$run/img1" && ctl umount "$run/img2"
