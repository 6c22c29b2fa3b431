#!/usr/bin/env bash
# Description: the Debian package built by scripts/package.sh: lintian finds no error; the config
# is a conffile; the files the unit names, the man pages and mount(8)'s helper (in /sbin, where
# mount(8) looks) are in the package; and the maintainer scripts, run with
# stand-ins for systemctl/deb-systemd-invoke/deb-systemd-helper in a private mount namespace where
# /run/systemd/system exists (systemd "running"), do what keeps mounts across `apt upgrade`:
# install enables and starts; upgrade does NOT stop in prerm and try-restarts in postinst (a
# restart keeps systemd's fd store: the bound device survives); remove stops; purge removes the
# cache directory. Nothing is installed on the host: /run and /var/cache are private tmpfs mounts
# while a script runs (the host's /var/cache/erofs-blobd holds the cached UML kernel).
#   deb_test.sh SOURCE_DIR DEB_BUILD_DIR
set -u
src=$1 debbuild=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passes=0
ok() { echo "ok: $*"; passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

if [ "$(id -u)" != 0 ]; then echo "deb_test: needs root (unshare --mount)"; exit 77; fi
"$src/scripts/package.sh" "$debbuild" >"$tmp/package.log" 2>&1 || { tail -30 "$tmp/package.log"; bad "package.sh failed (lintian errors fail it)"; echo "0 passed"; exit 1; }
deb=$(tail -n1 "$tmp/package.log")
[ -f "$deb" ] && ok "built $(basename "$deb"); lintian: no errors" || { bad "no .deb"; exit 1; }
command -v lintian >/dev/null || bad "lintian is not installed (scripts/install-deps.sh installs it)"

dpkg-deb -e "$deb" "$tmp/control"
grep -qx '/etc/erofs-blobd/config.json' "$tmp/control/conffiles" && ok "config is a conffile" || bad "config.json is not a conffile"
dpkg-deb -x "$deb" "$tmp/root"
unit=$tmp/root/lib/systemd/system/erofs-blobd.service
[ -f "$unit" ] && ok "unit in /lib/systemd/system" || bad "no unit in /lib/systemd/system"
for p in /usr/sbin/erofs-blobd /usr/bin/erofs-blobctl /etc/erofs-blobd/config.json /lib/modules-load.d/erofs-blobd.conf \
         /usr/lib/tmpfiles.d/erofs-blobd.conf /usr/share/doc/erofs-blobd/copyright /usr/share/doc/erofs-blobd/changelog.gz \
         /usr/share/man/man8/erofs-blobd.8.gz /usr/share/man/man1/erofs-blobctl.1.gz /usr/share/man/man5/erofs-blobd.json.5.gz \
         /sbin/mount.erofs-blobd /usr/share/man/man8/mount.erofs-blobd.8.gz; do
    [ -e "$tmp/root$p" ] && ok "package has $p" || bad "package lacks $p"
done
grep -q '^ExecStart=/usr/sbin/erofs-blobd --config /etc/erofs-blobd/config.json$' "$unit" && ok "unit names /usr/sbin and /etc" ||
    bad "unit: $(grep '^ExecStart=' "$unit")"

# The maintainer scripts against stand-ins that log what they were asked.
mkdir -p "$tmp/bin"
for tool in systemctl deb-systemd-invoke deb-systemd-helper systemd-tmpfiles modprobe; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$tool" "$tmp/calls" >"$tmp/bin/$tool"
    chmod +x "$tmp/bin/$tool"
done
run() {  # run SCRIPT ARGS...: the calls it made, one per line
    : >"$tmp/calls"
    unshare --mount --propagation private sh -c '
        mount -t tmpfs none /run && mkdir -p /run/systemd/system &&
        mount -t tmpfs none /var/cache && mkdir /var/cache/erofs-blobd && touch /var/cache/erofs-blobd/x &&
        PATH="$0:$PATH" "$@" && { [ -e /var/cache/erofs-blobd ] || echo "cache dir removed" >>"'"$tmp/calls"'"; }' \
        "$tmp/bin" "$tmp/control/$1" "${@:2}" || echo "exit $?" >>"$tmp/calls"
    cat "$tmp/calls"
}
out=$(run postinst configure "")
grep -q "deb-systemd-helper enable erofs-blobd.service" <<<"$out" && grep -q "deb-systemd-invoke start erofs-blobd.service" <<<"$out" &&
    ok "install: enabled and started" || bad "install: $out"
out=$(run prerm upgrade 0.1.1)
grep -q "stop" <<<"$out" && bad "prerm upgrade stops the daemon (releases the fd store): $out" || ok "upgrade: prerm leaves the daemon running"
out=$(run postinst configure 0.0.9)
if grep -q "deb-systemd-invoke try-restart erofs-blobd.service" <<<"$out" && ! grep -qE "invoke (stop|start) " <<<"$out"; then
    ok "upgrade: postinst try-restarts (no stop + start)"
else
    bad "upgrade: postinst: $out"
fi
out=$(run prerm remove)
grep -q "deb-systemd-invoke stop erofs-blobd.service" <<<"$out" && ok "remove: stopped" || bad "remove: $out"
out=$(run postrm purge)
grep -q "cache dir removed" <<<"$out" && ok "purge: cache directory removed" || bad "purge: $out"
echo "$passes passed, $failures failed"
[ "$failures" = 0 ]
