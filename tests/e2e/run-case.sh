#!/usr/bin/env bash
# Runs one end-to-end case in the UML test kernel (called by ctest).
#
#   tests/e2e/run-case.sh BIN_DIR DATA_DIR CASE_SCRIPT
#
# Skips (exit 77) when the machine cannot run the test kernel (not root, no linux-source) unless
# BLOBD_E2E_REQUIRED=1 (CI), where that is a failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bin=${1:?} data=${2:?} case=${3:?}
skip() {
    if [ "${BLOBD_E2E_REQUIRED:-0}" = 1 ]; then echo "e2e: cannot run: $*" >&2; exit 1; fi
    echo "e2e: SKIP: $*" >&2; exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root (User-Mode Linux mounts, /dev/cachefiles)"
ls /usr/src/linux-source-6.1.tar.* >/dev/null 2>&1 || skip "linux-source-6.1 not installed (scripts/install-deps.sh)"
[ -f "$data/sizes" ] || { echo "e2e: fixtures missing in $data (e2e_fixtures test)" >&2; exit 1; }
name=$(basename "$case" .sh)
log_dir=${BLOBD_E2E_LOGS:-$bin/../e2e-logs}
mkdir -p "$log_dir"
# Sabotage and hang limits for tests/e2e/selftest-checks.sh (see tests/e2e/lib.sh), only when set.
envs=()
for v in BLOBD_E2E_SABOTAGE BLOBD_E2E_HANG_S BLOBD_E2E_SABOTAGE_HANG_S; do
    [ -n "${!v:-}" ] && envs+=(--env "$v=${!v}")
done
# A case may ask for its own cache disk size with a header line "# Disk-size: 48M".
disk_size=$(sed -n 's/^# Disk-size: *\([0-9]*[KMG]\)$/\1/p' "$case" | head -n1)
# A case that needs systemd as the guest's PID 1 says so with a header line "# Init: systemd".
systemd=
grep -qx '# Init: systemd' "$case" && systemd=--systemd
exec "$top/scripts/run-uml.sh" ${systemd} --timeout "${BLOBD_E2E_TIMEOUT:-240}" --log "$log_dir/$name.dmesg" \
    ${disk_size:+--disk-size "$disk_size"} \
    --env E2E_BIN="$bin" --env E2E_DATA="$data" ${envs[@]+"${envs[@]}"} -- "$case"
