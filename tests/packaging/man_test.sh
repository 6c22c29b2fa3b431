#!/usr/bin/env bash
# Description: the man pages (man/) agree with --help and docs/config.md, and render cleanly:
#   - every --option that `erofs-blobd --help` prints appears in erofs-blobd(8), and every one
#     `erofs-blobctl --help` prints in erofs-blobctl(1);
#   - every command of erofs-blobctl's help (the "Commands" list) is the tag of an entry of
#     erofs-blobctl(1);
#   - every config key of docs/config.md's tables (the backticked first column of the key table,
#     and the type and key columns of the sources table) is in an entry's tag of erofs-blobd.json(5);
#   - each page's .TH names the version `erofs-blobd --version` prints;
#   - each page renders without a warning (groff -man -ww -z, and man --warnings when man-db is
#     installed).
# It also proves the key check can fail: a copy of erofs-blobd.json(5) without the entry for
# cache.dir must be refused.
#   man_test.sh ERFOS_BLOBD ERFOS_BLOBCTL SOURCE_DIR
set -u
blobd=$1 blobctl=$2 src=$3
man=$src/man
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

# A page's roff source as plain words: \- is -, \& and font escapes vanish.
plain() { sed -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\f[BIRP]//g' -e 's/\\(em/-/g' "$1"; }
# The tags of a page's entries: the line after each .TP, and .SS headings, as plain words.
tags() { plain "$1" | awk 'tp { print; tp = 0; next } /^\.TP/ { tp = 1; next } /^\.SS / { print }'; }
# Is WORD in TEXT (a file), delimited (not part of a longer name)?
has_word() {
    local re
    re=$(printf '%s' "$1" | sed 's/[][\.*^$+?(){}|/]/\\&/g')   # not < >: \< is a word boundary in GNU grep
    grep -Eq "(^|[^A-Za-z0-9_.<>-])${re}([^A-Za-z0-9_<>-]|\$)" "$2"
}

# --- options of --help -------------------------------------------------------------------------
check_options() {   # BINARY PAGE
    local help opts o page=$2
    help=$("$1" --help 2>&1) || bad "$1 --help exited non-zero"
    opts=$(grep -oE -- '--[a-z][a-z-]*' <<<"$help" | sort -u)
    [ -n "$opts" ] || bad "no --options found in $1 --help"
    plain "$page" >"$tmp/plain"
    for o in $opts; do
        if has_word "$o" "$tmp/plain"; then ok; else bad "$(basename "$page"): option $o of $(basename "$1") --help is missing"; fi
    done
    echo "$(basename "$page"): $(wc -w <<<"$opts") options of --help checked"
}
check_options "$blobd" "$man/erofs-blobd.8"
check_options "$blobctl" "$man/erofs-blobctl.1"

# --- erofs-blobctl's commands ------------------------------------------------------------------
cmds=$("$blobctl" --help 2>&1 | awk '/^Commands/ { on = 1; next } /^Options/ { on = 0 } on && /^  [a-z]/ { print $1 }' | sort -u)
n=$(wc -w <<<"$cmds")
[ "$n" -ge 10 ] || bad "expected at least 10 commands in erofs-blobctl --help, found $n: $cmds"
tags "$man/erofs-blobctl.1" >"$tmp/tags"
for c in $cmds; do
    if grep -Eq "^\.B[IR]? $c( |\$)" "$tmp/tags"; then ok; else bad "erofs-blobctl.1: no entry for the command $c"; fi
done
echo "erofs-blobctl.1: $n commands checked"

# --- config keys -------------------------------------------------------------------------------
# The tables of docs/config.md: the key table's first column; the sources table's first two
# (type, key). Each backticked name in those cells.
keys=$(awk -F'|' '
    /^\| *Key *\| *Type *\| *Default/ { t = "keys"; next }
    /^\| *Type *\| *Key *\|/ { t = "sources"; next }
    /^\|/ && t == "keys" { print $2 }
    /^\|/ && t == "sources" { print $2; print $3 }
    /^$/ { if (t == "keys") t = "" }
    /^#/ { t = "" }' "$src/docs/config.md" | grep -oE '`[^`]+`' | tr -d '`' | sort -u)
nkeys=$(wc -w <<<"$keys")
[ "$nkeys" -ge 40 ] || bad "expected at least 40 keys in docs/config.md's tables, found $nkeys"
check_keys() {   # PAGE -> number of missing keys, each printed
    local missing=0 k
    tags "$1" >"$tmp/keytags"
    for k in $keys; do
        has_word "$k" "$tmp/keytags" || { echo "  $(basename "$1"): no entry for the config key $k"; missing=$((missing + 1)); }
    done
    return "$missing"
}
if out=$(check_keys "$man/erofs-blobd.json.5"); then ok; else bad "config keys missing from erofs-blobd.json(5):"; echo "$out"; fi
echo "erofs-blobd.json.5: $nkeys config keys of docs/config.md checked"
# The check must be able to fail: drop the cache.dir entry (its tag line) and expect a refusal.
sed '/^\.BR cache\.dir /d' "$man/erofs-blobd.json.5" >"$tmp/broken.5"
if cmp -s "$man/erofs-blobd.json.5" "$tmp/broken.5"; then
    bad "self-test: no cache.dir entry found to delete"
elif out=$(check_keys "$tmp/broken.5"); then
    bad "self-test: a page without cache.dir passed the key check"
elif grep -q "config key cache.dir\$" <<<"$out"; then
    ok
else
    bad "self-test: the key check failed without naming cache.dir: $out"
fi

# --- version ------------------------------------------------------------------------------------
# Each page's .TH names the version the daemon reports (bump them with project(VERSION)).
version=$("$blobd" --version | awk '{ print $2 }')
for page in "$man"/*.[1-8]; do
    if grep -q "^\.TH .* \"erofs-blobd $version\" " "$page"; then ok; else bad "$(basename "$page"): .TH does not name erofs-blobd $version"; fi
done

# --- rendering ---------------------------------------------------------------------------------
for page in "$man"/*.[1-8]; do
    w=$(groff -man -ww -z "$page" 2>&1)
    if [ -z "$w" ]; then ok; else bad "$(basename "$page"): groff warns: $w"; fi
    if command -v man >/dev/null 2>&1; then
        w=$(MANROFFSEQ='' man --warnings -l "$page" 2>&1 >/dev/null)
        if [ -z "$w" ]; then ok; else bad "$(basename "$page"): man --warnings: $w"; fi
    fi
done

echo "man_test: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
