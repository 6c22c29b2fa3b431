#!/usr/bin/env bash
# Runs one libFuzzer target over a temporary copy of its corpus, bounded by time or executions,
# and prints one summary line (executions, time, edges, features, corpus, result). The repo's
# corpus is never written to. Exits non-zero when the target crashed, leaked, hung, broke a check
# or did not run. What ctest's fuzz_<name> entries and scripts/fuzz.sh call.
#
#   tests/fuzz/run_fuzzer.sh <build>/bin/fuzz_<name> <repo>/tests/fuzz <output dir>
#
# Reads <repo>/tests/fuzz/corpus/<name>/ (seeds), dict/<name>.dict (libFuzzer dictionary) and
# flags/<name> (extra libFuzzer flags), when present. Writes <output dir>/<name>/log.txt, any
# crash-*/leak-*/timeout-* input there, and appends the summary line to <output dir>/summary.txt.
# Environment:
#   BLOBD_FUZZ_SECONDS  time budget (default 10)
#   BLOBD_FUZZ_RUNS     a number of executions instead of a time budget
#   BLOBD_FUZZ_KEEP     a directory: the grown corpus is copied to <dir>/<name>/ (to pick seeds from)
set -euo pipefail
bin=$1 src=$2 out=$3
name=$(basename "$bin")
name=${name#fuzz_}
mkdir -p "$out/$name"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
if [ -d "$src/corpus/$name" ]; then cp "$src/corpus/$name"/* "$work/corpus/" 2>/dev/null || true; fi
seeds=$(find "$work/corpus" -type f | wc -l)

args=(-print_final_stats=1 -timeout=10 -rss_limit_mb=2048 "-artifact_prefix=$out/$name/")
if [ -n "${BLOBD_FUZZ_RUNS:-}" ]; then
    args+=("-runs=$BLOBD_FUZZ_RUNS")
else
    args+=("-max_total_time=${BLOBD_FUZZ_SECONDS:-10}")
fi
if [ -f "$src/dict/$name.dict" ]; then args+=("-dict=$src/dict/$name.dict"); fi
if [ -f "$src/flags/$name" ]; then read -r -a extra <"$src/flags/$name"; args+=("${extra[@]}"); fi

log="$out/$name/log.txt"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
start=$SECONDS
rc=0
"$bin" "${args[@]}" "$work/corpus" >"$log" 2>&1 || rc=$?
elapsed=$((SECONDS - start))

# A run that crashed early may have printed none of these.
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
cov=$({ grep -o 'cov: [0-9]*' "$log" || true; } | tail -n1 | cut -d' ' -f2)
ft=$({ grep -o 'ft: [0-9]*' "$log" || true; } | tail -n1 | cut -d' ' -f2)
grown=$(find "$work/corpus" -type f | wc -l)
result=ok
if [ "$rc" != 0 ] || [ -z "$execs" ] || [ "$execs" = 0 ]; then result="FAILED (exit $rc)"; fi
line=$(printf '%-10s %12s execs %6s s  cov %5s  ft %6s  corpus %3s -> %5s  %s' "$name" "${execs:-?}" \
    "$elapsed" "${cov:-?}" "${ft:-?}" "$seeds" "$grown" "$result")
echo "$line"
echo "$line" >>"$out/summary.txt"

if [ -n "${BLOBD_FUZZ_KEEP:-}" ]; then
    mkdir -p "$BLOBD_FUZZ_KEEP/$name"
    cp "$work/corpus"/* "$BLOBD_FUZZ_KEEP/$name/" 2>/dev/null || true
fi
if [ "$result" != ok ]; then
    tail -n 60 "$log"
    echo "run_fuzzer: $name failed; log: $log; inputs: $(ls "$out/$name" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | tr '\n' ' ')" >&2
    exit 1
fi
