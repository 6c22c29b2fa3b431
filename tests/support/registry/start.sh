#!/usr/bin/env bash
# Starts a real docker-registry (distribution 2.8, Debian's `docker-registry`) with token auth on
# 127.0.0.1, plus the test token server that issues its tokens, both on free ports, for tests.
#
#   tests/support/registry/start.sh DIR [--user NAME:PASSWORD]... [--pull-only NAME]...
#                                       [--expires-in SEC] [--exp-in SEC] [--deny-file FILE]
#                                       [--log-level LEVEL]
#                                       [--mirror-of URL [--mirror-user NAME:PASSWORD]]
#
# DIR is created (must not hold a running instance) and gets everything of this instance:
#   key.pem, cert.pem   RSA key and self-signed certificate made now by openssl: the token
#                       server signs with them, the registry trusts cert.pem (rootcertbundle)
#   config.yml          the registry's config (filesystem storage in DIR/storage, no redis)
#   token.log           one JSON line per token request (see token_server.py): tests count them
#   access.log          the registry's access log (Apache combined format: status, bytes sent)
#   registry.log        the registry's own log;  token.stderr: the token server's
#   env                 shell assignments (also printed on stdout):
#       REGISTRY_URL=http://127.0.0.1:PORT   TOKEN_URL=http://127.0.0.1:PORT/token
#       REGISTRY_SERVICE, REGISTRY_ISSUER, REGISTRY_PID, TOKEN_PID, REGISTRY_DIR,
#       REGISTRY_ACCESS_LOG, TOKEN_LOG
# Default user (without --user): blobd:blobd-test-password. Every user may pull and push on any
# repository, a --pull-only user only pull. Tokens live --expires-in seconds (default 300).
# --exp-in and --deny-file inject failures (token_server.py: tokens the registry refuses early;
# every token request refused while FILE exists).
#
# --mirror-of URL makes this instance a pull-through cache (docker-registry's `proxy.remoteurl`) of
# the registry at URL, pulling with --mirror-user's credentials (the origin's token flow is the
# mirror's business); the mirror itself has no auth (anonymous pulls, /v2/ answers 200), as an
# in-cluster mirror usually is. Its token server still runs (unused), so env and stop.sh stay alike.
#
# Both servers run in the background in their own session; stop them with stop.sh DIR.
# The registry binary: $DOCKER_REGISTRY, else `docker-registry` on PATH, else /usr/bin/docker-registry.
# Exit status: 0 when both answer (the registry's /v2/ with 401 + a Bearer challenge; a mirror's: 200), 1 otherwise
# (logs printed), 77 when docker-registry or openssl is missing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog=registry-start
dir=${1:?usage: start.sh DIR [--user NAME:PASSWORD]... [--pull-only NAME]... [--expires-in SEC] [--log-level LEVEL]}
shift
users=() pull_only=() expires=300 level=info extra=() mirror_of= mirror_user=
while [ $# -gt 0 ]; do
    case "$1" in
        --user) users+=("${2:?}"); shift 2 ;;
        --pull-only) pull_only+=(--pull-only "${2:?}"); shift 2 ;;
        --expires-in) expires=${2:?}; shift 2 ;;
        --exp-in|--deny-file) extra+=("$1" "${2:?}"); shift 2 ;;
        --log-level) level=${2:?}; shift 2 ;;
        --mirror-of) mirror_of=${2:?}; shift 2 ;;
        --mirror-user) mirror_user=${2:?}; shift 2 ;;
        *) echo "$prog: unknown option '$1'" >&2; exit 2 ;;
    esac
done
[ ${#users[@]} -gt 0 ] || users=(blobd:blobd-test-password)

registry=${DOCKER_REGISTRY:-$(command -v docker-registry || echo /usr/bin/docker-registry)}
[ -x "$registry" ] || { echo "$prog: docker-registry not found (apt-get install docker-registry)" >&2; exit 77; }
command -v openssl >/dev/null || { echo "$prog: openssl not found" >&2; exit 77; }
py=$(command -v python3 || echo /usr/bin/python3)

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -f "$dir/env" ]; then
    # shellcheck disable=SC1091
    (. "$dir/env"; kill -0 "$REGISTRY_PID" 2>/dev/null || kill -0 "$TOKEN_PID" 2>/dev/null) &&
        { echo "$prog: $dir already has a running instance (stop.sh $dir)" >&2; exit 1; }
fi
rm -f "$dir/env" "$dir/token.port"
mkdir -p "$dir/storage"
service=blobd-test-registry issuer=blobd-test-issuer

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=blobd-test-token-issuer \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 ||
    { echo "$prog: openssl could not make the signing key" >&2; exit 1; }

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# status URL: the HTTP status of a GET (000 when nothing answers)
status() {
    "$py" - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("WWW-Authenticate", ""))
except Exception:
    print("000")
PY
}
show_logs() { for f in token.stderr registry.log; do [ -s "$dir/$f" ] && { echo "== $f" >&2; tail -n 20 "$dir/$f" >&2; }; done; }

token_args=()
for u in "${users[@]}"; do token_args+=(--user "$u"); done
setsid "$py" "$here/token_server.py" --cert "$dir/cert.pem" --key "$dir/key.pem" --issuer "$issuer" \
    --service "$service" "${token_args[@]}" "${pull_only[@]}" ${extra[@]+"${extra[@]}"} --expires-in "$expires" \
    --port-file "$dir/token.port" --log "$dir/token.log" >/dev/null 2>"$dir/token.stderr" </dev/null &
token_pid=$!
for _ in $(seq 1 200); do
    [ -f "$dir/token.port" ] && break
    kill -0 "$token_pid" 2>/dev/null || { echo "$prog: token server exited" >&2; show_logs; exit 1; }
    sleep 0.05
done
[ -f "$dir/token.port" ] || { echo "$prog: token server did not start" >&2; kill "$token_pid"; show_logs; exit 1; }
token_url="http://127.0.0.1:$(cat "$dir/token.port")/token"

registry_pid= port=
for _attempt in 1 2 3 4 5; do
    port=$(free_port)
    cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: $level
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
YAML
    if [ -n "$mirror_of" ]; then
        # Pull-through cache: blobs missing from DIR/storage are fetched from the origin and stored.
        # No `ttl` key: distribution 2.8 expires proxied content after 7 days (longer than any test).
        {
            echo "proxy:"
            echo "  remoteurl: $mirror_of"
            if [ -n "$mirror_user" ]; then
                echo "  username: ${mirror_user%%:*}"
                echo "  password: ${mirror_user#*:}"
            fi
        } >>"$dir/config.yml"
    else
        cat >>"$dir/config.yml" <<YAML
auth:
  token:
    realm: $token_url
    service: $service
    issuer: $issuer
    rootcertbundle: $dir/cert.pem
YAML
    fi
    # The access log goes to stdout, everything else to stderr (logrus).
    setsid "$registry" serve "$dir/config.yml" >>"$dir/access.log" 2>>"$dir/registry.log" </dev/null &
    registry_pid=$!
    up=0
    for _ in $(seq 1 300); do  # up to 15 s: a Go binary starts slowly under User-Mode Linux
        kill -0 "$registry_pid" 2>/dev/null || break
        case "$(status "http://127.0.0.1:$port/v2/")" in
            "401 Bearer "*) [ -z "$mirror_of" ] && { up=1; break; } ;;
            200) [ -n "$mirror_of" ] && { up=1; break; } ;;
        esac
        sleep 0.05
    done
    [ $up = 1 ] && break
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
    registry_pid=
done
if [ -z "$registry_pid" ]; then
    echo "$prog: docker-registry did not come up" >&2
    show_logs
    kill "$token_pid" 2>/dev/null || true
    exit 1
fi

cat >"$dir/env.tmp" <<ENV
REGISTRY_URL=http://127.0.0.1:$port
TOKEN_URL=$token_url
REGISTRY_SERVICE=$service
REGISTRY_ISSUER=$issuer
REGISTRY_PID=$registry_pid
TOKEN_PID=$token_pid
REGISTRY_DIR=$dir
REGISTRY_ACCESS_LOG=$dir/access.log
TOKEN_LOG=$dir/token.log
ENV
mv "$dir/env.tmp" "$dir/env"
cat "$dir/env"
