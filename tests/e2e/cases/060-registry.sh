#!/bin/bash
# Description: blobs from a real OCI registry only: a docker-registry (distribution 2.8) with token
# auth and the test token server run inside the guest on 127.0.0.1; the content-addressed fixtures
# (bootstraps img1, img2 and their shared blob, each named by the sha256 of its bytes) are pushed to
# it; the daemon has a single oci source with user/password. Both images mounted in one domain read
# byte for byte like their source trees; the registry served each blob's bytes exactly once (its
# access log and the daemon's counters agree); tokens are fetched once, not per chunk; the password
# never reaches the daemon's log; `erofs-blobctl metrics` passes `promtool check metrics` (no errors,
# no lint warnings) with the OCI source's series in it; umount closes everything.
. "$(dirname "$0")/../lib.sh"
REG_TOOLS=$(cd "$(dirname "$0")/../../support/registry" && pwd)
REG_DIR=/run/registry
REPO=e2e/app
USER_NAME=blobd-e2e
PASSWORD=e2e-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')

command -v docker-registry >/dev/null || [ -x /usr/bin/docker-registry ] || {
    echo "e2e: SKIP: docker-registry not installed (scripts/install-deps.sh)"
    [ "${BLOBD_REQUIRE_SERVERS:-0}" = 1 ] && exit 1
    exit 77
}
[ -f "$E2E_DATA/oci/index" ] || fail "fixtures without oci/ (rerun e2e_fixtures)"
oci_hex() { awk -v n="$1" '$1 == n { print $2 }' "$E2E_DATA/oci/index"; }
oci_size() { awk -v n="$1" '$1 == n { print $3 }' "$E2E_DATA/oci/index"; }
img1=$(oci_hex img1) img2=$(oci_hex img2) blob=$(oci_hex blob1)

step "loopback up, registry and token server on 127.0.0.1"
ip link set lo up 2>/dev/null || busybox ifconfig lo 127.0.0.1 up || fail "cannot bring up lo"
"$REG_TOOLS/start.sh" "$REG_DIR" --user "$USER_NAME:$PASSWORD" >/dev/null || fail "registry did not start"
# shellcheck disable=SC1091
. "$REG_DIR/env"
cleanup_registry() { "$REG_TOOLS/stop.sh" "$REG_DIR"; cp "$REG_DIR"/*.log "$BLOBD_UML_RUN"/ 2>/dev/null; }
trap cleanup_registry EXIT

step "push the bootstraps and the blob under their digests"
"$REG_TOOLS/push.py" --registry "$REGISTRY_URL" --repository "$REPO" --user "$USER_NAME" \
    --password "$PASSWORD" "$E2E_DATA/oci/$img1" "$E2E_DATA/oci/$img2" "$E2E_DATA/oci/$blob" >"$REG_DIR/pushed" ||
    fail "push failed"
for h in "$img1" "$img2" "$blob"; do
    grep -q "^sha256:$h " "$REG_DIR/pushed" || fail "registry did not store sha256:$h"
done
pushed_tokens=$(grep -c '"status": 200' "$TOKEN_LOG")
log_start=$(wc -l <"$REGISTRY_ACCESS_LOG")

write_config() {  # lib.sh's start_daemon calls this: a single oci source, token auth
    cat >"$CONF" <<JSON
{"cache": {"dir": "$CACHE_DIR", "tag": "e2e"},
 "chunk_size": 1048576,
 "sources": [{"type": "oci", "registry": "$REGISTRY_URL", "repository": "$REPO",
              "username": "$USER_NAME", "password": "$PASSWORD", "timeout_ms": 20000}],
 "control_socket": "$SOCK",
 "log_level": "${LOG_LEVEL:-info}"}
JSON
}
start_daemon

step "mount both images (fsid = bootstrap digest) in domain d1"
mount_erofs /run/mnt/a "fsid=$img1,domain_id=d1"
mount_erofs /run/mnt/b "fsid=$img2,domain_id=d1"
expect_eq "opens (img1, the blob once, img2)" "$(stat opens)" 3

step "read every file through both mounts"
same_tree "$E2E_DATA/src/tree1" /run/mnt/a
same_tree "$E2E_DATA/src/tree2" /run/mnt/b
total=$(($(oci_size img1) + $(oci_size img2) + $(oci_size blob1)))
expect_eq "bytes fetched (each file once)" "$(stat bytes_fetched)" "$total"
expect_eq "reads failed" "$(stat reads_failed)" 0

step "the registry served every blob byte once"
# Access log (Apache combined): ... "GET /v2/<repo>/blobs/sha256:<hex> HTTP/1.1" STATUS BYTES ...
tail -n +"$((log_start + 1))" "$REGISTRY_ACCESS_LOG" >"$REG_DIR/daemon-access.log"
served() {  # served HEX: body bytes of successful GETs of that blob
    awk -v p="/v2/$REPO/blobs/sha256:$1" '$6 == "\"GET" && $7 == p && ($9 == 200 || $9 == 206) { n += $10 } END { print n + 0 }' \
        "$REG_DIR/daemon-access.log"
}
for role in img1 img2 blob1; do
    expect_eq "bytes of $role served" "$(served "$(oci_hex "$role")")" "$(oci_size "$role")"
done
expect_eq "no other blob requests failed" \
    "$(awk '$7 ~ /\/blobs\// && $6 == "\"GET" && $9 != 200 && $9 != 206 && $9 != 401' "$REG_DIR/daemon-access.log" | wc -l)" 0
daemon_tokens=$(($(grep -c '"status": 200' "$TOKEN_LOG") - pushed_tokens))
expect_eq "tokens the daemon fetched" "$daemon_tokens" 1
[ -s "$DAEMON_LOG" ] || fail "no daemon log to search for the password"
grep -q -- "$PASSWORD" "$DAEMON_LOG" && fail "the password appears in the daemon log"
echo "ok: password not in the daemon log"

step "metrics: the Prometheus text of a daemon with an OCI source passes Prometheus' parser"
"$E2E_BIN/erofs-blobctl" --socket "$SOCK" metrics >"$REG_DIR/metrics.prom" || fail "erofs-blobctl metrics failed"
promtool check metrics <"$REG_DIR/metrics.prom" >"$REG_DIR/promtool.out" 2>&1 || { cat "$REG_DIR/promtool.out"; fail "promtool rejects the metrics"; }
[ ! -s "$REG_DIR/promtool.out" ] || { cat "$REG_DIR/promtool.out"; fail "promtool lint warnings"; }
grep -q '^erofs_blobd_source_fetch_duration_seconds_count{source="oci:' "$REG_DIR/metrics.prom" ||
    fail "no fetch time histogram of the OCI source"
echo "ok: promtool check metrics: no errors, no warnings ($(grep -c '^# TYPE' "$REG_DIR/metrics.prom") families)"

step "umount: every object closed"
umount /run/mnt/a /run/mnt/b
sleep 0.3
expect_eq "closes" "$(stat closes)" 3
expect_eq "objects open" "$(stat objects_open)" 0
stop_daemon
