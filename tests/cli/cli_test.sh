#!/usr/bin/env bash
# Description: the command-line contract of erofs-blobd and erofs-blobctl: help, version, config
# checking with errors that name the JSON path, and startup failures that say how to fix them.
#   cli_test.sh ERODS_BLOBD ERODS_BLOBCTL SOURCE_DIR
set -u
daemon=$1 ctl=$2 src=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passes=0
check() {  # check NAME WANT_RC GREP_PATTERN -- CMD...
    local name=$1 want=$2 pat=$3; shift 4
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" != "$want" ]; then
        echo "FAIL: $name: exit $rc, wanted $want"; echo "$out" | head -5; failures=$((failures + 1)); return
    fi
    if ! grep -qE -- "$pat" <<<"$out"; then
        echo "FAIL: $name: output lacks /$pat/"; echo "$out" | head -5; failures=$((failures + 1)); return
    fi
    echo "ok: $name"; passes=$((passes + 1))
}

check "--help" 0 "--config FILE" -- "$daemon" --help
check "--help names reload" 0 "Reload: SIGHUP" -- "$daemon" --help
check "--version" 0 "^erofs-blobd [0-9]+\.[0-9]+" -- "$daemon" --version
check "no arguments" 1 "--config FILE is required" -- "$daemon"
check "unknown argument" 1 "unknown argument '--bogus'" -- "$daemon" --bogus
check "bad log level" 1 "unknown log level" -- "$daemon" --log-level loud --config x
check "check example config" 0 '"chunk_size": 1048576' -- "$daemon" --check-config "$src/config/example.json"
check "check packaged config" 0 '"dir": "/var/cache/erofs-blobd"' -- "$daemon" --check-config "$src/packaging/config.json"
quiet_out=$("$daemon" --check-config "$src/packaging/config.json" --quiet 2>&1); quiet_rc=$?
if [ "$quiet_rc" = 0 ] && [ -z "$quiet_out" ]; then
    echo "ok: --check-config --quiet: valid config, no output"; passes=$((passes + 1))
else
    echo "FAIL: --check-config --quiet: exit $quiet_rc, output: $quiet_out"; failures=$((failures + 1))
fi

printf '{"cache": {"dir": "/c"}, "sources": [{"type": "local", "path": 7}]}' >"$tmp/bad.json"
check "--quiet: the error still says where" 1 'sources\[0\]\.path: expected a string' -- "$daemon" --check-config "$tmp/bad.json" --quiet
check "--quiet outside --check-config" 1 "--quiet is for --check-config" -- "$daemon" --config "$tmp/bad.json" --quiet
check "bad config names the JSON path" 1 'sources\[0\]\.path: expected a string' -- "$daemon" --check-config "$tmp/bad.json"
check "bad config refuses to start" 1 'bad config' -- "$daemon" --config "$tmp/bad.json"
check "missing config file" 1 "cannot open|No such file" -- "$daemon" --check-config "$tmp/none.json"

# Files the sources name are read by --check-config (and the start), not first when a fetcher is made.
echo 'not a certificate' >"$tmp/garbage.pem"
printf '{"cache": {"dir": "/c"}, "sources": [{"type": "http", "url": "https://h/b", "ca_file": "%s"}]}' \
    "$tmp/garbage.pem" >"$tmp/bad-ca.json"
check "bad ca_file names the JSON path" 1 'sources\[0\]\.ca_file: .*garbage\.pem' -- "$daemon" --check-config "$tmp/bad-ca.json"
printf '{"auths": {"h": {"username": "u", "password": "SECRETPW"}}' >"$tmp/auth.json"
printf '{"cache": {"dir": "/c"}, "sources": [{"type": "oci", "registry": "https://h", "repository": "app", "auth_file": "%s"}]}' \
    "$tmp/auth.json" >"$tmp/bad-auth.json"
check "bad auth_file names the JSON path" 1 'sources\[0\]\.auth_file: .*auth\.json' -- "$daemon" --check-config "$tmp/bad-auth.json"
check "bad auth_file refuses to start" 1 'bad config.*auth_file' -- "$daemon" --config "$tmp/bad-auth.json"
if "$daemon" --check-config "$tmp/bad-auth.json" 2>&1 | grep -q SECRETPW; then
    echo "FAIL: bad auth_file: the error shows the password"; failures=$((failures + 1))
else
    echo "ok: bad auth_file: no secret in the error"; passes=$((passes + 1))
fi

# A newline in cache.dir would cut the "dir" command to the kernel and start a second one.
printf '{"cache": {"dir": "/var/cache/x\\nbind ondemand"}, "sources": [{"type": "local", "path": "/srv"}]}' >"$tmp/nl.json"
check "newline in cache.dir" 1 'cache\.dir: must not contain control characters' -- "$daemon" --check-config "$tmp/nl.json"
mkfifo "$tmp/fifo.json"
check "a FIFO as config: no hang" 1 'not a regular file' -- timeout 10 "$daemon" --check-config "$tmp/fifo.json"
printf '{"cache": {"dir": "/c"}, "sources": [{"type": "http", "url": "https://h/b?sig=SECRETSIG"}]}' >"$tmp/signed.json"
check "signed URL: query masked" 0 'https://h/b\?\*\*\*' -- "$daemon" --check-config "$tmp/signed.json"
if "$daemon" --check-config "$tmp/signed.json" 2>&1 | grep -q SECRETSIG; then
    echo "FAIL: --check-config shows a URL's query string"; failures=$((failures + 1))
else
    echo "ok: --check-config hides a URL's query string"; passes=$((passes + 1))
fi

mk_config() {  # mk_config DEVICE
    printf '{"cache": {"dir": "%s/cache"}, "device": "%s", "control_socket": "%s/ctl.sock", "sources": [{"type": "local", "path": "%s"}]}' \
        "$tmp" "$1" "$tmp" "$tmp" >"$tmp/run.json"
}
mk_config "$tmp/no-such-device"
check "no device: names the module" 2 "cachefiles module is not loaded" -- "$daemon" --config "$tmp/run.json"
: >"$tmp/regular-file"
mk_config "$tmp/regular-file"
check "device is a regular file" 2 "not a character device" -- "$daemon" --config "$tmp/run.json"

check "blobctl --help" 0 "stats" -- "$ctl" --help
check "blobctl --help lists metrics" 0 "^  metrics the same counters in the Prometheus text format" -- "$ctl" --help
check "blobctl --help" 0 "reload  make the daemon re-read" -- "$ctl" --help
check "blobctl reload without a daemon" 2 "no daemon socket at $tmp/none.sock: is erofs-blobd running\?" -- "$ctl" --socket "$tmp/none.sock" reload
check "blobctl --version" 0 "^erofs-blobctl [0-9]+\.[0-9]+" -- "$ctl" --version
check "blobctl --help documents exit codes" 0 "^  3  permission denied" -- "$ctl" --help
check "blobctl --help lists status" 0 "^  status  a table" -- "$ctl" --help

# Each way of not reaching the daemon has its own message and exit code (none needs a daemon).
check "blobctl without a daemon" 2 "no daemon socket at $tmp/none.sock: is erofs-blobd running\?" -- "$ctl" --socket "$tmp/none.sock" stats
: >"$tmp/regular.sock"
check "blobctl: a regular file as socket" 2 "regular.sock is not a socket" -- "$ctl" --socket "$tmp/regular.sock" status
# A socket whose daemon is gone: bound, never listened on (what a killed daemon leaves is alike:
# nobody accepts on it).
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$tmp/stale.sock"
check "blobctl: a stale socket" 2 "nobody listens on .*stale.sock: a stale socket" -- "$ctl" --socket "$tmp/stale.sock" status
# A daemon that accepts (the backlog does) but never answers.
python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8); open(sys.argv[2],"w").close(); time.sleep(60)' \
    "$tmp/mute.sock" "$tmp/mute.ready" &
mute_pid=$!
for _ in $(seq 100); do [ -e "$tmp/mute.ready" ] && break; sleep 0.05; done
check "blobctl: no answer in time" 4 "no answer within 1 s" -- "$ctl" --socket "$tmp/mute.sock" --timeout 1 ping
# Permission denied is not "is erofs-blobd running?": the same listening socket, mode 000, as nobody.
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
    chmod 755 "$tmp"
    chmod 000 "$tmp/mute.sock"
    check "blobctl: permission denied on the socket" 3 \
        "permission denied on .*mute.sock: run as root or as a member of control_socket_group" -- \
        setpriv --reuid=nobody --regid=nogroup --clear-groups "$ctl" --socket "$tmp/mute.sock" status
    chmod 700 "$tmp"
else
    echo "skip: permission denied on the socket (needs root and setpriv)"
fi
kill "$mute_pid" 2>/dev/null; wait "$mute_pid" 2>/dev/null

# What the CLI makes of the daemon's answers, from a stand-in that replies one given line.
reply_with() {  # reply_with SOCKET LINE: answers one connection with LINE, in the background
    rm -f "$1" "$1.ready"
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); open(sys.argv[1] + ".ready", "w").close()
c, _ = s.accept(); c.recv(4096); c.sendall(sys.argv[2].encode() + b"\n"); c.close()' "$1" "$2" &
    for _ in $(seq 100); do [ -e "$1.ready" ] && break; sleep 0.05; done
}
reply_with "$tmp/fake.sock" '{"ok":false,"denied":true,"error":"cull needs root: peer uid 65534"}'
check "blobctl: the daemon refuses a command for the uid" 3 "permission denied: cull needs root: peer uid 65534" -- \
    "$ctl" --socket "$tmp/fake.sock" cull --domain d
reply_with "$tmp/fake.sock" '{"ok":false,"error":"unknown command"}'
check "blobctl: a failed command exits 1" 1 "unknown command" -- "$ctl" --socket "$tmp/fake.sock" status
reply_with "$tmp/fake.sock" '{"ok":true,"domains":[{"domain":"d1","blobs":2,"objects_open":3,"fetched_bytes":1048576,"cache_bytes":null,"cache_files":null}]}'
check "blobctl domains: one line per domain" 0 "^d1 +2 +3 +1\.0 MiB +- +-$" -- "$ctl" --socket "$tmp/fake.sock" domains
status_reply='{"ok":true,"version":"0.1.0","uptime_s":3725,"frontend":"cachefiles","cache_dir":"/var/cache/erofs-blobd",'
status_reply+='"chunk_size":1048576,"objects_open":2,"blobs":2,"bytes_fetched":1048576,"reads":1,"reads_failed":0,'
status_reply+='"domains":[{"domain":"d1","blobs":1,"objects_open":1,"fetched_bytes":1048576,"cache_bytes":4194304,"cache_files":3}],'
status_reply+='"sources":[{"source":"oci:https://reg/app","health":"open (failing fast)","bytes":0,"fetches":5,"fetch_errors":5,'
status_reply+='"via_store":true,"endpoints_cooling":1}],"store":{"enabled":false}}'
reply_with "$tmp/fake.sock" "$status_reply"
status_out=$("$ctl" --socket "$tmp/fake.sock" status 2>&1); status_rc=$?
want_lines=('^erofs-blobd 0\.1\.0, up 01h 02m 05s$' '^frontend: +cachefiles$' '^cache dir: +/var/cache/erofs-blobd$'
    '^  d1 +1 +1 +1\.0 MiB +4\.0 MiB +3$' '^  oci:https://reg/app +open \(failing fast\), 1 mirrors cooling down +0 B +5 +5 +yes$'
    '^Store: off$')
status_ok=1
for w in "${want_lines[@]}"; do grep -qE -- "$w" <<<"$status_out" || { status_ok=0; echo "status lacks /$w/"; }; done
if [ "$status_rc" = 0 ] && [ "$status_ok" = 1 ]; then
    echo "ok: blobctl status: the table"; passes=$((passes + 1))
else
    echo "FAIL: blobctl status: exit $status_rc"; echo "$status_out"; failures=$((failures + 1))
fi
reply_with "$tmp/fake.sock" '{"ok":true,"x":1}'
check "blobctl --json prints the reply on one line" 0 '^\{"ok":true,"x":1\}$' -- "$ctl" --socket "$tmp/fake.sock" --json status
reply_with "$tmp/fake.sock" 'not json'
check "blobctl: an unreadable answer" 4 "unreadable reply: not json" -- "$ctl" --socket "$tmp/fake.sock" ping
check "blobctl without a command" 1 "Usage" -- "$ctl"
check "blobctl cull without --domain" 1 "cull needs --domain" -- "$ctl" --socket "$tmp/none.sock" cull
check "blobctl usage without --domain" 1 "usage needs --domain" -- "$ctl" --socket "$tmp/none.sock" usage
check "blobctl --blob outside cull" 1 "--blob is for cull" -- "$ctl" --socket "$tmp/none.sock" stats --blob x
check "blobctl blobs: one DOMAIN at most" 1 "blobs takes at most one DOMAIN" -- "$ctl" --socket "$tmp/none.sock" blobs a b

# mount.erofs-blobd (built next to erofs-blobctl): mount(8)'s calling convention and exit codes
# (1 usage/options/permission, 32 mount failure), against stand-ins; the real mount(8) and daemon
# are tests/fanotify/mount_helper.sh.
helper=$(realpath "$(dirname "$ctl")/mount.erofs-blobd")
mkdir -p "$tmp/mnt"
check "mount helper --help" 0 "domain_id=D" -- "$helper" --help
check "mount helper --version" 0 "^mount.erofs-blobd [0-9]+\.[0-9]+" -- "$helper" --version
check "mount helper: unknown option named" 1 "unknown mount option 'noexec'" -- \
    "$helper" img "$tmp/mnt" -o rw,noexec,socket="$tmp/none.sock"
check "mount helper: -N refused" 1 "-N \(another mount namespace\) is not supported" -- "$helper" img "$tmp/mnt" -N /proc/1/ns/mnt
check "mount helper: no daemon" 32 "no daemon socket at $tmp/none.sock" -- "$helper" img "$tmp/mnt" -o rw,socket="$tmp/none.sock"
check "mount helper: no mount point" 32 "mount point $tmp/nope: No such file" -- "$helper" img "$tmp/nope" -o socket="$tmp/none.sock"
check "mount helper: -f contacts nothing" 0 "would ask erofs-blobd at $tmp/none.sock to mount img of domain d" -- \
    "$helper" img "$tmp/mnt" -fv -o domain_id=d,socket="$tmp/none.sock"
reply_with "$tmp/fake.sock" '{"ok":false,"error":"bootstrap img of domain d: No such file or directory"}'
check "mount helper: the daemon's reason, exit 32" 32 "mounting img at $tmp/mnt failed: bootstrap img of domain d" -- \
    "$helper" img "$tmp/mnt" -o rw,domain_id=d,socket="$tmp/fake.sock"
reply_with "$tmp/fake.sock" '{"ok":false,"denied":true,"error":"mount needs root: peer uid 65534"}'
check "mount helper: refused for the uid, exit 1" 1 "permission denied: mount needs root" -- \
    "$helper" img "$tmp/mnt" -o socket="$tmp/fake.sock"
# The request it sends: the same as erofs-blobctl mount's, the mount point made absolute.
rm -f "$tmp/rec.sock" "$tmp/rec.sock.ready" "$tmp/request"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.bind(sys.argv[1]); s.listen(1); open(sys.argv[1] + ".ready", "w").close()
c, _ = s.accept(); open(sys.argv[2], "wb").write(c.recv(4096)); c.sendall(b"{\"ok\":true}\n"); c.close()' \
    "$tmp/rec.sock" "$tmp/request" &
rec_pid=$!
for _ in $(seq 100); do [ -e "$tmp/rec.sock.ready" ] && break; sleep 0.05; done
check "mount helper: mounted, exit 0" 0 "" -- sh -c 'cd "$1" && "$2" img mnt -o rw,domain_id=d1,_netdev,socket="$1/rec.sock"' _ "$tmp" "$helper"
kill "$rec_pid" 2>/dev/null; wait "$rec_pid" 2>/dev/null
want="{\"cmd\":\"mount\",\"domain\":\"d1\",\"fsid\":\"img\",\"mountpoint\":\"$(realpath "$tmp/mnt")\"}"
if [ "$(tr -d '\n' <"$tmp/request" 2>/dev/null)" = "$want" ]; then
    echo "ok: mount helper: the request is erofs-blobctl mount's"; passes=$((passes + 1))
else
    echo "FAIL: mount helper request: $(cat "$tmp/request" 2>/dev/null), wanted $want"; failures=$((failures + 1))
fi

echo "$passes passed, $failures failed"
[ "$failures" = 0 ]
