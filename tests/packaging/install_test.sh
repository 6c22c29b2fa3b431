#!/usr/bin/env bash
# Description: the installed files agree with the unit that names them. The unit is generated with
# the build's install paths (packaging/erofs-blobd.service.in), so:
#   - staged with DESTDIR, every path the unit names (ExecStartPre/ExecStart binaries, the config,
#     the documentation) is a file the install put there, and the staged ExecStartPre check of the
#     staged config passes silently (--quiet);
#   - `cmake --install --prefix` elsewhere than the configured prefix is refused before anything is
#     installed (it would leave a unit naming files that are not there);
#   - configured for the prefix /usr, the unit names /usr/sbin/erofs-blobd and /etc/erofs-blobd
#     (GNUInstallDirs puts the config of /usr in /etc), and the config is installed there; the
#     mount helper goes to /sbin (where mount(8) looks).
#   install_test.sh BUILD_DIR SOURCE_DIR
set -u
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passes=0
ok() { echo "ok: $*"; passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

DESTDIR=$tmp/root cmake --install "$build" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; bad "DESTDIR install failed"; }
unit=$(find "$tmp/root" -path '*/lib/systemd/system/erofs-blobd.service' -print -quit)
if [ -z "$unit" ]; then
    bad "no unit installed under lib/systemd/system"
else
    ok "unit installed: ${unit#"$tmp/root"}"
    # Every absolute path of an Exec line and the documentation file must be installed.
    paths=$({ sed -nE 's#^Exec[A-Za-z]*=[-+!@:|]*(/[^ ]*).*#\1#p' "$unit"
              sed -nE 's#^Exec[A-Za-z]*=.* (/[^ ]*\.json).*#\1#p' "$unit"
              sed -nE 's#^Documentation=file://(/.*)#\1#p' "$unit"; } | sort -u)
    n=0
    for p in $paths; do
        n=$((n + 1))
        if [ -e "$tmp/root$p" ]; then ok "the unit's $p is installed"; else bad "the unit names $p, which the install did not put there"; fi
    done
    [ "$n" -ge 3 ] || bad "expected at least 3 paths in the unit (the daemon, the config, the docs), found $n: $paths"
    # The staged ExecStartPre, run on the staged files: silent success.
    pre=$(sed -n 's/^ExecStartPre=[-+!@:|]*//p' "$unit")
    bin=${pre%% *} args=${pre#* }
    conf=$(sed -nE 's#.*--check-config (/[^ ]*).*#\1#p' <<<"$pre")
    out=$("$tmp/root$bin" --check-config "$tmp/root$conf" --quiet 2>&1); rc=$?
    if [ "$rc" = 0 ] && [ -z "$out" ]; then ok "ExecStartPre ($args) passes and prints nothing"; else bad "ExecStartPre on the staged config: exit $rc, output: $out"; fi
fi

out=$(cmake --install "$build" --prefix "$tmp/other" 2>&1); rc=$?
if [ "$rc" != 0 ] && grep -q "configured for the prefix" <<<"$out" && [ ! -e "$tmp/other/sbin" ] && [ ! -e "$tmp/other/bin" ]; then
    ok "install --prefix elsewhere refused before installing anything"
else
    bad "install --prefix elsewhere: exit $rc, installed: $(find "$tmp/other" -type f 2>/dev/null | head -3)"
fi

# Configure only (no build): the generated unit for the prefix /usr.
if cmake -S "$src" -B "$tmp/usr-build" -G Ninja -DCMAKE_INSTALL_PREFIX=/usr -DBLOBD_BUILD_TESTS=OFF \
        -DBLOBD_BUILD_BENCH=OFF -DBLOBD_E2E=OFF >"$tmp/configure.log" 2>&1; then
    u=$tmp/usr-build/packaging/erofs-blobd.service
    if grep -qx 'ExecStart=/usr/sbin/erofs-blobd --config /etc/erofs-blobd/config.json' "$u"; then
        ok "prefix /usr: ExecStart=/usr/sbin/erofs-blobd --config /etc/erofs-blobd/config.json"
    else
        bad "prefix /usr: unexpected ExecStart: $(grep '^ExecStart=' "$u")"
    fi
    # mount(8) runs helpers from /sbin only (util-linux's FS_SEARCH_PATH).
    if grep -q '"/sbin" TYPE EXECUTABLE FILES ".*/mount.erofs-blobd"' "$tmp/usr-build/cmake_install.cmake"; then
        ok "prefix /usr: mount.erofs-blobd is installed to /sbin"
    else
        bad "prefix /usr: mount.erofs-blobd is not installed to /sbin: $(grep -o '[^ ]* TYPE EXECUTABLE FILES [^ ]*mount.erofs-blobd"' "$tmp/usr-build/cmake_install.cmake")"
    fi
    if grep -q '"/etc/erofs-blobd"' "$tmp/usr-build/cmake_install.cmake"; then
        ok "prefix /usr: the config is installed to /etc/erofs-blobd"
    else
        bad "prefix /usr: the config is not installed to /etc/erofs-blobd"
    fi
else
    cat "$tmp/configure.log"; bad "configure with the prefix /usr failed"
fi
echo "$passes passed, $failures failed"
[ "$failures" = 0 ]
