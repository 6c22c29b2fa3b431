#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, every library instrumented, ASan + UBSan) in build-fuzz/ and
# runs each over a temporary copy of its corpus (tests/fuzz/corpus/<name>/) for a bounded time.
# Prints one line per target (executions, seconds, edges, features, corpus growth, result); exits
# non-zero if any target crashed, leaked, hung or broke a check. docs/fuzzing.md has the details.
#
#   scripts/fuzz.sh [seconds per target]     (default 20)
#
# Environment: BLOBD_FUZZ_RUNS=N runs N executions per target instead of a time budget;
# BLOBD_FUZZ_PARALLEL=N runs N targets at once (default 1); BLOBD_FUZZ_JOBS=N build jobs (default
# nproc); BLOBD_FUZZ_TARGETS="url http" runs only those; BLOBD_FUZZ_KEEP=dir keeps grown corpora.
# Crash inputs and logs: build-fuzz/fuzz-out/<name>/.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
seconds=${1:-20}
build=build-fuzz

start=$SECONDS
echo "=== fuzz build (clang, libFuzzer + ASan + UBSan) in $build/"
# -O1 -g without NDEBUG: Beast's and nlohmann's own assertions stay on.
cmake -S . -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" -DBLOBD_FUZZ=ON \
    -DBLOBD_E2E=OFF -DBLOBD_BUILD_BENCH=OFF -DBLOBD_WERROR=ON >/dev/null
# Only the targets and the libraries they link (base, protocol, config), not the daemon or tests.
# The log holds the linker's list of what fuzz_config leaves unresolved (tests/fuzz/CMakeLists.txt).
log="$build/fuzz-build.log"
if ! cmake --build "$build" -j"${BLOBD_FUZZ_JOBS:-$(nproc)}" --target fuzzers >"$log" 2>&1; then
    cat "$log"
    echo "fuzz.sh: the fuzz build failed" >&2
    exit 1
fi
echo "fuzz.sh: build took $((SECONDS - start)) s"

out="$top/$build/fuzz-out"
rm -rf "$out"
mkdir -p "$out"
export BLOBD_FUZZ_SECONDS=$seconds
if [ -n "${BLOBD_FUZZ_RUNS:-}" ]; then budget="${BLOBD_FUZZ_RUNS} executions"; else budget="${seconds} s"; fi
echo "=== fuzzing, $budget per target"
regex=fuzz_
if [ -n "${BLOBD_FUZZ_TARGETS:-}" ]; then regex="^fuzz_($(echo "$BLOBD_FUZZ_TARGETS" | tr ' ' '|'))\$"; fi
rc=0
(cd "$build" && ctest -L fuzz -R "$regex" -j"${BLOBD_FUZZ_PARALLEL:-1}" --timeout 100000 --output-on-failure) || rc=$?
echo "=== fuzz summary"
sort "$out/summary.txt"
echo "fuzz.sh: $((SECONDS - start)) s in all"
if [ "$rc" != 0 ]; then echo "fuzz.sh: a fuzz target failed; inputs and logs in $out/" >&2; fi
exit "$rc"
