#!/usr/bin/env bash
# Checks the registry harness and pins down the docker-registry (distribution 2.8) behaviours the
# OCI fetcher relies on, with curl: anonymous requests get 401 + a Bearer challenge naming the
# realm, service and scope; the token server refuses missing/wrong credentials and its token opens
# the repository it was issued for only; blobs are served directly (no redirect with the filesystem
# driver), HEAD gives the size, Range gives 206 with exact bytes (clamped at the end); an unknown
# blob is 404 BLOB_UNKNOWN. Also records two oddities (see docs/oci.md): a 416 answer announces the
# blob's full Content-Length over a short body, and HEAD with a Range header answers 206 with the
# range's length. Then a second instance as a pull-through mirror of the first (start.sh
# --mirror-of): anonymous, the first miss streamed (Range usually ignored) and stored, the origin
# asked twice for it and never again.
#
#   tests/support/registry/selftest.sh
# Exit 77 (skip) when docker-registry, openssl or curl is missing, unless BLOBD_REQUIRE_SERVERS=1.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in openssl curl; do
    command -v "$tool" >/dev/null || { echo "selftest: $tool missing"; [ "${BLOBD_REQUIRE_SERVERS:-0}" = 1 ] && exit 1; exit 77; }
done
dir=$(mktemp -d /tmp/blobd-registry-selftest.XXXXXX)
trap '"$here/stop.sh" "$dir" --clean' EXIT
"$here/start.sh" "$dir" --user alice:s3cret --user bob:reader --pull-only bob >/dev/null
rc=$?
if [ $rc = 77 ]; then [ "${BLOBD_REQUIRE_SERVERS:-0}" = 1 ] && exit 1; exit 77; fi
[ $rc = 0 ] || exit 1
# shellcheck disable=SC1091
. "$dir/env"

fails=0
check() {  # check NAME ACTUAL EXPECTED
    if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1: expected '$3', got '$2'"; fails=$((fails + 1)); fi
}
head -c $((3 * 1024 * 1024 + 123)) /dev/urandom >"$dir/blob"
out=$("$here/push.py" --registry "$REGISTRY_URL" --repository library/app --user alice --password s3cret "$dir/blob")
check "push exit status" $? 0
digest=${out%% *}
check "push printed the sha256" "$digest" "sha256:$(sha256sum "$dir/blob" | cut -d' ' -f1)"
blob=$REGISTRY_URL/v2/library/app/blobs/$digest
hdr() { grep -i "^$1:" | head -n1 | cut -d' ' -f2- | tr -d '\r'; }  # hdr NAME < headers

check "anonymous /v2/" "$(curl -s -o /dev/null -w '%{http_code}' "$REGISTRY_URL/v2/")" 401
check "anonymous blob challenge" "$(curl -s -D - -o /dev/null "$blob" | hdr Www-Authenticate)" \
    "Bearer realm=\"$TOKEN_URL\",service=\"$REGISTRY_SERVICE\",scope=\"repository:library/app:pull\""
tok() { curl -s "$@" "$TOKEN_URL?service=$REGISTRY_SERVICE&scope=repository:library/app:pull" |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("token",""))' 2>/dev/null; }
q="$TOKEN_URL?service=$REGISTRY_SERVICE&scope=repository:library/app:pull"
check "token without credentials" "$(curl -s -o /dev/null -w '%{http_code}' "$q")" 401
check "token with a wrong password" "$(curl -s -o /dev/null -w '%{http_code}' -u alice:wrong "$q")" 401
check "token for another service" "$(curl -s -o /dev/null -w '%{http_code}' -u alice:s3cret "${q/service=/service=x}")" 400
token=$(tok -u alice:s3cret)
[ -n "$token" ] || { echo "FAIL: no token"; exit 1; }
auth=(-H "Authorization: Bearer $token")
check "token requests logged (3 refused, 1 granted, +2 from the push)" "$(wc -l <"$TOKEN_LOG")" 6
grep -q s3cret "$TOKEN_LOG" && { echo "FAIL: password in the token log"; fails=$((fails + 1)); }

check "HEAD status" "$(curl -s -I -o /dev/null -w '%{http_code}' "${auth[@]}" "$blob")" 200
check "HEAD size" "$(curl -s -I "${auth[@]}" "$blob" | hdr Content-Length)" $((3 * 1024 * 1024 + 123))
check "HEAD digest" "$(curl -s -I "${auth[@]}" "$blob" | hdr Docker-Content-Digest)" "$digest"
check "GET whole blob: 200, no redirect" "$(curl -s -o "$dir/got" -w '%{http_code} %{num_redirects}' "${auth[@]}" "$blob")" "200 0"
cmp -s "$dir/got" "$dir/blob" && echo "ok: whole blob bytes" || { echo "FAIL: whole blob bytes"; fails=$((fails + 1)); }
check "Range 206" "$(curl -s -o "$dir/got" -w '%{http_code}' "${auth[@]}" -H 'Range: bytes=1048576-2097151' "$blob")" 206
cmp -s "$dir/got" <(tail -c +1048577 "$dir/blob" | head -c 1048576) && echo "ok: range bytes" ||
    { echo "FAIL: range bytes"; fails=$((fails + 1)); }
check "Range past the end is clamped" \
    "$(curl -s -D - -o /dev/null "${auth[@]}" -H 'Range: bytes=3145728-9999999' "$blob" | hdr Content-Range)" \
    "bytes 3145728-3145850/3145851"
# Oddity 1: 416 keeps the blob's Content-Length but sends a 33-byte body; curl gives up (exit 18).
check "416 beyond the end" "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "${auth[@]}" -H 'Range: bytes=3145851-' "$blob")" 416
check "416 announces the full length" \
    "$(curl -s -m 5 -D - -o /dev/null "${auth[@]}" -H 'Range: bytes=3145851-' "$blob" | hdr Content-Length)" 3145851
# Oddity 2: HEAD with Range is a 206 with the range's length, not the blob's size.
check "HEAD with Range" "$(curl -s -I "${auth[@]}" -H 'Range: bytes=0-9' "$blob" | hdr Content-Length)" 10
absent=$REGISTRY_URL/v2/library/app/blobs/sha256:$(printf '%064d' 0)
check "unknown blob 404" "$(curl -s -o "$dir/err" -w '%{http_code}' "${auth[@]}" "$absent")" 404
check "unknown blob error code" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"][0]["code"])' "$dir/err")" BLOB_UNKNOWN
check "HEAD unknown blob" "$(curl -s -I -o /dev/null -w '%{http_code}' "${auth[@]}" "$absent")" 404
check "token does not open another repository" \
    "$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$REGISTRY_URL/v2/library/other/blobs/$digest")" 401
# A changed signature character (20 from the end: all 6 of its bits are signature bits).
c=${token: -20:1}; [ "$c" = A ] && c=B || c=A
forged=${token:0:${#token}-20}$c${token: -19}
check "forged token refused" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $forged" "$blob")" 401
check "pull-only user can read" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(tok -u bob:reader)" "$blob")" 200
check "pull-only user cannot push" "$(python3 "$here/push.py" --registry "$REGISTRY_URL" --repository library/app \
    --user bob --password reader "$dir/token.log" >/dev/null 2>&1; echo $?)" 1

# A pull-through mirror (start.sh --mirror-of) of this registry, pulling as bob: anonymous to its
# clients; its first miss of a blob streams it from the origin (usually ignoring Range: 200, whole
# blob) while it stores another copy; once stored it answers ranges itself and the origin sees nothing.
mdir=$dir/mirror
trap '"$here/stop.sh" "$mdir" --clean; "$here/stop.sh" "$dir" --clean' EXIT
"$here/start.sh" "$mdir" --mirror-of "$REGISTRY_URL" --mirror-user bob:reader >/dev/null ||
    { echo "FAIL: mirror did not start"; exit 1; }
mirror=$(. "$mdir/env"; echo "$REGISTRY_URL")
mblob=$mirror/v2/library/app/blobs/$digest
origin_gets() { grep -c "\"GET /v2/library/app/blobs/$digest .* 200 " "$ACCESS_LOG_ORIGIN"; }
ACCESS_LOG_ORIGIN=$REGISTRY_ACCESS_LOG
g0=$(origin_gets)
check "mirror /v2/ is anonymous" "$(curl -s -o /dev/null -w '%{http_code}' "$mirror/v2/")" 200
check "mirror HEAD size" "$(curl -s -I "$mblob" | hdr Content-Length)" $((3 * 1024 * 1024 + 123))
# The first miss: usually 200 with the whole blob (Range ignored, streamed from the origin), but
# 206 with the range when the mirror's own copy won the race; either is the right bytes.
first=$(curl -s -o "$dir/mgot" -w '%{http_code} %{size_download}' -H 'Range: bytes=0-1023' "$mblob")
case "$first" in
    "200 3145851") cmp -s "$dir/mgot" "$dir/blob" ;;
    "206 1024") cmp -s "$dir/mgot" <(head -c 1024 "$dir/blob") ;;
    *) false ;;
esac && echo "ok: mirror first miss ($first)" || { echo "FAIL: mirror first miss: $first"; fails=$((fails + 1)); }
stored=$mdir/storage/docker/registry/v2/blobs/sha256/${digest:7:2}/${digest#sha256:}/data
for _ in $(seq 1 200); do [ "$(command stat -c %s "$stored" 2>/dev/null)" = 3145851 ] && break; sleep 0.05; done
check "mirror stored the blob" "$(command stat -c %s "$stored" 2>/dev/null)" 3145851
check "origin GETs for the first miss (stored + streamed)" $(($(origin_gets) - g0)) 2
check "mirror Range after the store" "$(curl -s -o "$dir/mgot" -w '%{http_code}' -H 'Range: bytes=1048576-2097151' "$mblob")" 206
cmp -s "$dir/mgot" <(tail -c +1048577 "$dir/blob" | head -c 1048576) && echo "ok: mirror range bytes" ||
    { echo "FAIL: mirror range bytes"; fails=$((fails + 1)); }
check "origin GETs after the store" $(($(origin_gets) - g0)) 2
check "mirror unknown blob 404" "$(curl -s -o /dev/null -w '%{http_code}' "$mirror/v2/library/app/blobs/sha256:$(printf '%064d' 0)")" 404
[ $fails = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all registry harness checks passed"
