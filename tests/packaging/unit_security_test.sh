#!/usr/bin/env bash
# Description: the generated unit (build/packaging/erofs-blobd.service) is sandboxed: `systemd-analyze
# security --offline=yes` rates its overall exposure at most MAX (3.0), and `systemd-analyze verify`
# (which runs offline, without a running systemd, here) finds nothing wrong with it once its Exec
# binaries point at the build's (the installed paths do not exist yet). Exit 77 (skipped) without
# systemd-analyze (systemd >= 252 is needed for --offline).
# With the fanotify drop-in (packaging/fanotify-dropin.conf, found through SYSTEMD_UNIT_PATH as
# erofs-blobd.service.d/fanotify.conf), verify is silent too and the exposure is reported; it must
# differ from the plain unit's (else the drop-in was not read).
#   unit_security_test.sh UNIT_FILE BIN_DIR DROPIN [MAX]
set -u
unit=$1 bin=$2 dropin=$3 max=${4:-3.0}
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 77; }
[ -f "$unit" ] || { echo "FAIL: no unit $unit"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

out=$(systemd-analyze security --offline=yes "$unit" 2>&1)
line=$(grep 'Overall exposure level' <<<"$out")
level=$(sed -nE 's/.*Overall exposure level for [^:]*: ([0-9]+\.[0-9]+).*/\1/p' <<<"$line")
if [ -z "$level" ]; then
    echo "$out"; echo "FAIL: no 'Overall exposure level' line in systemd-analyze security's output"; exit 1
fi
if awk -v l="$level" -v m="$max" 'BEGIN { exit !(l <= m) }'; then
    echo "ok: exposure $level <= $max"
else
    grep '✗' <<<"$out"
    echo "FAIL: exposure $level > $max"; failures=$((failures + 1))
fi

# verify: the same unit with its binaries replaced by the build's, under its own name.
sed -E "s#^(Exec[A-Za-z]*=[-+!@:|]*)[^ ]*/erofs-blob(d|ctl)( |\$)#\\1$bin/erofs-blob\\2\\3#" "$unit" \
    >"$tmp/erofs-blobd.service"
if v=$(systemd-analyze verify "$tmp/erofs-blobd.service" 2>&1) && [ -z "$v" ]; then
    echo "ok: systemd-analyze verify is silent"
else
    echo "$v"; echo "FAIL: systemd-analyze verify"; failures=$((failures + 1))
fi
mkdir "$tmp/erofs-blobd.service.d"
cp "$dropin" "$tmp/erofs-blobd.service.d/fanotify.conf"
if v=$(SYSTEMD_UNIT_PATH=$tmp: systemd-analyze verify "$tmp/erofs-blobd.service" 2>&1) && [ -z "$v" ]; then
    echo "ok: systemd-analyze verify is silent with the fanotify drop-in"
else
    echo "$v"; echo "FAIL: systemd-analyze verify with the fanotify drop-in"; failures=$((failures + 1))
fi
fan=$(SYSTEMD_UNIT_PATH=$tmp: systemd-analyze security --offline=yes "$tmp/erofs-blobd.service" 2>&1 |
      sed -nE 's/.*Overall exposure level for [^:]*: ([0-9]+\.[0-9]+).*/\1/p')
if [ -n "$fan" ] && [ "$fan" != "$level" ]; then
    echo "ok: exposure with the fanotify drop-in: $fan"
else
    echo "FAIL: exposure with the fanotify drop-in '$fan' (plain unit: $level): drop-in not read?"; failures=$((failures + 1))
fi
[ $failures -eq 0 ] || exit 1
echo "PASS"
