#!/usr/bin/env bash
# Installs everything erofs-blobd needs to build, test and run its real-kernel tests on Debian 12.
# Idempotent; needs root (or sudo). Set BLOBD_SKIP_APT=1 to skip (e.g. when packages are provided).
set -euo pipefail
packages=(
    # build
    build-essential cmake ninja-build pkg-config
    liburing-dev libboost-dev libboost-system-dev libfmt-dev nlohmann-json3-dev libsystemd-dev libssl-dev
    libcap-dev  # the daemon drops its capabilities (daemon/capabilities.cpp)
    # tests
    catch2
    # fuzzing (scripts/fuzz.sh): clang with libFuzzer and the sanitizer runtimes, llvm-symbolizer
    clang libclang-rt-14-dev llvm
    # real-kernel tests: the UML kernel source and its build tools, image tools, busybox for the guest
    linux-source-6.1 bc bison flex libelf-dev xz-utils patch e2fsprogs erofs-utils busybox-static
    util-linux diffutils python3
    # servers the fetcher tests start on loopback
    nginx-light openssl
    # a real OCI registry (distribution 2.8) for the OCI fetcher's tests (tests/support/registry)
    docker-registry curl
    # the Prometheus text of `erofs-blobctl metrics`, checked by Prometheus' own parser (promtool)
    prometheus
    # the .deb (scripts/package.sh): dpkg-shlibdeps for its dependencies, lintian to check it
    dpkg-dev lintian
    # the man pages' test renders them with warnings on (groff -man -ww, man --warnings)
    groff-base man-db
)
if [ "${BLOBD_SKIP_APT:-0}" = 1 ]; then exit 0; fi
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages present"
    exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# nginx's Debian package starts a system instance on port 80; the tests run their own.
# So do docker-registry's (port 5000) and prometheus's (port 9090).
if command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
    $sudo systemctl disable --now docker-registry >/dev/null 2>&1 || true
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
