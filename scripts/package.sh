#!/usr/bin/env bash
# Builds the Debian package: scripts/package.sh [BUILD_DIR]  (default build-deb)
# Configures a release build for the prefix /usr (the unit names /usr/sbin/erofs-blobd and
# /etc/erofs-blobd/config.json), builds the daemon, the CLI, the mount helper and the gzipped man pages, packs them with CPack's DEB
# generator and checks the package with lintian (errors fail). Prints the .deb's path last.
# Install it with: apt install ./build-deb/erofs-blobd_<version>_<arch>.deb
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-deb}
launcher=()
if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    -DBLOBD_BUILD_TESTS=OFF -DBLOBD_BUILD_BENCH=OFF -DBLOBD_E2E=OFF "${launcher[@]}" >/dev/null
cmake --build "$build" --target erofs-blobd erofs-blobctl mount.erofs-blobd blobd_man
rm -f "$build"/erofs-blobd_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls "$build"/erofs-blobd_*.deb)
if command -v lintian >/dev/null 2>&1; then
    lintian --fail-on error "$deb"
else
    echo "package.sh: lintian is not installed (scripts/install-deps.sh installs it): not checked" >&2
fi
echo "$deb"
