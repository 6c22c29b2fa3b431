#!/usr/bin/env bash
# The project's test command: installs what is needed, builds, and runs every test.
#
#   scripts/test.sh
#
# 1. scripts/install-deps.sh (apt packages; skipped when all are present)
# 2. build/      release build with debug info: unit, integration, CLI and real-kernel e2e tests
#    build-asan/ AddressSanitizer + UBSan build: unit, integration and CLI tests
#    build-fuzz/ clang libFuzzer build: every fuzz target for $BLOBD_FUZZ_SECONDS (default 20) s
#                over its corpus (scripts/fuzz.sh; BLOBD_FUZZ_SECONDS=0 skips it)
# 3. the UML test kernel is built on first use (~7 min on 2 cores) and cached in
#    /var/cache/erofs-blobd/uml/<config hash> (BLOBD_UML_CACHE overrides)
# ctest prints a summary per build; the exit status is non-zero if any test failed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)

"$top/scripts/install-deps.sh"

# Real-kernel tests must run in CI: a machine that cannot run them fails instead of skipping.
if [ "${CI:-}" = true ]; then export BLOBD_E2E_REQUIRED=1 BLOBD_REQUIRE_SERVERS=1; fi

# Start the kernel build early: it is the longest step and uses its own cache.
kernel_log=$(mktemp)
"$top/scripts/build-uml-kernel.sh" >"$kernel_log" 2>&1 &
kernel_pid=$!

echo "=== build (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLOBD_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "=== build (AddressSanitizer + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBLOBD_SANITIZE=ON -DBLOBD_E2E=OFF \
    -DBLOBD_BUILD_BENCH=OFF -DBLOBD_PACKAGING_TESTS=OFF -DBLOBD_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "=== tests under AddressSanitizer + UBSan"
asan_rc=0
(cd build-asan && ctest --output-on-failure -j"$jobs") || asan_rc=$?

# While the kernel may still be building: bounded fuzzing of every parser of untrusted bytes.
fuzz_rc=0
if [ "${BLOBD_FUZZ_SECONDS:-20}" != 0 ]; then
    "$top/scripts/fuzz.sh" "${BLOBD_FUZZ_SECONDS:-20}" || fuzz_rc=$?
fi

echo "=== waiting for the UML test kernel"
if ! wait "$kernel_pid"; then
    cat "$kernel_log" >&2
    echo "test.sh: building the UML kernel failed" >&2
    exit 1
fi
tail -n1 "$kernel_log"
rm -f "$kernel_log"

echo "=== all tests (unit, integration, cli, real-kernel e2e)"
rc=0
(cd build && ctest --output-on-failure) || rc=$?
if [ "$asan_rc" != 0 ]; then echo "test.sh: the sanitizer build's tests failed (see above)" >&2; exit "$asan_rc"; fi
if [ "$fuzz_rc" != 0 ]; then echo "test.sh: a fuzz target failed (see the fuzz summary above)" >&2; exit "$fuzz_rc"; fi
exit "$rc"
