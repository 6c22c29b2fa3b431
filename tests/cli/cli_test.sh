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
check "blobctl reload without a daemon" 2 "no such socket: is erofs-blobd running" -- "$ctl" --socket "$tmp/none.sock" reload
check "blobctl without a daemon" 2 "no such socket: is erofs-blobd running" -- "$ctl" --socket "$tmp/none.sock" stats
check "blobctl --version" 0 "^erofs-blobctl [0-9]+\.[0-9]+" -- "$ctl" --version
check "blobctl --help: exit codes" 0 "Exit codes:" -- "$ctl" --help
# A socket file nobody listens on (a daemon that died): refused, not "no such socket".
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$tmp/stale.sock"
check "blobctl, stale socket" 2 "Connection refused \(nothing listens there" -- "$ctl" --socket "$tmp/stale.sock" metrics
# A socket the caller may not open (mode 0600, as the daemon makes it): says so, not "running?".
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$ctl"; then
    chmod 755 "$tmp"
    python3 -c 'import socket,sys,os,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1],0o600); s.listen(); time.sleep(30)' "$tmp/root.sock" &
    listener=$!
    for _ in $(seq 50); do [ -S "$tmp/root.sock" ] && break; sleep 0.1; done
    check "blobctl, socket not permitted" 2 "Permission denied \(the control socket is for the daemon's user only" -- \
        setpriv --reuid=nobody --regid=nogroup --clear-groups "$ctl" --socket "$tmp/root.sock" ping
    kill "$listener"; wait "$listener" 2>/dev/null
else
    echo "skip: blobctl, socket not permitted (needs root, setpriv and a binary nobody may run)"
fi
check "blobctl without a command" 1 "Usage" -- "$ctl"
check "blobctl cull without --domain" 1 "cull needs --domain" -- "$ctl" --socket "$tmp/none.sock" cull
check "blobctl usage without --domain" 1 "usage needs --domain" -- "$ctl" --socket "$tmp/none.sock" usage
check "blobctl --blob outside cull" 1 "--blob is for cull" -- "$ctl" --socket "$tmp/none.sock" stats --blob x

echo "$passes passed, $failures failed"
[ "$failures" = 0 ]
