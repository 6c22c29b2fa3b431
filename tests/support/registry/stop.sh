#!/usr/bin/env bash
# Stops the registry and token server that start.sh DIR started (by the pids in DIR/env: TERM, then
# KILL after 5 s), and with --clean removes DIR. Harmless when they already stopped.
#
#   tests/support/registry/stop.sh DIR [--clean]
set -uo pipefail
dir=${1:?usage: stop.sh DIR [--clean]}
clean=${2:-}
if [ -f "$dir/env" ]; then
    # shellcheck disable=SC1091
    . "$dir/env"
    for pid in "$REGISTRY_PID" "$TOKEN_PID"; do
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -f "$dir/env"
fi
if [ "$clean" = --clean ]; then rm -rf "$dir"; fi
exit 0
