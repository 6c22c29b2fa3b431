#!/usr/bin/env bash
# Proves that the end-to-end checks can fail. Runs cases with BLOBD_E2E_SABOTAGE=NAME (the case
# makes the daemon or its source misbehave on purpose at the point marked `sabotage NAME`; see
# tests/e2e/lib.sh and the case's header) and requires every such run to FAIL, with exit 1 and the
# message of the check that must catch the misbehaviour. A sabotaged run that passes, fails with
# another message, or does not finish is a failure of this test.
#
#   tests/e2e/selftest-checks.sh BIN_DIR DATA_DIR [CASE:SABOTAGE...]   (default: every row below)
#
# Skips (77) like run-case.sh. Each run takes one guest boot plus a 10 s hang limit at most.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: selftest-checks.sh BIN_DIR DATA_DIR [CASE:SABOTAGE...]} data=${2:?}
shift 2
# CASE:SABOTAGE|the FAIL line the run must print
table='040-failures:hang-mount|FAIL: mount of img9 hung
040-failures:serve-missing|FAIL: reading data of a missing blob succeeded
040-failures:hang-reader|FAIL: reading data of a missing blob hung
040-failures:hang-hostile|FAIL: mount with fsid=../x hung
040-failures:keep-blob5|FAIL: reading a truncated blob succeeded
040-failures:hang-truncated|FAIL: reading a truncated blob hung
090-outage:no-breaker|FAIL: the stalled source was asked again with its breaker open
100-cull:no-keeper|FAIL: /run/mnt/s differs from
110-systemd:no-fdstore|FAIL: /run/mnt/a differs from
110-systemd:no-restart|FAIL: systemd did not bring up a new daemon'
logs=$(mktemp -d /tmp/e2e-selftest.XXXXXX)
failures=0 runs=0
while IFS='|' read -r what want; do
    if [ $# -gt 0 ]; then
        wanted=0; for w in "$@"; do [ "$w" = "$what" ] && wanted=1; done
        [ $wanted = 1 ] || continue
    fi
    case=${what%%:*} sab=${what#*:}
    start=$SECONDS
    out=$(BLOBD_E2E_SABOTAGE=$sab BLOBD_E2E_LOGS=$logs/$sab BLOBD_E2E_TIMEOUT=180 \
          "$here/run-case.sh" "$bin" "$data" "$here/cases/$case.sh" 2>&1 </dev/null)
    rc=$?
    [ $rc = 77 ] && { echo "$out" | tail -n 3; exit 77; }
    runs=$((runs + 1))
    took="$((SECONDS - start))s"
    why=
    if ! grep -qF -- "--- SABOTAGE $sab" <<<"$out"; then why="the sabotage was never applied"
    elif [ $rc = 0 ]; then why="the case PASSED although sabotaged"
    elif [ $rc != 1 ]; then why="exit $rc, not the case's own failure (1)"
    elif ! grep -qF -- "$want" <<<"$out"; then why="failed, but not with '$want'"
    fi
    if [ -z "$why" ]; then
        echo "ok: $what fails as it must ($took): $(grep -F -- "$want" <<<"$out" | head -n1)"
    else
        echo "FAIL: $what: $why ($took); its output:"; echo "$out" | tail -n 25 | sed 's/^/    /'
        failures=$((failures + 1))
    fi
done <<<"$table"
[ $runs -gt 0 ] || { echo "FAIL: no sabotage selected"; exit 1; }
echo "$runs sabotaged runs, $failures not caught"
[ $failures = 0 ] && rm -rf "$logs"
[ $failures = 0 ]
